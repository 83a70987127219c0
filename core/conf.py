"""Chameleon's own settings (`settings.CHAMELEON`) with defaults, read as attributes."""

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    "ENV": "development",
    "SERVICE_NAME": "chameleon",
    "VERSION": "0.1.0",
    "DATA_DIR": "var",
    "HTTP_PORT": 8080,
    "REDIS_URL": "",
    "KAFKA_BROKERS": [],
    "ETCD_ENDPOINTS": [],
    "PLUGIN_DIRS": [],
    "NODE_NAME": "",
    "NODE_LABELS": {},
    "HEARTBEAT_INTERVAL": 5.0,
    "METRICS_PUBLIC": False,
    "SCHEDULER_TICK": 0.25,
    "SCHEDULER_LEASE_TTL": 10.0,
    "SCHEDULER_REQUEUE_AFTER": 60.0,
    "SCHEDULER_RUN_RETENTION_DAYS": 30.0,
    "SCHEDULER_HANDLER_MODULES": [],
    "EVENT_TRANSPORT": "auto",
    "EVENT_STREAM": "chameleon:events",
    "EVENT_RETENTION_DAYS": 7.0,
    "EVENT_QUEUE_SIZE": 10_000,
    "EVENT_WORKERS": 4,
    "EVENT_HANDLER_TIMEOUT": 10.0,
    "EVENT_POLL_INTERVAL": 0.1,
    "EVENT_WS_BUFFER": 1000,
    "EVENT_BACKLOG": 100,
    "EVENT_OUTBOX_GRACE": 30.0,
    "EVENT_OUTBOX_SWEEP_INTERVAL": 20.0,
    "PLUGIN_MODULES": [],
    "PLUGIN_CONFIG_DIR": "config/plugins",
    "PLUGIN_RECONCILE_INTERVAL": 1.0,
    "PLUGIN_HEALTH_INTERVAL": 15.0,
    "HOT_RELOAD": False,
    "PLUGIN_AUTO_RESTART": False,
    "ETCD_PREFIX": "/chameleon",
    "SERVICE_DEFAULT_TTL": 30.0,
    "MONITOR_INTERVAL": 10.0,
    "ALERT_INTERVAL": 5.0,
}


class ChameleonSettings:
    """`chameleon_settings.REDIS_URL` reads `settings.CHAMELEON["REDIS_URL"]` or its default."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown Chameleon setting: {name}")
        if name not in self._cache:
            self._cache[name] = getattr(settings, "CHAMELEON", {}).get(name, DEFAULTS[name])
        return self._cache[name]

    @property
    def heartbeat_timeout(self) -> float:
        """A node that has not beaten for this long is lost."""
        return max(3 * self.HEARTBEAT_INTERVAL, 15.0)

    def reload(self) -> None:
        self._cache.clear()


chameleon_settings = ChameleonSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "CHAMELEON":
        chameleon_settings.reload()


setting_changed.connect(_reload)
