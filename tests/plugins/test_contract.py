"""The plugin contract: declared attributes are validated; builder/decorator; context permissions."""

from __future__ import annotations

import pytest

from plugins_app.context import PluginContext, PluginPermissionDenied, ServiceLocator
from plugins_app.contract import Plugin, PluginBuilder, PluginDefinitionError, plugin
from tests.plugins.conftest import make_plugin


@pytest.mark.parametrize("attrs, message", [
    ({"name": "Bad Name"}, "name"),
    ({"version": "not-a-version"}, "PEP 440"),
    ({"dependencies": ("logger>>1",)}, "invalid"),
    ({"config_schema": {"type": "nonsense"}}, "JSON Schema"),
    ({"permissions": ("root:everything",)}, "unknown permission"),
])
def test_invalid_declarations_are_refused_with_a_clear_message(attrs, message):
    attrs = {"name": "ok", "version": "1.0", **attrs}
    with pytest.raises(PluginDefinitionError, match=message):
        type("P", (Plugin,), attrs).validate()


def test_builder_makes_a_working_plugin_in_a_few_lines(bare_manager):
    greeter = (PluginBuilder("greeter", "2.0.1").describe("says hi").depends_on("base>=1")
               .on_start(lambda self, ctx: setattr(self, "started", True))
               .method("greet", lambda self, who: f"hi {who}").build())
    bare_manager.register(make_plugin("base", "1.5"))
    bare_manager.register(greeter)
    assert bare_manager.start_all() == {}
    assert bare_manager.call("greeter", "greet", "ann") == "hi ann"
    assert bare_manager.entries["greeter"].instance.started is True
    assert greeter.version == "2.0.1" and greeter.description == "says hi"


def test_decorator_declares_a_plugin():
    @plugin("decorated", "0.3", permissions=("events:publish",))
    class Decorated:
        def ping(self) -> str:
            return "pong"

    assert issubclass(Decorated, Plugin)
    assert Decorated.name == "decorated" and "ping" in Decorated.public_methods()


def _ctx(tmp_path, *permissions: str) -> PluginContext:
    return PluginContext("p", permissions, config={"a": 1}, data_root=tmp_path, services=ServiceLocator())


@pytest.mark.parametrize("use, permission", [
    (lambda ctx: ctx.publish("x.y", {}), "events:publish"),
    (lambda ctx: ctx.subscribe("user.login", print), "events:subscribe:user.login"),
    (lambda ctx: ctx.register_service("s", object()), "services:register"),
    (lambda ctx: ctx.get_service("s"), "services:get"),
    (lambda ctx: ctx.register_task_handler("h", print), "tasks:register"),
    (lambda ctx: ctx.config, "config:read"),
    (lambda ctx: ctx.data_dir, "data:write"),
])
def test_every_context_capability_is_checked_against_permissions(tmp_path, use, permission):
    with pytest.raises(PluginPermissionDenied) as denied:
        use(_ctx(tmp_path))
    assert denied.value.permission == permission
    assert "'p'" in str(denied.value) and permission in str(denied.value)


def test_a_subscribe_permission_covers_only_its_pattern(tmp_path):
    ctx = _ctx(tmp_path, "events:subscribe:user.*")
    assert ctx._may_subscribe("user.login")
    assert not ctx._may_subscribe("plugin.started")


def test_granted_capabilities_work(tmp_path):
    ctx = _ctx(tmp_path, "services:register", "services:get", "config:read", "data:write")
    ctx.register_service("svc", 42)
    assert ctx.get_service("svc") == 42
    assert ctx.config == {"a": 1}
    assert ctx.data_dir.is_dir()
    ctx.release()
    with pytest.raises(LookupError):
        ctx.get_service("svc")
