"""Each plugin's recent log lines on this node, kept in memory and shipped with the instance row."""

from __future__ import annotations

import collections
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from core.logging import plugin_var

KEEP = 100
PREFIX = "chameleon.plugins."


class RecentPluginLogs(logging.Handler):
    """Keeps the last KEEP lines per plugin: records logged by plugin code (ctx.logger) or about it."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: dict[str, collections.deque[dict[str, Any]]] = {}
        self.changed: set[str] = set()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        plugin = getattr(record, "plugin", "") or plugin_var.get()
        if not plugin and record.name.startswith(PREFIX):
            plugin = record.name[len(PREFIX):].split(".", 1)[0]
        if not plugin or plugin in ("node", "http", "config"):
            return
        try:
            line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
                    "level": record.levelname.lower(), "message": record.getMessage()}
        except Exception:
            return
        with self._guard:
            self.lines.setdefault(plugin, collections.deque(maxlen=KEEP)).append(line)
            self.changed.add(plugin)

    def recent(self, plugin: str, count: int = KEEP) -> list[dict[str, Any]]:
        with self._guard:
            return list(self.lines.get(plugin, ()))[-count:]

    def take_changed(self) -> set[str]:
        with self._guard:
            changed, self.changed = self.changed, set()
            return changed


handler = RecentPluginLogs()


def install() -> None:
    target = logging.getLogger("chameleon.plugins")
    if handler not in target.handlers:
        target.addHandler(handler)
