"""Built-in `etcd` plugin: an etcd client for other plugins, and optionally the registry and config back end.

Other plugins get the client with `ctx.get_service("etcd")` (the python3-etcd3 client).
With `registry: true` the service registry of this process moves to etcd while the plugin
runs (the previous back end comes back when it stops); with `mirror_config: true` the
config center's current values are mirrored to etcd and external changes watched in.
Without endpoints (none in the config and no ETCD_ENDPOINTS) it runs idle and says so.
"""

from __future__ import annotations

from typing import Any

from core.conf import chameleon_settings
from plugins_app.contract import HealthStatus, Plugin


class EtcdPlugin(Plugin):
    """Connects to etcd on start; `get`, `put` and `delete` are callable through the manager."""

    name = "etcd"
    version = "1.0.0"
    description = "etcd client; optional service-registry and config-center back end."
    permissions = ("services:register",)
    config_schema = {
        "type": "object",
        "properties": {
            "endpoints": {"type": "array", "items": {"type": "string", "pattern": "^[^:/]+(:[0-9]+)?$|://"}},
            "prefix": {"type": "string", "minLength": 1},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 5},
            "registry": {"type": "boolean", "default": False},
            "mirror_config": {"type": "boolean", "default": False},
        },
        "additionalProperties": False,
    }

    def initialize(self, ctx: Any, config: dict[str, Any]) -> None:
        self.endpoints = list(config.get("endpoints") or chameleon_settings.ETCD_ENDPOINTS)
        self.prefix = config.get("prefix") or chameleon_settings.ETCD_PREFIX
        self.config = config
        self.client = self.mirror = self._previous_registry = None
        self._registry = None

    def start(self, ctx: Any) -> None:
        from plugins_app.discovery import services
        from plugins_app.discovery.config_mirror import ConfigMirror
        from plugins_app.discovery.registry import EtcdRegistry, connect_etcd

        if not self.endpoints:
            return
        self.client = connect_etcd(self.endpoints, timeout=self.config["timeout"])
        ctx.register_service("etcd", self.client)
        if self.config["registry"]:
            self._registry = EtcdRegistry(self.endpoints, prefix=self.prefix, timeout=self.config["timeout"])
            self._previous_registry = services.set_registry(self._registry)
        if self.config["mirror_config"]:
            self.mirror = ConfigMirror(self.endpoints, prefix=self.prefix)
            self.mirror.start()

    def stop(self, ctx: Any) -> None:
        from plugins_app.discovery import services

        if self.mirror is not None:
            self.mirror.stop()
            self.mirror = None
        if self._registry is not None:
            services.set_registry(self._previous_registry)
            self._registry.close()
            self._registry = None
        if self.client is not None:
            self.client.close()
            self.client = None

    def health(self) -> HealthStatus:
        if not self.endpoints:
            return HealthStatus(True, "not configured (no endpoints)", {"configured": False})
        if self.client is None:
            return HealthStatus(False, "not connected")
        try:
            status = self.client.status()
        except Exception as exc:
            return HealthStatus(False, f"etcd unreachable: {type(exc).__name__}", {"endpoints": self.endpoints})
        return HealthStatus(True, f"etcd {status.version}", {
            "endpoints": self.endpoints, "registry": self._registry is not None, "mirror_config": self.mirror is not None,
        })

    def _require_client(self) -> Any:
        if self.client is None:
            raise RuntimeError("etcd is not configured for this plugin")
        return self.client

    def get(self, key: str) -> str | None:
        value, _ = self._require_client().get(key)
        return value.decode() if value is not None else None

    def put(self, key: str, value: str) -> None:
        self._require_client().put(key, value)

    def delete(self, key: str) -> bool:
        return bool(self._require_client().delete(key))


plugin = EtcdPlugin
