"""A plugin that exercises every hook and context capability (discovered via CHAMELEON_PLUGIN_MODULES)."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

from plugins_app.contract import HealthStatus, Plugin, PluginKind

#: Every hook call, in order, across instances: (hook, detail).
CALLS: list[tuple[str, Any]] = []


class DummyPlugin(Plugin):
    """Records each hook; fails on demand through config (`fail_in`)."""

    name = "dummy"
    version = "1.2.0"
    description = "Test plugin exercising every hook."
    kind = PluginKind.SERVICE
    dependencies = ("logger>=1.0",)
    permissions = ("events:publish", "events:subscribe:test.*", "services:register", "services:get",
                   "tasks:register", "config:read", "data:write", "http:endpoints")
    config_schema = {
        "type": "object",
        "properties": {
            "greeting": {"type": "string", "minLength": 1, "default": "hi"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
            "fail_in": {"type": "string", "enum": ["", "initialize", "start", "stop", "health"], "default": ""},
        },
        "additionalProperties": False,
    }

    def _maybe_fail(self, hook: str) -> None:
        CALLS.append((hook, self.config.get("greeting")))
        if self.config.get("fail_in") == hook:
            raise RuntimeError(f"dummy fails in {hook}")

    def initialize(self, ctx: Any, config: dict[str, Any]) -> None:
        super().initialize(ctx, config)
        self._maybe_fail("initialize")

    def start(self, ctx: Any) -> None:
        self._maybe_fail("start")
        self.seen: list[str] = []
        ctx.register_service("dummy.echo", lambda value: value)
        ctx.subscribe("test.dummy", lambda event: self.seen.append(event.topic))
        ctx.register_task_handler("dummy.task", lambda **kwargs: {"dummy": kwargs})
        (ctx.data_dir / "started.txt").write_text(ctx.config["greeting"])
        self.log = ctx.get_service("logger")

    def stop(self, ctx: Any) -> None:
        self._maybe_fail("stop")

    def health(self) -> HealthStatus:
        self._maybe_fail("health")
        return HealthStatus(True, "fine", {"greeting": self.config["greeting"]})

    def on_config_change(self, new_config: dict[str, Any]) -> None:
        CALLS.append(("on_config_change", new_config.get("greeting")))
        self.config = new_config

    def endpoints(self) -> dict[str, Any]:
        return {"": self.index, "echo/<str:word>/": self.echo}

    def index(self, request: Any) -> JsonResponse:
        return JsonResponse({"plugin": self.name, "greeting": self.config["greeting"]})

    def echo(self, request: Any, word: str) -> JsonResponse:
        return JsonResponse({"echo": word})

    # Public methods, callable through PluginManager.call.
    def greet(self, who: str) -> str:
        return f"{self.config['greeting']}, {who}"

    def explode(self) -> None:
        raise ValueError("boom")


plugin = DummyPlugin
