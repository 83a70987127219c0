"""Built-in `logger` plugin: a shared logging service other plugins look up, with recent lines kept."""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any

from plugins_app.contract import HealthStatus, Plugin


class LogService:
    """What `ctx.get_service("logger")` returns: `log(level, message, **fields)`, `recent(n)`."""

    def __init__(self, size: int, level: str) -> None:
        self._lines: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self._logger = logging.getLogger("chameleon.plugins.logger")
        self.level = level

    def log(self, level: str, message: str, **fields: Any) -> None:
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            numeric = logging.INFO
        self._logger.log(numeric, message, extra={"fields": fields} if fields else None)
        with self._lock:
            self._lines.append({"level": level.lower(), "message": message, **fields})

    def recent(self, count: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._lines)[-count:]


class LoggerPlugin(Plugin):
    """Offers the `logger` service and records lifecycle events of every plugin."""

    name = "logger"
    version = "1.0.0"
    description = "Shared logging service for plugins; keeps the recent lines."
    permissions = ("services:register", "events:subscribe:plugin.*", "config:read")
    config_schema = {
        "type": "object",
        "properties": {
            "buffer_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000},
            "level": {"type": "string", "enum": ["debug", "info", "warning", "error"], "default": "info"},
        },
        "additionalProperties": False,
    }

    def initialize(self, ctx: Any, config: dict[str, Any]) -> None:
        super().initialize(ctx, config)
        self.service = LogService(config["buffer_size"], config["level"])

    def start(self, ctx: Any) -> None:
        ctx.register_service("logger", self.service)
        # Each node's logger records its own node's plugin events (others log theirs).
        ctx.subscribe("plugin.*", self._on_plugin_event, filter=lambda event: event.node == ctx.node)

    def _on_plugin_event(self, event: Any) -> None:
        data = event.data
        self.service.log("info", f"{event.topic} {data.get('plugin', '')}", node=data.get("node", ""))

    def on_config_change(self, new_config: dict[str, Any]) -> None:
        self.service.level = new_config["level"]

    def health(self) -> HealthStatus:
        return HealthStatus(True, "ok", {"lines": len(self.service.recent(10**6))})

    def log(self, level: str, message: str) -> bool:
        self.service.log(level, message)
        return True

    def recent(self, count: int = 50) -> list[dict[str, Any]]:
        return self.service.recent(count)


plugin = LoggerPlugin
