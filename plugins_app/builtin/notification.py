"""Built-in `notification` demo plugin (depends on `hello`): keeps notifications for welcomed users."""

from __future__ import annotations

import collections
from typing import Any

from plugins_app.contract import HealthStatus, Plugin


class NotificationPlugin(Plugin):
    """Collects `user.welcome` events as notifications and sends ad-hoc ones."""

    name = "notification"
    version = "1.0.0"
    description = "Demo: turns user.welcome events into notifications; depends on hello."
    dependencies = ("hello>=1.0",)
    permissions = ("events:publish", "events:subscribe:user.*", "config:read")
    config_schema = {
        "type": "object",
        "properties": {"keep": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}},
        "additionalProperties": False,
    }

    def start(self, ctx: Any) -> None:
        self.sent: collections.deque[dict[str, Any]] = collections.deque(maxlen=ctx.config["keep"])
        ctx.subscribe("user.welcome", self._on_welcome)

    def _on_welcome(self, event: Any) -> None:
        self.sent.append({"to": event.data.get("user", ""), "message": event.data.get("message", "")})

    def notify(self, to: str, message: str) -> dict[str, Any]:
        notification = {"to": to, "message": message}
        self.sent.append(notification)
        self.ctx.publish("notification.sent", notification)
        return notification

    def recent(self, count: int = 20) -> list[dict[str, Any]]:
        return list(self.sent)[-count:]

    def health(self) -> HealthStatus:
        return HealthStatus(True, "ok", {"sent": len(self.sent)})


plugin = NotificationPlugin
