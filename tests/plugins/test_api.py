"""REST API and seed routes of the plugin runtime: reads, operations, config, call, roles, audit."""

from __future__ import annotations

import pytest

from core.models import AuditEntry
from plugins_app.builtin.hello import HelloPlugin
from plugins_app.builtin.logger import LoggerPlugin
from plugins_app.builtin.notification import NotificationPlugin
from plugins_app.models import Plugin, PluginCommand


def make_failing():
    from tests.plugins.conftest import make_plugin

    def boom(self):
        raise ValueError("nope")

    return make_plugin("failing", boom=boom)


@pytest.fixture
def hosted(db_manager):
    """The built-ins running on this process's manager (node 'test-node')."""
    for cls in (LoggerPlugin, HelloPlugin, NotificationPlugin):
        db_manager.register(cls)
    assert db_manager.start_all() == {}
    return db_manager


def test_list_shows_state_per_node(hosted, viewer_client):
    response = viewer_client.get("/api/v1/plugins/")
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["results"]}
    assert rows["hello"]["nodes"]["test-node"]["state"] == "running"
    assert rows["hello"]["version"] == "1.0.0"


def test_detail_has_dependencies_dependents_restarts_health_and_metrics(hosted, viewer_client):
    hosted.call("hello", "greet", "ann")
    hosted.check_health()
    hosted.restart("notification")
    from plugins_app.node import NodeHost

    host = NodeHost("test")
    host.manager = hosted
    host.heartbeat()
    body = viewer_client.get("/api/v1/plugins/hello/").json()
    assert body["dependencies"] == ["logger>=1.0,<2"]
    assert body["dependents"] == ["notification"]
    assert body["health"]["test-node"]["healthy"] is True
    assert body["metrics"]["test-node"]["greet"]["calls"] == 1
    assert viewer_client.get("/api/v1/plugins/notification/").json()["restart_count"] == 1
    assert [h["to_state"] for h in body["history"]][:2] == ["running", "initialized"]


def test_unknown_plugin_is_404_everywhere(db, operator_client):
    assert operator_client.get("/api/v1/plugins/nope/").status_code == 404
    assert operator_client.post("/api/v1/plugins/nope/restart/").status_code == 404
    response = operator_client.post("/plugins/nope/restart")
    assert response.status_code == 404 and response.json()["code"] == 404 and response.json()["data"] is None


def test_an_action_is_recorded_with_who_asked_and_audited(hosted, operator_client):
    response = operator_client.post("/api/v1/plugins/hello/restart/")
    assert response.status_code == 202, response.content
    command = PluginCommand.objects.get(pk=response.json()["id"])
    assert command.action == "restart" and command.requested_by_name == "operator-user"
    entry = AuditEntry.objects.get(action="plugin.restart")
    assert entry.username == "operator-user" and entry.outcome == "success" and entry.target == "hello"


def test_stopping_a_plugin_others_depend_on_needs_cascade(hosted, operator_client):
    refused = operator_client.post("/api/v1/plugins/hello/stop/", {}, format="json")
    assert refused.status_code == 409 and "notification" in refused.json()["error"]["message"]
    assert operator_client.post("/api/v1/plugins/hello/stop/", {"cascade": True}, format="json").status_code == 202
    assert set(Plugin.objects.filter(enabled=False).values_list("name", flat=True)) == {"hello", "notification"}


def test_seed_status_and_restart(hosted, operator_client, viewer_client):
    from core.nodes import NodeHeartbeat
    from core.services import record_heartbeat

    record_heartbeat("test-node", "web")
    assert NodeHeartbeat  # the node is alive as far as the database knows
    status = viewer_client.get("/plugins/status").json()
    assert status["code"] == 200 and status["message"] == "success"
    assert status["data"]["plugins"]["hello"] == "running" and status["data"]["total"] == 3
    restarted = operator_client.post("/plugins/hello/restart")
    assert restarted.status_code == 200
    assert restarted.json()["data"]["plugin"] == "hello" and restarted.json()["data"]["message"]


def test_config_put_validates_with_field_errors(hosted, operator_client):
    bad = operator_client.put("/api/v1/plugins/hello/config/", {"data": {"greeting": ""}}, format="json")
    assert bad.status_code == 400
    assert "greeting" in bad.json()["error"]["fields"]["data"]
    good = operator_client.put("/api/v1/plugins/hello/config/", {"data": {"greeting": "Hi"}, "comment": "shorter"},
                               format="json")
    assert good.status_code == 200 and good.json()["number"] == 2
    assert operator_client.get("/api/v1/plugins/hello/config/").json()["data"] == {"greeting": "Hi"}


def test_config_versions_diff_rollback_and_publish(hosted, operator_client):
    operator_client.put("/api/v1/plugins/hello/config/", {"data": {"greeting": "Hi"}}, format="json")
    draft = operator_client.put("/api/v1/plugins/hello/config/", {"data": {"greeting": "Yo"}, "draft": True},
                                format="json").json()
    versions = operator_client.get("/api/v1/plugins/hello/config/versions/").json()["results"]
    assert [(v["number"], v["status"]) for v in versions] == [(3, "draft"), (2, "published"), (1, "published")]
    diff = operator_client.get("/api/v1/plugins/hello/config/diff/?from=2&to=3").json()
    assert diff["changes"] == [{"path": "greeting", "op": "changed", "old": "Hi", "new": "Yo"}]
    assert operator_client.get("/api/v1/plugins/hello/config/diff/?from=x").status_code == 400
    assert operator_client.get("/api/v1/plugins/hello/config/diff/?from=1&to=99").status_code == 404
    assert operator_client.post("/api/v1/plugins/hello/config/publish/", {"version": draft["number"]},
                                format="json").status_code == 200
    rolled = operator_client.post("/api/v1/plugins/hello/config/rollback/", {"version": 2}, format="json").json()
    assert rolled["number"] == 4 and rolled["rolled_back_from"] == 2 and rolled["data"] == {"greeting": "Hi"}


def test_call_is_for_operators_and_errors_are_typed(hosted, operator_client, viewer_client):
    denied = viewer_client.post("/api/v1/plugins/hello/call/", {"method": "greet", "args": ["x"]}, format="json")
    assert denied.status_code == 403
    ok = operator_client.post("/api/v1/plugins/hello/call/", {"method": "greet", "args": ["ann"]}, format="json")
    assert ok.status_code == 200 and ok.json()["result"] == "Hello, ann!"
    missing = operator_client.post("/api/v1/plugins/hello/call/", {"method": "nope"}, format="json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "method_not_found"
    private = operator_client.post("/api/v1/plugins/hello/call/", {"method": "_on_login"}, format="json")
    assert private.status_code == 400
    wrong = operator_client.post("/api/v1/plugins/hello/call/", {"method": "greet", "args": [1, 2, 3]}, format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_arguments"
    hosted.register(make_failing())
    hosted.start("failing")
    failed = operator_client.post("/api/v1/plugins/failing/call/", {"method": "boom"}, format="json")
    assert failed.status_code == 424 and "ValueError: nope" in failed.json()["error"]["message"]
    assert AuditEntry.objects.filter(action="plugin.call", outcome="denied").count() == 1
    assert AuditEntry.objects.filter(action="plugin.call", outcome="success").count() == 1
    assert AuditEntry.objects.filter(action="plugin.call", outcome="failure").count() == 3


@pytest.mark.parametrize("method, path, body", [
    ("post", "/api/v1/plugins/hello/start/", {}),
    ("post", "/api/v1/plugins/hello/stop/", {"cascade": True}),
    ("post", "/api/v1/plugins/hello/restart/", {}),
    ("post", "/api/v1/plugins/hello/reload/", {}),
    ("put", "/api/v1/plugins/hello/config/", {"data": {"greeting": "x"}}),
    ("post", "/api/v1/plugins/hello/config/rollback/", {"version": 1}),
    ("post", "/api/v1/plugins/hello/config/publish/", {"version": 1}),
    ("post", "/api/v1/plugins/hello/call/", {"method": "greet"}),
    ("post", "/plugins/hello/restart", {}),
])
def test_a_viewer_reads_but_gets_403_on_every_operation_and_it_is_audited(hosted, viewer_client, method, path,
                                                                          body):
    response = getattr(viewer_client, method)(path, body, format="json")
    assert response.status_code == 403
    assert AuditEntry.objects.filter(outcome="denied", username="viewer-user").count() == 1
    assert PluginCommand.objects.count() == 0


def test_anonymous_gets_401(db, anonymous_client):
    assert anonymous_client.get("/api/v1/plugins/").status_code == 401
    assert anonymous_client.get("/plugins/status").status_code == 401


@pytest.mark.parametrize("name", ["dummy", "../../etc/passwd"])
def test_the_api_cannot_load_code_by_name(admin_api_client, name):
    response = admin_api_client.post("/api/v1/plugins/", {"name": name, "source": "tests.dummy_plugin"},
                                     format="json")
    assert response.status_code == 405
    assert not Plugin.objects.filter(name=name).exists()


def test_commands_list_shows_outcome_per_node(hosted, operator_client):
    from plugins_app.node import execute_command

    command_id = operator_client.post("/api/v1/plugins/hello/restart/").json()["id"]
    execute_command(hosted, PluginCommand.objects.get(pk=command_id))
    body = operator_client.get(f"/api/v1/plugin-commands/{command_id}/").json()
    assert body["outcome"]["test-node"]["outcome"] == "succeeded"
    assert body["outcome"]["test-node"]["state"] == "running"


def test_starting_a_plugin_starts_what_it_needs(hosted, operator_client):
    from plugins_app.node import execute_command

    operator_client.post("/api/v1/plugins/hello/stop/", {"cascade": True}, format="json")
    for command in PluginCommand.objects.order_by("id"):
        execute_command(hosted, command)
    assert hosted.entries["hello"].state == "stopped"
    command_id = operator_client.post("/api/v1/plugins/notification/start/").json()["id"]
    execute_command(hosted, PluginCommand.objects.get(pk=command_id))
    assert hosted.entries["hello"].state == "running" and hosted.entries["notification"].state == "running"
    assert set(Plugin.objects.filter(enabled=True).values_list("name", flat=True)) == {
        "logger", "hello", "notification"}


def test_a_canary_reload_goes_only_to_the_chosen_nodes(db, operator_client, tmp_path):
    from core.services import record_heartbeat
    from plugins_app.host import PluginManager
    from plugins_app.node import NodeHost
    from plugins_app.registry import discover

    hosts = []
    for node_name, kind in (("canary-web", "web"), ("canary-worker", "worker")):
        record_heartbeat(node_name, kind)
        host = NodeHost(kind)
        host.manager = PluginManager(node=node_name, data_root=tmp_path)
        host.manager.load(discover())
        host.manager.start_all()
        hosts.append(host)
    response = operator_client.post("/api/v1/plugins/hello/reload/", {"nodes": ["worker"]}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["target_nodes"] == ["canary-worker"]
    for host in hosts:
        host.run_commands()
    outcome = operator_client.get(f"/api/v1/plugin-commands/{response.json()['id']}/").json()["outcome"]
    assert list(outcome) == ["canary-worker"] and outcome["canary-worker"]["outcome"] == "succeeded"
    refused = operator_client.post("/api/v1/plugins/hello/stop/", {"nodes": ["worker"], "cascade": True},
                                   format="json")
    assert refused.status_code == 400
    nobody = operator_client.post("/api/v1/plugins/hello/reload/", {"nodes": ["nowhere"]}, format="json")
    assert nobody.status_code == 400 and "No live node" in nobody.json()["error"]["message"]
    for host in hosts:
        host.manager.stop_all()


def test_list_query_count_does_not_grow_with_the_number_of_plugins(db, viewer_client, django_assert_max_num_queries):
    from plugins_app.models import PluginInstance

    def add(count: int) -> None:
        start = Plugin.objects.count()
        for i in range(start, start + count):
            plugin = Plugin.objects.create(name=f"p{i}")
            for node in ("n1", "n2"):
                PluginInstance.objects.create(plugin=plugin, node=node, state="running")

    add(2)
    with django_assert_max_num_queries(12) as few:
        viewer_client.get("/api/v1/plugins/")
    add(20)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert viewer_client.get("/api/v1/plugins/").json()["count"] == 22
