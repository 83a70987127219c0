"""The service registry's two back ends behind one interface: the database and etcd.

`DatabaseRegistry` keeps instances as rows with an expiry that heartbeats push forward;
`EtcdRegistry` keeps each instance as a key under an etcd lease of the instance's TTL
(heartbeats keep the lease alive) and follows the prefix with a watch. Both serve
`discover()` from a cache: the database one is invalidated by change events
(`invalidate()`), the etcd one is fed by its watch. `changes` callbacks receive
("expired", instance) when the back end itself removes an instance.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from plugins_app.discovery.models import Health, ServiceInstance

logger = logging.getLogger("chameleon.discovery")


class RegistryError(Exception):
    """The registry refused an operation or its back end is unreachable."""


class InstanceNotFound(RegistryError):
    """No live instance has this id (never registered, deregistered or expired)."""


@dataclass
class Instance:
    """A service instance as the seed describes it, plus its TTL, weight and health check."""

    id: str
    name: str
    endpoint: str
    version: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    weight: int = 1
    check: dict[str, Any] = field(default_factory=dict)
    health: str = Health.UNKNOWN
    health_message: str = ""
    ttl: float = 30.0
    registered_at: datetime = field(default_factory=timezone.now)
    last_heartbeat: datetime = field(default_factory=timezone.now)
    last_check: datetime | None = None
    expires_at: datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.health == Health.HEALTHY

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("registered_at", "last_heartbeat", "last_check", "expires_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        values = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        for key in ("registered_at", "last_heartbeat", "last_check", "expires_at"):
            if isinstance(values.get(key), str):
                values[key] = parse_datetime(values[key])
        return cls(**values)

    @classmethod
    def from_model(cls, row: ServiceInstance) -> Instance:
        return cls(**{name: getattr(row, MODEL_FIELDS.get(name, name)) for name in cls.__dataclass_fields__})


FIELDS = tuple(Instance.__dataclass_fields__)
#: Instance attributes stored under another model field name (`check` would shadow Model.check()).
MODEL_FIELDS = {"check": "health_check"}
ChangeCallback = Callable[[str, Instance], None]


class RegistryBackend:
    """What every back end offers. `register` replaces an instance with the same id."""

    kind = ""

    def __init__(self) -> None:
        self._callbacks: list[ChangeCallback] = []
        self._lock = threading.RLock()

    def on_change(self, callback: ChangeCallback) -> None:
        """Call `callback(kind, instance)` when the back end removes an instance by itself ("expired")."""
        self._callbacks.append(callback)

    def _notify(self, kind: str, instance: Instance) -> None:
        for callback in list(self._callbacks):
            try:
                callback(kind, instance)
            except Exception:
                logger.exception("Registry change callback failed for %s %s", kind, instance.id)

    def register(self, instance: Instance) -> Instance:
        raise NotImplementedError

    def heartbeat(self, instance_id: str) -> Instance:
        raise NotImplementedError

    def deregister(self, instance_id: str) -> Instance:
        raise NotImplementedError

    def get(self, instance_id: str) -> Instance:
        raise NotImplementedError

    def instances(self, name: str | None = None) -> list[Instance]:
        """Every live instance (healthy or not), straight from the back end, ordered by name and id."""
        raise NotImplementedError

    def set_health(self, instance_id: str, health: str, message: str, checked_at: datetime) -> Instance:
        raise NotImplementedError

    def purge_expired(self, now: datetime | None = None) -> list[Instance]:
        """Remove instances whose TTL ran out; returns them (etcd removes them by itself)."""
        return []

    def discover(self, name: str) -> list[Instance]:
        """The live instances of `name` from the cache (all health states)."""
        raise NotImplementedError

    def watch(self) -> None:
        """Make sure changes are followed (the etcd watch; nothing to do for the database)."""

    def invalidate(self, name: str | None = None) -> None:
        """Drop cached instances of `name` (or all) so the next discover reads the back end."""

    def close(self) -> None:
        pass


class DatabaseRegistry(RegistryBackend):
    """Instances as `ServiceInstance` rows; `expires_at` is pushed forward by each heartbeat."""

    kind = "database"
    MAX_CACHE_AGE = 10.0

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[str, tuple[float, list[Instance]]] = {}

    def register(self, instance: Instance) -> Instance:
        now = timezone.now()
        instance.registered_at = instance.last_heartbeat = now
        instance.expires_at = now + timedelta(seconds=instance.ttl)
        values = {MODEL_FIELDS.get(name, name): getattr(instance, name) for name in FIELDS if name != "id"}
        ServiceInstance.objects.update_or_create(id=instance.id, defaults=values)
        return instance

    def heartbeat(self, instance_id: str) -> Instance:
        with transaction.atomic():
            row = ServiceInstance.objects.live().select_for_update().filter(id=instance_id).first()
            if row is None:
                raise InstanceNotFound(instance_id)
            now = timezone.now()
            row.last_heartbeat = now
            row.expires_at = now + timedelta(seconds=row.ttl)
            row.save(update_fields=["last_heartbeat", "expires_at"])
        return Instance.from_model(row)

    def deregister(self, instance_id: str) -> Instance:
        row = ServiceInstance.objects.live().filter(id=instance_id).first()
        # Deleting by id and counting rows makes the one caller that removed it the one that reports it.
        if row is None or ServiceInstance.objects.filter(id=instance_id).delete()[0] == 0:
            raise InstanceNotFound(instance_id)
        return Instance.from_model(row)

    def get(self, instance_id: str) -> Instance:
        row = ServiceInstance.objects.live().filter(id=instance_id).first()
        if row is None:
            raise InstanceNotFound(instance_id)
        return Instance.from_model(row)

    def instances(self, name: str | None = None) -> list[Instance]:
        # One instant for both: whatever is not listed as live has been purged (and evented).
        now = timezone.now()
        self.purge_expired(now)
        rows = ServiceInstance.objects.live(now)
        if name is not None:
            rows = rows.filter(name=name)
        return [Instance.from_model(row) for row in rows.order_by("name", "id")]

    def set_health(self, instance_id: str, health: str, message: str, checked_at: datetime) -> Instance:
        updated = ServiceInstance.objects.live().filter(id=instance_id).update(
            health=health, health_message=message[:500], last_check=checked_at
        )
        if not updated:
            raise InstanceNotFound(instance_id)
        return self.get(instance_id)

    def purge_expired(self, now: datetime | None = None) -> list[Instance]:
        now = now or timezone.now()
        removed = []
        for row in ServiceInstance.objects.expired(now):
            if ServiceInstance.objects.expired(now).filter(id=row.id).delete()[0]:
                removed.append(Instance.from_model(row))
        for instance in removed:
            self.invalidate(instance.name)
            self._notify("expired", instance)
        return removed

    def discover(self, name: str) -> list[Instance]:
        with self._lock:
            loaded_at, cached = self._cache.get(name, (0.0, None))
        now = timezone.now()
        # A cached expiry in the past means a heartbeat (not evented) or an expiry happened;
        # the age limit covers a change event that never arrived (bus down).
        if (cached is None or time.monotonic() - loaded_at > self.MAX_CACHE_AGE
                or any(instance.expires_at <= now for instance in cached)):
            loaded_at, cached = time.monotonic(), self.instances(name)
            with self._lock:
                self._cache[name] = (loaded_at, cached)
        return list(cached)

    def invalidate(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name, None)


def _patch_etcd3_watch() -> None:
    # python3-etcd3 0.13.0's watch thread calls `six.itervalues` without importing six, so
    # when a watch stream ends (etcd restarted, client closed) the callbacks are never told
    # and the thread dies with NameError. Giving the module the name lets our callback
    # hear about the failure and reload the cache.
    import etcd3.watch

    if not hasattr(etcd3.watch, "six"):
        import types

        etcd3.watch.six = types.SimpleNamespace(itervalues=lambda mapping: iter(list(mapping.values())))


def connect_etcd(endpoints: list[str], timeout: float = 5.0) -> Any:
    """A client of the first reachable endpoint; RegistryError naming them all when none answers."""
    import etcd3

    _patch_etcd3_watch()
    errors = []
    for endpoint in endpoints:
        host, _, port = endpoint.split("://")[-1].rpartition(":")
        client = etcd3.client(host=host, port=int(port), timeout=timeout)
        try:
            client.status()
        except Exception as exc:
            errors.append(f"{endpoint}: {type(exc).__name__}")
            client.close()
            continue
        return client
    raise RegistryError(f"etcd is unreachable ({'; '.join(errors)})")


class EtcdRegistry(RegistryBackend):
    """Instances as JSON under `<prefix>/services/<name>/<id>`, each under a lease of its TTL.

    `<prefix>/ids/<id>` (same lease) maps an id to its name. The cache is loaded once and
    then kept by a prefix watch; a delete that no deregister announced (a marker key under
    `<prefix>/gone/<id>`) is an expiry, reported by the one watcher that claims it.
    """

    kind = "etcd"
    MARKER_TTL = 60

    def __init__(self, endpoints: list[str], prefix: str = "/chameleon", timeout: float = 5.0) -> None:
        super().__init__()
        self.prefix = prefix.rstrip("/")
        self.endpoints = endpoints
        self.client = connect_etcd(endpoints, timeout)
        self._cache: dict[str, dict[str, Instance]] = {}
        self._loaded = False
        self._closing = False
        self._watch_id: Any = None

    # keys -------------------------------------------------------------------------------
    def _service_key(self, name: str, instance_id: str) -> str:
        return f"{self.prefix}/services/{name}/{instance_id}"

    def _id_key(self, instance_id: str) -> str:
        return f"{self.prefix}/ids/{instance_id}"

    def _gone_key(self, instance_id: str, lease_id: int) -> str:
        return f"{self.prefix}/gone/{instance_id}/{lease_id}"

    def _read(self, instance_id: str) -> tuple[Instance, int]:
        name, _ = self.client.get(self._id_key(instance_id))
        if name is None:
            raise InstanceNotFound(instance_id)
        value, meta = self.client.get(self._service_key(name.decode(), instance_id))
        if value is None:
            raise InstanceNotFound(instance_id)
        return Instance.from_dict(json.loads(value)), meta.lease_id

    def _write(self, instance: Instance, lease: Any) -> None:
        self.client.put(self._service_key(instance.name, instance.id), json.dumps(instance.as_dict()), lease=lease)

    # interface --------------------------------------------------------------------------
    def register(self, instance: Instance) -> Instance:
        try:
            previous, previous_lease = self._read(instance.id)
        except InstanceNotFound:
            previous, previous_lease = None, None
        now = timezone.now()
        instance.registered_at = instance.last_heartbeat = now
        instance.expires_at = now + timedelta(seconds=instance.ttl)
        lease = self.client.lease(max(1, round(instance.ttl)))
        if previous is not None:
            # Re-registering replaces the old keys without reporting an expiry.
            self._mark_gone(instance.id, previous_lease, "replaced")
            self.client.revoke_lease(previous_lease)
        self.client.put(self._id_key(instance.id), instance.name, lease=lease)
        self._write(instance, lease)
        return instance

    def heartbeat(self, instance_id: str) -> Instance:
        instance, lease_id = self._read(instance_id)
        responses = list(self.client.refresh_lease(lease_id))
        if not responses or responses[0].TTL <= 0:
            raise InstanceNotFound(instance_id)
        now = timezone.now()
        instance.last_heartbeat = now
        instance.expires_at = now + timedelta(seconds=instance.ttl)
        self._write(instance, lease_id)
        return instance

    def deregister(self, instance_id: str) -> Instance:
        instance, lease_id = self._read(instance_id)
        self._mark_gone(instance_id, lease_id, "deregistered")
        self.client.revoke_lease(lease_id)  # deletes both keys
        return instance

    def _mark_gone(self, instance_id: str, lease_id: int, reason: str) -> bool:
        """Claim the removal of the keys under `lease_id`; False when someone claimed it already."""
        marker = self._gone_key(instance_id, lease_id)
        return self.client.put_if_not_exists(marker, reason, lease=self.client.lease(self.MARKER_TTL))

    def get(self, instance_id: str) -> Instance:
        return self._read(instance_id)[0]

    def instances(self, name: str | None = None) -> list[Instance]:
        prefix = f"{self.prefix}/services/" + (f"{name}/" if name is not None else "")
        found = [Instance.from_dict(json.loads(value)) for value, _ in self.client.get_prefix(prefix)]
        return sorted(found, key=lambda instance: (instance.name, instance.id))

    def set_health(self, instance_id: str, health: str, message: str, checked_at: datetime) -> Instance:
        instance, lease_id = self._read(instance_id)
        instance.health, instance.health_message, instance.last_check = health, message[:500], checked_at
        self._write(instance, lease_id)
        return instance

    def watch(self) -> None:
        self._ensure_watch()

    def discover(self, name: str) -> list[Instance]:
        self._ensure_watch()
        with self._lock:
            return sorted(self._cache.get(name, {}).values(), key=lambda instance: instance.id)

    # the watch --------------------------------------------------------------------------
    def _ensure_watch(self) -> None:
        with self._lock:
            if self._loaded:
                return
            services = f"{self.prefix}/services/"
            # Load, then watch from the revision after the load, so no change falls in between.
            response = self.client.get_prefix_response(services)
            self._cache.clear()
            for kv in response.kvs:
                instance = Instance.from_dict(json.loads(kv.value))
                self._cache.setdefault(instance.name, {})[instance.id] = instance
            self._watch_id = self.client.add_watch_prefix_callback(
                services, self._on_watch, start_revision=response.header.revision + 1, prev_kv=True
            )
            self._loaded = True

    def _on_watch(self, response: Any) -> None:
        try:
            self._apply_watch_response(response)
        finally:
            # Runs on the watch thread: reporting an expiry may have used a database connection.
            connections.close_all()

    def _apply_watch_response(self, response: Any) -> None:
        import etcd3.events

        if self._closing:
            return  # responses still queued while the client closes
        if isinstance(response, Exception):
            logger.warning("etcd watch of %s failed (%s); reloading on next discover", self.prefix, response)
            with self._lock:
                self._loaded = False
            return
        for event in response.events:
            if isinstance(event, etcd3.events.PutEvent):
                instance = Instance.from_dict(json.loads(event.value))
                with self._lock:
                    self._cache.setdefault(instance.name, {})[instance.id] = instance
            elif isinstance(event, etcd3.events.DeleteEvent):
                try:
                    instance = Instance.from_dict(json.loads(event.prev_value))
                except (ValueError, TypeError):
                    continue
                with self._lock:
                    self._cache.get(instance.name, {}).pop(instance.id, None)
                self._report_expiry(instance, event.prev_lease)

    def _report_expiry(self, instance: Instance, lease_id: int) -> None:
        # A deregister or re-register claimed this lease's marker first; otherwise the lease
        # ran out, and of several watchers only the one that claims the marker reports it.
        try:
            claimed = self._mark_gone(instance.id, lease_id, "expired")
        except Exception:
            logger.exception("Could not claim the expiry of %s", instance.id)
            return
        if claimed:
            self._notify("expired", instance)

    def invalidate(self, name: str | None = None) -> None:
        pass  # the watch keeps the cache

    def close(self) -> None:
        self._closing = True
        if self._watch_id is not None:
            try:
                self.client.cancel_watch(self._watch_id)
            except Exception:
                pass
        self.client.close()
