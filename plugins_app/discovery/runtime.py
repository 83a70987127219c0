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
                 alert_interval: float | None = None) -> None:
        super().__init__(name="chameleon-discovery", daemon=True)
        self.tick = tick
        self.monitor_interval = monitor_interval or chameleon_settings.MONITOR_INTERVAL
        self.alert_interval = alert_interval or chameleon_settings.ALERT_INTERVAL
        self._stopping = threading.Event()
        self._next: dict[str, float] = {}

    def jobs(self) -> list[tuple[str, float, Callable[[], object]]]:
        from plugins_app.discovery import alerts, monitor, services

        return [
            ("registry", self.tick, self._registry_job),
            ("health", self.tick, services.run_due_checks),
            ("monitor", self.monitor_interval, monitor.collect),
            ("alerts", self.alert_interval, alerts.evaluate_rules),
        ]

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
