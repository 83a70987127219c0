"""Hot reload: the new code starts before the old stops; on failure the old keeps running."""

from __future__ import annotations

import os
import textwrap
import time

import pytest

from plugins_app.models import PluginInstance, PluginStateChange
from plugins_app.registry import discover
from tests.plugins import reload_log

SOURCE = textwrap.dedent('''
    from plugins_app.contract import Plugin
    from tests.plugins import reload_log

    class Hot(Plugin):
        name = "hot"
        version = "{version}"

        def start(self, ctx):
            {start_body}
            reload_log.EVENTS.append("start {version}")

        def stop(self, ctx):
            reload_log.EVENTS.append("stop {version}")

        def which(self):
            return "{version}"

    plugin = Hot
''')


def write(path, version: str, start_body: str = "pass") -> None:
    path.write_text(SOURCE.format(version=version, start_body=start_body))
    # Make sure the new file has a different mtime than the old one (watchers compare them).
    stamp = time.time() + len(reload_log.EVENTS)
    os.utime(path, (stamp, stamp))


@pytest.fixture
def hot(tmp_path, settings, db_manager):
    reload_log.EVENTS.clear()
    path = tmp_path / "hot.py"
    write(path, "1.0")
    settings.CHAMELEON = {**settings.CHAMELEON, "PLUGIN_DIRS": [str(tmp_path)]}
    found = discover()
    cls, source = found.plugins["hot"]
    db_manager.register(cls, source)
    assert db_manager.start("hot")
    return path


def test_reload_starts_the_new_code_before_stopping_the_old(hot, db_manager):
    write(hot, "2.0")
    result = db_manager.reload("hot")
    assert result == {"ok": True, "plugin": "hot", "version": "2.0", "previous_version": "1.0"}
    assert reload_log.EVENTS == ["start 1.0", "start 2.0", "stop 1.0"]
    assert db_manager.call("hot", "which") == "2.0"
    instance = PluginInstance.objects.get(plugin__name="hot")
    assert instance.state == "running" and instance.version == "2.0"
    assert [v["version"] for v in instance.loaded_versions] == ["1.0", "2.0"]
    assert PluginStateChange.objects.filter(plugin__name="hot", to_state="reloading").exists()


@pytest.mark.parametrize("version, start_body, expected", [
    ("3.0", "raise RuntimeError('new code broken')", "RuntimeError: new code broken"),
    ("3.0", "pass\n        syntax error here", "SyntaxError"),
])
def test_a_failed_reload_keeps_the_old_instance_and_reports_the_error(hot, db_manager, version, start_body,
                                                                       expected):
    write(hot, version, start_body)
    result = db_manager.reload("hot")
    assert result["ok"] is False and result["version"] == "1.0"
    assert expected in result["error"] and "Traceback" in result["traceback"]
    assert db_manager.call("hot", "which") == "1.0"
    assert "stop 1.0" not in reload_log.EVENTS
    instance = PluginInstance.objects.get(plugin__name="hot")
    assert instance.state == "running" and instance.version == "1.0"
    assert expected in instance.error and "Traceback" in instance.traceback


def test_directory_watch_reloads_changed_plugins(hot, db_manager, settings):
    from plugins_app.node import NodeHost

    host = NodeHost("test")
    host.manager = db_manager
    host._snapshot_mtimes()
    write(hot, "4.0")
    host.watch()
    assert db_manager.call("hot", "which") == "4.0"


def test_reloading_a_failed_plugin_starts_the_fixed_code(tmp_path, settings, db_manager):
    reload_log.EVENTS.clear()
    path = tmp_path / "hot.py"
    write(path, "1.0", "raise RuntimeError('broken at first')")
    settings.CHAMELEON = {**settings.CHAMELEON, "PLUGIN_DIRS": [str(tmp_path)]}
    cls, source = discover().plugins["hot"]
    db_manager.register(cls, source)
    assert not db_manager.start("hot")
    write(path, "1.1")
    assert db_manager.reload("hot")["ok"] is True
    assert db_manager.entries["hot"].state == "running"
    assert db_manager.call("hot", "which") == "1.1"
