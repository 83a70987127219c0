"""The admin console: badges, actions through the services, config editor with validation, diff, rollback."""

from __future__ import annotations

import pytest
from django.test import Client

from core.models import AuditEntry
from plugins_app import config_center
from plugins_app.builtin.hello import HelloPlugin
from plugins_app.builtin.logger import LoggerPlugin
from plugins_app.models import ConfigDocument, Plugin, PluginCommand
from tests.fixtures.users import make_user


@pytest.fixture
def hosted(db_manager):
    db_manager.register(LoggerPlugin)
    db_manager.register(HelloPlugin)
    db_manager.start_all()
    return db_manager


def staff_client(group: str) -> Client:
    user = make_user(f"staff-{group}", group, is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def test_plugin_list_shows_state_badges(hosted):
    page = staff_client("viewer").get("/admin/plugins_app/plugin/").content.decode()
    assert '<span class="badge badge-running" title="test-node">running</span>' in page


def test_operator_restarts_from_the_admin_action(hosted):
    client = staff_client("operator")
    selected = [str(pk) for pk in Plugin.objects.values_list("pk", flat=True)]
    response = client.post("/admin/plugins_app/plugin/", {"action": "restart_plugins", "_selected_action": selected},
                           follow=True)
    assert response.status_code == 200
    assert PluginCommand.objects.filter(action="restart", source="admin").count() == 2
    assert AuditEntry.objects.filter(action="plugin.restart", source="admin").count() == 2


def test_viewer_has_no_actions(hosted):
    page = staff_client("viewer").get("/admin/plugins_app/plugin/").content.decode()
    assert "restart_plugins" not in page


def test_config_editor_validates_and_saves_a_version(hosted):
    client = staff_client("operator")
    document = ConfigDocument.objects.get(key="hello")
    url = f"/admin/plugins_app/configdocument/{document.pk}/change/"
    bad = client.post(url, {"new_data": '{"greeting": 5}', "comment": "", "versions-TOTAL_FORMS": "0",
                            "versions-INITIAL_FORMS": "0"})
    assert bad.status_code == 200 and "greeting: 5 is not of type" in bad.content.decode()
    good = client.post(url, {"new_data": '{"greeting": "Hey"}', "comment": "friendlier",
                             "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"})
    assert good.status_code == 302, good.content.decode()[:2000]
    assert config_center.current_config("hello") == (2, {"greeting": "Hey"})


def test_diff_and_rollback_pages(hosted):
    config_center.update_config("hello", {"greeting": "Hey"})
    client = staff_client("operator")
    document = ConfigDocument.objects.get(key="hello")
    diff = client.get(f"/admin/plugins_app/configdocument/{document.pk}/diff/?from=1&to=2").content.decode()
    assert "<code>greeting</code>" in diff and "Hey" in diff
    assert client.post(f"/admin/plugins_app/configdocument/{document.pk}/rollback/1/").status_code == 302
    first = config_center.config_versions("hello")[-1].data
    assert config_center.current_config("hello") == (3, first)
    viewer = staff_client("viewer")
    assert viewer.post(f"/admin/plugins_app/configdocument/{document.pk}/rollback/1/").status_code == 403


def test_plugin_page_shows_instances_history_and_log_lines(hosted):
    from plugins_app.models import PluginInstance

    PluginInstance.objects.filter(plugin__name="hello").update(
        recent_logs=[{"time": "2026-01-01T00:00:00Z", "level": "info", "message": "Hello, <b>ann</b>!"}])
    pk = Plugin.objects.get(name="hello").pk
    page = staff_client("viewer").get(f"/admin/plugins_app/plugin/{pk}/change/").content.decode()
    assert "Hello, &lt;b&gt;ann&lt;/b&gt;!" in page
    assert "state history" in page.lower() and "badge-running" in page
