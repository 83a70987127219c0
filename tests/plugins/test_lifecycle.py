"""Lifecycle: transitions persisted (instance + history) and evented; failing hooks; health; restart."""

from __future__ import annotations

import pytest

from plugins_app import events
from plugins_app.contract import HealthStatus
from plugins_app.errors import InvalidTransition
from plugins_app.models import Plugin, PluginInstance, PluginStateChange
from tests.fixtures.services import wait_for
from tests.plugins.conftest import make_plugin


def states(name: str) -> list[tuple[str, str]]:
    return [(c.from_state, c.to_state) for c in PluginStateChange.objects.filter(plugin__name=name).order_by("id")]


def test_transitions_are_persisted_with_history(db_manager):
    db_manager.register(make_plugin("life"))
    db_manager.start("life")
    db_manager.stop("life")
    instance = PluginInstance.objects.get(plugin__name="life", node="test-node")
    assert instance.state == "stopped" and instance.version == "1.0.0"
    assert states("life") == [("registered", "registered"), ("registered", "initialized"),
                              ("initialized", "running"), ("running", "stopped")]
    assert Plugin.objects.get(name="life").enabled is True


def test_only_allowed_transitions_happen(bare_manager):
    bare_manager.register(make_plugin("strict"))
    entry = bare_manager.entries["strict"]
    with pytest.raises(InvalidTransition):
        bare_manager._transition(entry, "running")


@pytest.mark.parametrize("hook", ["initialize", "start"])
def test_an_exception_in_a_hook_fails_the_plugin_keeps_the_traceback_and_others_go_on(db_manager, hook):
    def explode(self, *args):
        raise RuntimeError(f"broken {hook}")

    db_manager.register(make_plugin("broken", **{hook: explode}))
    db_manager.register(make_plugin("healthy"))
    failures = db_manager.start_all()
    assert f"broken {hook}" in failures["broken"]
    instance = PluginInstance.objects.get(plugin__name="broken")
    assert instance.state == "failed"
    assert f"RuntimeError: broken {hook}" in instance.error
    assert "Traceback" in instance.traceback and "explode" in instance.traceback
    assert db_manager.entries["healthy"].state == "running"


def test_a_failing_stop_fails_the_plugin(db_manager):
    def explode(self, ctx):
        raise RuntimeError("no stopping")

    db_manager.register(make_plugin("sticky", stop=explode))
    db_manager.start_all()
    db_manager.stop("sticky")
    assert PluginInstance.objects.get(plugin__name="sticky").state == "failed"


def test_restart_counts_and_is_persisted(db_manager):
    db_manager.register(make_plugin("again"))
    db_manager.start_all()
    assert db_manager.restart("again") and db_manager.restart("again")
    instance = PluginInstance.objects.get(plugin__name="again")
    assert instance.restart_count == 2 and instance.state == "running"


@pytest.mark.django_db(transaction=True)
def test_transitions_and_health_changes_are_published_as_events(db_manager):
    seen: list[tuple[str, dict]] = []
    subscription = events.subscribe("plugin.#", lambda event: seen.append((event.topic, event.data)))
    health = {"ok": True}
    try:
        db_manager.register(make_plugin("evented", health=lambda self: HealthStatus(health["ok"], "checked")))
        db_manager.start_all()
        db_manager.check_health()
        health["ok"] = False
        db_manager.check_health()
        db_manager.restart("evented")
        wanted = ["plugin.registered", "plugin.initialized", "plugin.started", "plugin.health_changed",
                  "plugin.health_changed", "plugin.stopped", "plugin.initialized", "plugin.started",
                  "plugin.restarted"]
        wait_for(lambda: [t for t, d in seen if d.get("plugin") == "evented"] == wanted, 10,
                 f"plugin events in order (saw {seen})")
    finally:
        events.unsubscribe(subscription)
    unhealthy = [d for t, d in seen if t == "plugin.health_changed"][-1]
    assert unhealthy["healthy"] is False and unhealthy["node"] == "test-node"
    assert PluginInstance.objects.get(plugin__name="evented").healthy is False


def test_auto_restart_with_backoff_is_off_by_default_and_backs_off_when_on(db_manager, settings):
    from plugins_app.node import NodeHost

    health = {"ok": False}
    db_manager.register(make_plugin("flaky", health=lambda self: HealthStatus(health["ok"])))
    db_manager.start_all()
    db_manager.check_health()
    host = NodeHost("test")
    host.manager = db_manager
    assert host.auto_restart(now=100.0) == [], "off by default"
    settings.CHAMELEON = {**settings.CHAMELEON, "PLUGIN_AUTO_RESTART": True}
    assert host.auto_restart(now=100.0) == ["flaky"]
    db_manager.check_health()
    assert host.auto_restart(now=100.5) == [], "backing off"
    assert host.auto_restart(now=101.1) == ["flaky"]
    db_manager.check_health()
    assert host.auto_restart(now=102.0) == [], "the delay doubled"
    assert host.auto_restart(now=103.2) == ["flaky"]
    health["ok"] = True
    db_manager.check_health()
    assert host.auto_restart(now=104.0) == [] and "flaky" not in host._backoff
    assert db_manager.entries["flaky"].restart_count == 3


def test_a_plugins_recent_log_lines_reach_its_instance_row(db_manager):
    from plugins_app.node import NodeHost

    db_manager.register(make_plugin("chatty", start=lambda self, ctx: ctx.logger.info("chatty says %s", "hi")))
    db_manager.start_all()
    host = NodeHost("test")
    host.manager = db_manager
    host.heartbeat()
    lines = PluginInstance.objects.get(plugin__name="chatty").recent_logs
    assert any(line["message"] == "chatty says hi" and line["level"] == "info" for line in lines)


def test_instances_of_long_gone_nodes_are_pruned(db_manager):
    from datetime import timedelta

    from django.utils import timezone

    from core.models import Node
    from plugins_app.node import prune_gone_nodes

    db_manager.register(make_plugin("kept"))
    db_manager.start_all()
    Node.objects.create(name="test-node", kind="web", hostname="h", pid=1,
                        stopped_at=timezone.now() - timedelta(hours=2))
    assert prune_gone_nodes() == 0
    Node.objects.filter(name="test-node").update(stopped_at=timezone.now() - timedelta(days=2))
    assert prune_gone_nodes() == 1
    assert PluginStateChange.objects.filter(plugin__name="kept").exists()
