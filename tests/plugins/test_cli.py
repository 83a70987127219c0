"""`manage.py plugins`: list and operate plugins from a shell, audited as CLI."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from core.models import AuditEntry
from plugins_app.builtin.hello import HelloPlugin
from plugins_app.builtin.logger import LoggerPlugin
from plugins_app.models import PluginCommand


@pytest.fixture
def hosted(db_manager):
    db_manager.register(LoggerPlugin)
    db_manager.register(HelloPlugin)
    db_manager.start_all()
    from core.services import record_heartbeat

    record_heartbeat("test-node", "web")
    return db_manager


def run(*args: str) -> str:
    out = StringIO()
    call_command("plugins", *args, stdout=out)
    return out.getvalue()


def test_list_and_show(hosted):
    listing = run("list")
    assert "hello" in listing and "test-node=running" in listing
    assert "dependents: -" in run("show", "hello")


def test_restart_records_a_command_and_an_audit_entry(hosted):
    output = run("restart", "hello", "--wait", "0")
    assert "command #" in output and "test-node: pending" in output
    assert PluginCommand.objects.get().source == "cli"
    assert AuditEntry.objects.get(action="plugin.restart").source == "cli"


def test_errors_are_one_clear_line(hosted):
    with pytest.raises(CommandError, match="No plugin named 'nope'"):
        run("restart", "nope")
    with pytest.raises(CommandError, match="depend on it"):
        run("stop", "logger")
