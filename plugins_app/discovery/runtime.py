"""The web node's service-management thread: expiry, health checks, monitor collectors, alert rules.

`start_runtime()` is called once from the ASGI module (the web process). Every `tick`
the thread removes expired instances (database back end; etcd expires by itself and the
watch reports it), starts the health checks that are due, and on their own intervals
runs the performance monitor's collectors and evaluates the alert rules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections, connection

from core.conf import chameleon_settings

logger = logging.getLogger("chameleon.discovery.runtime")

_runtime: DiscoveryRuntime | None = None


class DiscoveryRuntime(threading.Thread):
    """Runs each job when its interval is due; a failing job is logged and tried again next time."""

    def __init__(self, *, tick: float = 0.5, monitor_interval: float | None = None,
                 alert_interval: float | None = None, mirror_config: bool | None = None) -> None:
        super().__init__(name="chameleon-discovery", daemon=True)
        self.tick = tick
        self.monitor_interval = monitor_interval or chameleon_settings.MONITOR_INTERVAL
        self.alert_interval = alert_interval or chameleon_settings.ALERT_INTERVAL
        self._stopping = threading.Event()
        self._next: dict[str, float] = {}
        self._mirror = None
        self.mirror_config = bool(chameleon_settings.ETCD_ENDPOINTS) if mirror_config is None else mirror_config

    def jobs(self) -> list[tuple[str, float, Callable[[], object]]]:
        from plugins_app.discovery import alerts, monitor, services

        return [
            ("registry", self.tick, self._registry_job),
            ("health", self.tick, services.run_due_checks),
            ("monitor", self.monitor_interval, monitor.collect),
            ("alerts", self.alert_interval, alerts.evaluate_rules),
            ("config", 5.0, self._config_job),
        ]

    def _config_job(self) -> None:
        # With etcd, the config center's current values are mirrored there and watched back.
        if not self.mirror_config:
            return
        from plugins_app.discovery.config_mirror import ConfigMirror

        if self._mirror is None:
            self._mirror = ConfigMirror(list(chameleon_settings.ETCD_ENDPOINTS), chameleon_settings.ETCD_PREFIX)
        self._mirror.start()

    @staticmethod
    def _registry_job() -> None:
        from plugins_app.discovery import services

        registry = services.get_registry()
        registry.watch()
        registry.purge_expired()

    def run_once(self) -> None:
        now = time.monotonic()
        for name, interval, job in self.jobs():
            if self._next.get(name, 0.0) > now:
                continue
            self._next[name] = now + interval
            try:
                job()
            except Exception:
                logger.exception("Service management job %s failed", name)
            finally:
                close_old_connections()

    def run(self) -> None:
        while not self._stopping.is_set():
            self.run_once()
            self._stopping.wait(self.tick)
        if self._mirror is not None:
            self._mirror.stop()
        connection.close()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self.ident is not None and self is not threading.current_thread():
            self.join(timeout)


def start_runtime() -> DiscoveryRuntime:
    """Start this process's service-management thread (idempotent)."""
    global _runtime
    if _runtime is None:
        _runtime = DiscoveryRuntime()
        _runtime.start()
        logger.info("Service management runtime started")
    return _runtime


def stop_runtime() -> None:
    global _runtime
    if _runtime is not None:
        _runtime.stop()
        _runtime = None
