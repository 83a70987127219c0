"""Built-in `redis` plugin: a Redis (or Redis Cluster) client for other plugins.

Other plugins get the client with `ctx.get_service("redis")` (redis-py's `Redis`, or
`RedisCluster` with `cluster: true`). `ping`, `get`, `set` and `delete` are callable
through the manager. Without a URL (none in the config and no REDIS_URL) it runs idle
and says so in its health.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster

from core.conf import chameleon_settings
from plugins_app.contract import HealthStatus, Plugin


class RedisPlugin(Plugin):
    """Connects on start (one node or a cluster) and shares the client as the `redis` service."""

    name = "redis"
    version = "1.0.0"
    description = "Redis / Redis Cluster client shared with other plugins (service `redis`)."
    permissions = ("services:register", "config:read")
    config_schema = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "pattern": "^(redis|rediss|unix)://"},
            "cluster": {"type": "boolean", "default": False},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 5},
            "decode_responses": {"type": "boolean", "default": True},
        },
        "additionalProperties": False,
    }

    def initialize(self, ctx: Any, config: dict[str, Any]) -> None:
        self.url = config.get("url") or chameleon_settings.REDIS_URL
        self.settings = config
        self.client: redis.Redis | RedisCluster | None = None

    def start(self, ctx: Any) -> None:
        if not self.url:
            return
        options = {
            "socket_timeout": self.settings["timeout"], "socket_connect_timeout": self.settings["timeout"],
            "decode_responses": self.settings["decode_responses"],
        }
        if self.settings["cluster"]:
            self.client = RedisCluster.from_url(self.url, **options)
        else:
            self.client = redis.Redis.from_url(self.url, health_check_interval=15, **options)
        self.client.ping()  # fail start (and mark the plugin failed) when Redis is unreachable
        ctx.register_service("redis", self.client)

    def stop(self, ctx: Any) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def health(self) -> HealthStatus:
        if not self.url:
            return HealthStatus(True, "not configured (no url, no REDIS_URL)", {"configured": False})
        if self.client is None:
            return HealthStatus(False, "not connected")
        try:
            self.client.ping()
        except redis.RedisError as exc:
            return HealthStatus(False, f"unreachable: {exc}")
        details: dict[str, Any] = {"cluster": self.settings["cluster"]}
        if self.settings["cluster"]:
            details["nodes"] = len(self.client.get_nodes())
        return HealthStatus(True, "ok", details)

    # Methods other plugins may call through the manager.
    def ping(self) -> bool:
        return bool(self._connected().ping())

    def get(self, key: str) -> Any:
        return self._connected().get(key)

    def set(self, key: str, value: Any, ex: float | None = None) -> bool:
        return bool(self._connected().set(key, value, ex=ex))

    def delete(self, *keys: str) -> int:
        return int(self._connected().delete(*keys))

    def _connected(self) -> redis.Redis | RedisCluster:
        if self.client is None:
            raise RuntimeError("the redis plugin is not connected (no url configured, or not started)")
        return self.client


plugin = RedisPlugin
