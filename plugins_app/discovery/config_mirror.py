"""Config center values in etcd: current versions mirrored out, external changes watched in.

With etcd configured, each config document's current version lives at
`<prefix>/config/<key>` as `{"version": n, "data": {...}}`. A `config.updated` or
`config.rolled_back` event (or `sync_all()` at start) writes the current version there.
A value changed in etcd by someone else (the envelope with other data, or a plain JSON
object written with `etcdctl put`) becomes a new version of the document through the
config center -- validated, audited and evented like any other change; an invalid one is
refused and etcd is set back to the current version.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from django.db import connections

from plugins_app import events
from plugins_app.discovery.registry import connect_etcd

logger = logging.getLogger("chameleon.discovery.config")

EXTERNAL_COMMENT = "changed in etcd"


class ConfigMirror:
    """Keeps `<prefix>/config/` in etcd and the config center in step, both ways."""

    def __init__(self, endpoints: list[str], prefix: str = "/chameleon") -> None:
        self.client = connect_etcd(endpoints)
        self.prefix = f"{prefix.rstrip('/')}/config/"
        self._watch_id: Any = None
        self._subscription: Any = None
        self._lock = threading.Lock()

    def key_for(self, key: str) -> str:
        return f"{self.prefix}{key}"

    # out: the config center -> etcd --------------------------------------------------------
    def mirror(self, key: str) -> bool:
        """Write the current version of `key` to etcd; False when it has none."""
        from plugins_app import config_center

        current = config_center.current_config(key)
        if current is None:
            return False
        version, data = current
        self.client.put(self.key_for(key), json.dumps({"version": version, "data": data}, sort_keys=True))
        return True

    def sync_all(self) -> int:
        from plugins_app.models import ConfigDocument

        return sum(self.mirror(key) for key in ConfigDocument.objects.values_list("key", flat=True))

    def _on_config_event(self, event: events.Event) -> None:
        key = (event.data or {}).get("key")
        if isinstance(key, str):
            try:
                self.mirror(key)
            except Exception:
                logger.exception("Could not mirror config %s to etcd", key)
            finally:
                connections.close_all()  # a bus worker thread: do not keep its connection open

    # in: etcd -> the config center ---------------------------------------------------------
    def apply_external(self, key: str, raw: bytes) -> int | None:
        """Turn a value found in etcd into a new version when it differs; returns that version."""
        from plugins_app import config_center
        from plugins_app.errors import ConfigInvalid

        try:
            value = json.loads(raw)
        except ValueError:
            logger.warning("Ignoring config %s in etcd: not JSON", key)
            self._restore(key)
            return None
        envelope = isinstance(value, dict) and set(value) == {"version", "data"}
        data = value["data"] if envelope else value
        current = config_center.current_config(key)
        if envelope and self._is_own_mirror(key, value["version"], data):
            # Our own write of some version; an older one may land after a newer one (events
            # are handled concurrently), so put the current version back when it is stale.
            if current is not None and value["version"] != current[0]:
                self.mirror(key)
            return None
        if current is not None and current[1] == data:
            return None  # nothing new
        with self._lock:
            try:
                version = config_center.update_config(key, data, comment=EXTERNAL_COMMENT)
            except ConfigInvalid as exc:
                logger.warning("Refused config %s changed in etcd: %s", key, exc.fields)
                self._restore(key)
                return None
        logger.info("Config %s changed in etcd: now version %s", key, version.number)
        return version.number

    @staticmethod
    def _is_own_mirror(key: str, number: Any, data: Any) -> bool:
        """True when version `number` of `key` holds exactly `data` (what `mirror()` wrote)."""
        from plugins_app.models import ConfigVersion

        if not isinstance(number, int) or isinstance(number, bool):
            return False
        stored = ConfigVersion.objects.filter(document__key=key, number=number).values_list("data", flat=True)
        return any(item == data for item in stored)

    def _restore(self, key: str) -> None:
        if not self.mirror(key):
            self.client.delete(self.key_for(key))

    def _on_watch(self, response: Any) -> None:
        import etcd3.events

        try:
            if isinstance(response, Exception):
                logger.warning("etcd config watch failed (%s); restarting it", response)
                self._watch_id = None
                return
            for event in response.events:
                if isinstance(event, etcd3.events.PutEvent):
                    key = event.key.decode()[len(self.prefix):]
                    try:
                        self.apply_external(key, event.value)
                    except Exception:
                        logger.exception("Could not apply config %s from etcd", key)
        finally:
            connections.close_all()  # the watch thread used the database

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Mirror every document, then follow both directions (idempotent; restarts a broken watch)."""
        if self._subscription is None:
            self._subscription = events.subscribe("config.#", self._on_config_event)
        if self._watch_id is None:
            revision = self.client.get_prefix_response(self.prefix).header.revision
            self.sync_all()
            self._watch_id = self.client.add_watch_prefix_callback(
                self.prefix, self._on_watch, start_revision=revision + 1
            )

    def stop(self) -> None:
        if self._subscription is not None:
            events.unsubscribe(self._subscription)
            self._subscription = None
        if self._watch_id is not None:
            try:
                self.client.cancel_watch(self._watch_id)
            except Exception:
                pass
            self._watch_id = None
        self.client.close()
