"""Service management: register, heartbeat, deregister, health checks, discovery and resolve.

Every door (REST API, admin, plugins) calls these functions. The active registry back end
is etcd when `ETCD_ENDPOINTS` is set, the database otherwise (`get_registry()`). Changes
are published as `service.registered`, `service.deregistered` (reason `deregistered`,
`expired` or `replaced`) and `service.health_changed`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from core.conf import chameleon_settings
from plugins_app import events
from plugins_app.discovery import health as checks
from plugins_app.discovery.balancer import STRATEGIES, Balancer
from plugins_app.discovery.models import Health
from plugins_app.discovery.registry import (
    DatabaseRegistry,
    EtcdRegistry,
    Instance,
    InstanceNotFound,
    RegistryBackend,
    RegistryError,
)

logger = logging.getLogger("chameleon.discovery")

__all__ = [
    "STRATEGIES", "Instance", "InstanceNotFound", "NoHealthyInstance", "RegistryError", "acquire",
    "check_instance", "deregister_instance", "discover", "get_instance", "get_registry",
    "heartbeat_instance", "list_instances", "register_instance", "resolve", "run_due_checks",
]

_registry: RegistryBackend | None = None
_registry_lock = threading.Lock()
balancer = Balancer()
_check_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="chameleon-service-health")
_checks_running: set[str] = set()
_checks_lock = threading.Lock()


class NoHealthyInstance(LookupError):
    """`resolve` found no healthy instance of the service."""


def get_registry() -> RegistryBackend:
    """This process's registry back end (created on first use from the settings)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = make_registry()
        return _registry


def make_registry() -> RegistryBackend:
    if chameleon_settings.ETCD_ENDPOINTS:
        backend: RegistryBackend = EtcdRegistry(
            list(chameleon_settings.ETCD_ENDPOINTS), prefix=chameleon_settings.ETCD_PREFIX
        )
    else:
        backend = DatabaseRegistry()
    backend.on_change(_on_backend_change)
    return backend


def set_registry(backend: RegistryBackend | None) -> RegistryBackend | None:
    """Install `backend` as this process's registry (tests, the etcd plugin); returns the previous one."""
    global _registry
    with _registry_lock:
        previous, _registry = _registry, backend
    if backend is not None and _on_backend_change not in backend._callbacks:
        backend.on_change(_on_backend_change)
    balancer.reset()
    return previous


def _on_backend_change(kind: str, instance: Instance) -> None:
    if kind == "expired":
        logger.info("Service instance %s/%s expired", instance.name, instance.id)
        _publish("service.deregistered", instance, reason="expired")


def _publish(topic: str, instance: Instance, **extra: Any) -> None:
    data = {
        "id": instance.id, "name": instance.name, "version": instance.version,
        "endpoint": instance.endpoint, "health": instance.health, **extra,
    }
    try:
        events.publish(topic, data, source="system")
    except Exception:  # the registry change happened; a bus problem must not undo it
        logger.exception("Could not publish %s for %s", topic, instance.id)
    get_registry().invalidate(instance.name)


def invalidate_on_event(event: events.Event) -> None:
    """Bus subscriber: another node changed a service, so drop its cached instances."""
    name = (event.data or {}).get("name")
    if isinstance(name, str) and _registry is not None:
        _registry.invalidate(name)


def register_instance(
    *,
    name: str,
    endpoint: str,
    id: str | None = None,
    version: str = "",
    metadata: dict[str, Any] | None = None,
    weight: int = 1,
    check: dict[str, Any] | None = None,
    ttl: float | None = None,
) -> Instance:
    """Register (or re-register) an instance that lives for `ttl` seconds unless it heartbeats."""
    check = checks.validate_check(check or {})
    instance = Instance(
        id=id or uuid.uuid4().hex,
        name=name,
        endpoint=endpoint,
        version=version,
        metadata=metadata or {},
        weight=weight,
        check=check,
        # Without a check the heartbeat is the health signal; with one, the first check decides.
        health=Health.UNKNOWN if check else Health.HEALTHY,
        health_message="waiting for the first check" if check else "no check: healthy while heartbeating",
        ttl=float(ttl if ttl is not None else chameleon_settings.SERVICE_DEFAULT_TTL),
    )
    registry = get_registry()
    try:
        previous = registry.get(instance.id)
    except InstanceNotFound:
        previous = None
    registry.register(instance)
    if previous is not None:
        _publish("service.deregistered", previous, reason="replaced")
    _publish("service.registered", instance, ttl=instance.ttl)
    logger.info("Service instance %s/%s registered at %s", name, instance.id, endpoint)
    return instance


def heartbeat_instance(instance_id: str) -> Instance:
    """Keep an instance alive for another TTL; InstanceNotFound when it expired or never existed."""
    return get_registry().heartbeat(instance_id)


def deregister_instance(instance_id: str) -> Instance:
    instance = get_registry().deregister(instance_id)
    _publish("service.deregistered", instance, reason="deregistered")
    logger.info("Service instance %s/%s deregistered", instance.name, instance.id)
    return instance


def get_instance(instance_id: str) -> Instance:
    return get_registry().get(instance_id)


def list_instances(*, name: str | None = None, health: str | None = None) -> list[Instance]:
    """Every live instance, healthy or not (unhealthy ones are reported, never hidden)."""
    registry = get_registry()
    registry.purge_expired()
    found = registry.instances(name)
    return [instance for instance in found if health is None or instance.health == health]


def discover(name: str, *, include_unhealthy: bool = False) -> list[Instance]:
    """The healthy instances of `name` from the cache kept fresh by watch / change events."""
    found = get_registry().discover(name)
    return found if include_unhealthy else [instance for instance in found if instance.healthy]


def resolve(name: str, strategy: str = "round_robin") -> Instance:
    """One healthy instance of `name` picked by `strategy`; NoHealthyInstance when there is none."""
    instance = balancer.pick(name, discover(name), strategy)
    if instance is None:
        raise NoHealthyInstance(f"No healthy instance of service {name!r}")
    return instance


@contextlib.contextmanager
def acquire(name: str, strategy: str = "least_connections") -> Iterator[Instance]:
    """Resolve an instance and hold a connection to it for the block (for least_connections)."""
    instance = resolve(name, strategy)
    balancer.acquire(instance)
    try:
        yield instance
    finally:
        balancer.release(instance)


def check_instance(instance: Instance) -> Instance:
    """Run the instance's health check now, store the result, publish a transition."""
    result = checks.run_check(instance)
    new_health = Health.HEALTHY if result.ok else Health.UNHEALTHY
    try:
        updated = get_registry().set_health(instance.id, new_health, result.message, timezone.now())
    except InstanceNotFound:
        return instance
    if new_health != instance.health:
        logger.log(
            logging.INFO if result.ok else logging.WARNING,
            "Service instance %s/%s is %s (was %s): %s",
            instance.name, instance.id, new_health, instance.health, result.message,
        )
        _publish("service.health_changed", updated, previous=instance.health, message=result.message)
    return updated


def _check_in_background(instance: Instance) -> None:
    try:
        check_instance(instance)
    except Exception:
        logger.exception("Health check of %s failed", instance.id)
    finally:
        with _checks_lock:
            _checks_running.discard(instance.id)
        close_old_connections()


def run_due_checks(*, wait: bool = False) -> int:
    """Start the checks whose interval has passed (each instance at most once at a time)."""
    now = timezone.now()
    futures = []
    for instance in list_instances():
        if not instance.check:
            continue
        due = instance.last_check is None or instance.last_check + timedelta(seconds=checks.check_interval(instance)) <= now
        with _checks_lock:
            if not due or instance.id in _checks_running:
                continue
            _checks_running.add(instance.id)
        futures.append(_check_executor.submit(_check_in_background, instance))
    if wait:
        for future in futures:
            future.result()
    return len(futures)


def purge_expired() -> list[Instance]:
    return get_registry().purge_expired()


def service_summary() -> dict[str, dict[str, int]]:
    """Instances per service and health, e.g. {"api": {"healthy": 2, "unhealthy": 1}}."""
    summary: dict[str, dict[str, int]] = {}
    for instance in list_instances():
        counts = summary.setdefault(instance.name, {state: 0 for state in Health.values})
        counts[instance.health] += 1
    return summary
