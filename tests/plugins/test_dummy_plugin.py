"""The dummy plugin through every hook and context capability, on a real manager with the database."""

from __future__ import annotations

import pytest

from plugins_app import config_center
from plugins_app.builtin.logger import LoggerPlugin
from plugins_app.models import PluginInstance
from scheduler_app.handlers import get_handler
from tests.dummy_plugin import CALLS, DummyPlugin


@pytest.fixture
def dummy(db_manager):
    CALLS.clear()
    db_manager.register(LoggerPlugin)
    db_manager.register(DummyPlugin)
    assert db_manager.start_all() == {}
    return db_manager


def test_every_hook_runs_in_order(dummy, tmp_path):
    assert dummy.check_health()["dummy"].healthy
    config_center.update_config("dummy", {"greeting": "hey"})
    dummy.apply_config("dummy")
    dummy.restart("dummy")
    dummy.stop("dummy")
    assert [hook for hook, _ in CALLS] == ["initialize", "start", "health", "on_config_change", "stop",
                                           "initialize", "start", "stop"]
    assert (tmp_path / "dummy" / "started.txt").read_text() == "hey"


def test_what_the_plugin_registered_is_there_while_running_and_gone_after_stop(dummy):
    assert dummy.services.get("dummy.echo")("x") == "x"
    assert get_handler("dummy.task").owner == "plugin:dummy"
    dummy.stop("dummy")
    with pytest.raises(LookupError):
        dummy.services.get("dummy.echo")
    from scheduler_app.handlers import HandlerError

    with pytest.raises(HandlerError):
        get_handler("dummy.task")


@pytest.mark.parametrize("hook", ["initialize", "start"])
def test_a_hook_failure_is_kept_with_its_traceback(db_manager, hook):
    db_manager.register(LoggerPlugin)
    db_manager.register(DummyPlugin)
    config_center.seed_plugin_config("dummy")
    config_center.update_config("dummy", {"fail_in": hook})
    db_manager.start_all()
    instance = PluginInstance.objects.get(plugin__name="dummy")
    assert instance.state == "failed" and f"dummy fails in {hook}" in instance.traceback
    assert db_manager.entries["logger"].state == "running"


def test_an_unhealthy_plugin_is_marked(dummy):
    config_center.update_config("dummy", {"fail_in": "health"})
    dummy.apply_config("dummy")
    assert dummy.check_health()["dummy"].healthy is False
    assert PluginInstance.objects.get(plugin__name="dummy").healthy is False
