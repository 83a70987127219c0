"""Built-in `hello` demo plugin: greets, and welcomes users who log in (`user.login` -> `user.welcome`)."""

from __future__ import annotations

from typing import Any

from plugins_app.contract import HealthStatus, Plugin


class HelloPlugin(Plugin):
    """Greets by name; on `user.login` publishes `user.welcome` with a greeting."""

    name = "hello"
    version = "1.0.0"
    description = "Demo: greets, reacts to user.login and publishes user.welcome."
    dependencies = ("logger>=1.0,<2",)
    permissions = ("events:publish", "events:subscribe:user.*", "services:get", "config:read")
    config_schema = {
        "type": "object",
        "properties": {"greeting": {"type": "string", "minLength": 1, "maxLength": 100, "default": "Hello"}},
        "additionalProperties": False,
    }

    def start(self, ctx: Any) -> None:
        self.greeting = ctx.config["greeting"]
        self.welcomed = 0
        self.log = ctx.get_service("logger")
        # One welcome per login in the whole cluster, whichever node's hello takes it.
        ctx.subscribe("user.login", self._on_login, group="hello.welcome")

    def _on_login(self, event: Any) -> None:
        user = event.data.get("user") or event.data.get("username") or "there"
        message = self.greet(user)
        self.welcomed += 1
        self.ctx.publish("user.welcome", {"user": user, "message": message})

    def on_config_change(self, new_config: dict[str, Any]) -> None:
        self.greeting = new_config["greeting"]

    def greet(self, name: str = "world") -> str:
        message = f"{self.greeting}, {name}!"
        self.log.log("info", message)
        return message

    def health(self) -> HealthStatus:
        return HealthStatus(True, "ok", {"welcomed": self.welcomed})


plugin = HelloPlugin
