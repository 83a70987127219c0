"""Canary rollouts between node hosts in this process: restarts mid-canary, failures, validation, roles, doors.

Each host is a real NodeHost with its own PluginManager and node row (labels included);
`Cluster.tick()` makes every host pick up its commands, as their threads do. The same
feature across real processes is in test_rollouts_live.py.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from chameleon_site.env import ConfigError, Env
from core.labels import parse_selector, selector_matches
from core.models import AuditEntry
from core.services import record_heartbeat
from plugins_app.host import PluginManager
from plugins_app.models import (
    Plugin,
    PluginCommand,
    PluginInstance,
    PluginRollout,
    PluginRolloutNode,
)
from plugins_app.node import NodeHost
from plugins_app.registry import discover
from tests.fixtures.users import make_user
from tests.plugins.canary_plugin import NAME, plugin_dir, runs, write

WEB, WORKER = "rollout-web", "rollout-worker"
WORKER_LABELS = {"canary": "true", "zone": "b"}


class Cluster:
    """In-process node hosts of the `canarytest` plugin."""

    def __init__(self, root) -> None:
        self.root = root
        self.hosts: dict[str, NodeHost] = {}

    def add(self, node: str, kind: str, labels: dict[str, str]) -> NodeHost:
        """A node booting: it loads the plugin from disk, starts it and reconciles to its rollout."""
        record_heartbeat(node, kind, labels=labels)
        host = NodeHost(kind, labels=labels)
        host.manager = PluginManager(node=node, data_root=self.root / "data")
        cls, source = discover().plugins[NAME]
        host.manager.register(cls, source)
        assert host.manager.start(NAME)
        host._last_command = PluginCommand.objects.order_by("-id").values_list("id", flat=True).first() or 0
        self.hosts[node] = host
        return host

    def tick(self) -> None:
        for node, host in self.hosts.items():
            record_heartbeat(node, host.kind, labels=host.labels)
            host.run_commands()

    def which(self, node: str) -> str:
        return self.hosts[node].manager.call(NAME, "which")

    def stop(self) -> None:
        for host in self.hosts.values():
            host.manager.stop_all()


@pytest.fixture
def cluster(db, tmp_path, settings):
    write(tmp_path, "1.0")
    settings.CHAMELEON = {**settings.CHAMELEON, "PLUGIN_DIRS": [str(plugin_dir(tmp_path))]}
    cluster = Cluster(tmp_path)
    cluster.add(WEB, "web", {"zone": "a"})
    cluster.add(WORKER, "worker", WORKER_LABELS)
    yield cluster
    cluster.stop()


def canary(client, body: dict | None = None, name: str = NAME):
    return client.post(f"/api/v1/plugins/{name}/canary/", body if body is not None else {"selector": "canary=true"},
                       format="json")


def node_result(rollout_id: int, node: str) -> PluginRolloutNode:
    return PluginRolloutNode.objects.get(rollout_id=rollout_id, node=node)


def test_canary_rollback_and_promote_between_two_hosts(cluster, operator_client, tmp_path):
    write(tmp_path, "2.0")
    response = canary(operator_client)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["canary_nodes"] == [WORKER] and body["status"] == "canary" and body["selector"] == "canary=true"
    assert body["from_version"] == "1.0" and body["outcome"][WORKER]["outcome"] == "pending"
    cluster.tick()
    assert cluster.which(WORKER) == "2.0" and cluster.which(WEB) == "1.0"
    rollout = PluginRollout.objects.get(pk=body["id"])
    assert rollout.to_version == "2.0" and node_result(rollout.pk, WORKER).outcome == "succeeded"

    assert operator_client.post(f"/api/v1/plugins/{NAME}/canary/rollback/").status_code == 202
    cluster.tick()
    # Back to 1.0 from the class the host kept: the file on disk still says 2.0.
    assert cluster.which(WORKER) == "1.0" and "2.0" in (plugin_dir(tmp_path) / f"{NAME}.py").read_text()
    assert runs(tmp_path, WORKER) == ["start 1.0", "start 2.0", "stop 1.0", "start 1.0", "stop 2.0"]
    assert node_result(rollout.pk, WEB).message == "Runs 1.0 already"
    assert Plugin.objects.get(name=NAME).pinned_code["version"] == "1.0"

    second = canary(operator_client).json()
    cluster.tick()
    assert cluster.which(WORKER) == "2.0" and cluster.which(WEB) == "1.0"
    promoted = operator_client.post(f"/api/v1/plugins/{NAME}/canary/promote/")
    assert promoted.status_code == 202 and promoted.json()["status"] == "promoted"
    cluster.tick()
    assert cluster.which(WORKER) == "2.0" and cluster.which(WEB) == "2.0"
    outcome = operator_client.get(f"/api/v1/plugin-rollouts/{second['id']}/").json()["outcome"]
    assert {node: row["outcome"] for node, row in outcome.items()} == {WEB: "succeeded", WORKER: "succeeded"}
    assert Plugin.objects.get(name=NAME).pinned_code == {}
    instances = PluginInstance.objects.filter(plugin__name=NAME, node__in=[WEB, WORKER])
    assert {i.version for i in instances} == {"2.0"} and len({i.code_digest for i in instances}) == 1


def test_a_failing_new_version_keeps_the_old_one_running_and_fails_the_rollout(cluster, operator_client, tmp_path):
    write(tmp_path, "2.0", start_body="raise RuntimeError('2.0 is broken')")
    rollout_id = canary(operator_client).json()["id"]
    cluster.tick()
    assert cluster.which(WORKER) == "1.0"
    rollout = PluginRollout.objects.get(pk=rollout_id)
    assert rollout.status == "failed" and "RuntimeError: 2.0 is broken" in rollout.message
    result = node_result(rollout_id, WORKER)
    assert result.outcome == "failed" and result.version == "1.0" and "keeps running" in result.message
    refused = operator_client.post(f"/api/v1/plugins/{NAME}/canary/promote/")
    assert refused.status_code == 409 and "failed" in refused.json()["error"]["message"]
    assert operator_client.post(f"/api/v1/plugins/{NAME}/canary/rollback/").status_code == 202
    cluster.tick()
    assert PluginRollout.objects.get(pk=rollout_id).status == "rolled_back"
    assert node_result(rollout_id, WORKER).outcome == "succeeded" and cluster.which(WORKER) == "1.0"


def test_a_node_that_restarts_mid_canary_runs_what_its_labels_say_or_says_it_cannot(cluster, operator_client,
                                                                                      tmp_path):
    write(tmp_path, "2.0")
    rollout_id = canary(operator_client).json()["id"]
    cluster.tick()
    # Restarted processes are new nodes; both load 2.0 from disk when they boot.
    canary_again = cluster.add("rollout-worker-2", "worker", WORKER_LABELS)
    assert canary_again.reconcile_code() == {NAME: "succeeded"}
    assert node_result(rollout_id, "rollout-worker-2").canary is True
    other = cluster.add("rollout-web-2", "web", {"zone": "a"})
    assert other.reconcile_code() == {NAME: "unavailable"}
    result = node_result(rollout_id, "rollout-web-2")
    assert result.phase == "boot" and result.wanted_version == "1.0" and result.version == "2.0"
    assert "1.0" in result.message and "not available on this node" in result.message
    assert cluster.which("rollout-web-2") == "2.0"  # still serving, and saying so

    assert operator_client.post(f"/api/v1/plugins/{NAME}/canary/rollback/").status_code == 202
    cluster.tick()
    outcome = {node: row["outcome"] for node, row in
               operator_client.get(f"/api/v1/plugins/{NAME}/").json()["rollouts"][0]["outcome"].items()}
    assert outcome == {WEB: "succeeded", WORKER: "succeeded", "rollout-worker-2": "unavailable",
                       "rollout-web-2": "unavailable"}
    # After the rollback a node that boots is pinned to 1.0 as well, and says it cannot run it.
    late = cluster.add("rollout-web-3", "web", {"zone": "a"})
    assert late.reconcile_code() == {NAME: "unavailable"}


def test_a_reload_everywhere_after_a_rollback_lifts_the_pin(cluster, operator_client, tmp_path):
    write(tmp_path, "2.0")
    canary(operator_client)
    cluster.tick()
    refused = operator_client.post(f"/api/v1/plugins/{NAME}/reload/")
    assert refused.status_code == 409 and "promote or roll it back" in refused.json()["error"]["message"]
    operator_client.post(f"/api/v1/plugins/{NAME}/canary/rollback/")
    cluster.tick()
    assert operator_client.post(f"/api/v1/plugins/{NAME}/reload/").status_code == 202
    cluster.tick()
    assert Plugin.objects.get(name=NAME).pinned_code == {}
    assert cluster.which(WEB) == "2.0" and cluster.which(WORKER) == "2.0"


def test_the_hot_reload_watcher_leaves_a_plugin_under_canary_alone(cluster, operator_client, tmp_path):
    web = cluster.hosts[WEB]
    web._snapshot_mtimes()
    write(tmp_path, "2.0")
    canary(operator_client)
    web.watch()
    assert cluster.which(WEB) == "1.0"


def test_canary_by_node_kind_or_name_and_labels_together(cluster, operator_client, tmp_path):
    write(tmp_path, "2.0")
    nobody = canary(operator_client, {"selector": "zone=a", "nodes": ["worker"]})
    assert nobody.status_code == 400 and "No live node" in nobody.json()["error"]["message"]
    by_kind = canary(operator_client, {"nodes": ["web"]})
    assert by_kind.status_code == 202 and by_kind.json()["canary_nodes"] == [WEB]
    cluster.tick()
    assert cluster.which(WEB) == "2.0" and cluster.which(WORKER) == "1.0"


@pytest.mark.parametrize("body, message", [
    ({}, "label selector"),
    ({"selector": ""}, "label selector"),
    ({"selector": "bad key=x"}, "not a label name"),
    ({"selector": ["canary=true"]}, "a selector is text"),
    ({"selector": {"canary": {"nested": 1}}}, "must be a string"),
    ({"nodes": "worker"}, "list"),
])
def test_bad_canary_input_is_a_clear_400(cluster, operator_client, tmp_path, body, message):
    write(tmp_path, "2.0")
    response = canary(operator_client, body)
    assert response.status_code == 400, response.content
    assert message in response.content.decode()
    assert not PluginRollout.objects.exists()


def test_what_cannot_be_rolled_out_is_refused(cluster, operator_client, tmp_path):
    assert canary(operator_client, name="nope").status_code == 404
    assert operator_client.post("/api/v1/plugins/nope/canary/promote/").status_code == 404
    same = canary(operator_client)
    assert same.status_code == 400 and "No new version" in same.json()["error"]["message"]
    nobody = canary(operator_client, {"selector": "gpu"})
    assert nobody.status_code == 400 and "No live node" in nobody.json()["error"]["message"]
    for verb in ("promote", "rollback"):
        none = operator_client.post(f"/api/v1/plugins/{NAME}/canary/{verb}/")
        assert none.status_code == 409 and "No " in none.json()["error"]["message"], verb
    write(tmp_path, "2.0")
    assert canary(operator_client).status_code == 202
    again = canary(operator_client)
    assert again.status_code == 409 and "still canary" in again.json()["error"]["message"]
    Plugin.objects.create(name="sourceless")
    no_source = canary(operator_client, name="sourceless")
    assert no_source.status_code == 400 and "source" in no_source.json()["error"]["message"]
    failures = AuditEntry.objects.filter(action="plugin.canary", outcome="failure")
    assert failures.count() == 5
    assert any("No new version" in entry.detail["error"] for entry in failures.filter(target=NAME))


def test_promote_refuses_code_that_changed_on_disk_since_the_canary(cluster, operator_client, tmp_path):
    write(tmp_path, "2.0")
    canary(operator_client)
    cluster.tick()
    write(tmp_path, "3.0")
    refused = operator_client.post(f"/api/v1/plugins/{NAME}/canary/promote/")
    assert refused.status_code == 409 and "changed since the canary" in refused.json()["error"]["message"]


def test_viewers_are_refused_every_rollout_operation_and_it_is_audited(cluster, viewer_client, anonymous_client,
                                                                        tmp_path):
    write(tmp_path, "2.0")
    for path in ("canary", "canary/promote", "canary/rollback"):
        assert viewer_client.post(f"/api/v1/plugins/{NAME}/{path}/", {"selector": "canary=true"},
                                  format="json").status_code == 403
        assert anonymous_client.post(f"/api/v1/plugins/{NAME}/{path}/").status_code == 401
    denied = set(AuditEntry.objects.filter(outcome="denied", target=NAME).values_list("action", flat=True))
    assert denied == {"plugin.canary", "plugin.promote", "plugin.rollback"}
    assert not PluginRollout.objects.exists()
    assert viewer_client.get("/api/v1/plugin-rollouts/").status_code == 200


def test_an_operation_is_audited_with_who_and_the_rollout(cluster, operator_client, tmp_path):
    write(tmp_path, "2.0")
    rollout_id = canary(operator_client).json()["id"]
    entry = AuditEntry.objects.get(action="plugin.canary", outcome="success")
    assert entry.username == "operator-user" and entry.detail["rollout"] == rollout_id
    assert entry.detail["nodes"] == [WORKER] and entry.detail["selector"] == "canary=true"
    operator_client.post(f"/api/v1/plugins/{NAME}/canary/rollback/")
    assert AuditEntry.objects.filter(action="plugin.rollback", outcome="success", username="operator-user").exists()
    assert PluginRollout.objects.get(pk=rollout_id).finished_by_name == "operator-user"


def test_the_cli_canaries_lists_and_promotes(cluster, tmp_path):
    write(tmp_path, "2.0")
    out = StringIO()
    call_command("plugins", "canary", NAME, "--selector", "canary=true", "--wait", "0", stdout=out)
    assert "rollout #" in out.getvalue() and "sent to 1 node(s)" in out.getvalue()
    cluster.tick()
    listing = StringIO()
    call_command("plugins", "rollouts", NAME, stdout=listing)
    assert "1.0 -> 2.0" in listing.getvalue() and f"{WORKER} canary: canary succeeded 2.0" in listing.getvalue()
    call_command("plugins", "promote", NAME, "--wait", "0", stdout=StringIO())
    cluster.tick()
    assert cluster.which(WEB) == "2.0"
    assert AuditEntry.objects.filter(action="plugin.promote", source="cli").exists()


def test_the_admin_starts_a_canary_and_rolls_it_back(cluster, tmp_path):
    write(tmp_path, "2.0")
    plugin = Plugin.objects.get(name=NAME)
    operator = Client()
    operator.force_login(make_user("staff-operator", "operator", is_staff=True))
    url = f"/admin/plugins_app/plugin/{plugin.pk}/canary/"
    assert "Canary the code on disk" in operator.get(f"/admin/plugins_app/plugin/{plugin.pk}/change/").content.decode()
    assert "label selector" in operator.post(url, {"selector": "", "nodes": ""}).content.decode()
    response = operator.post(url, {"selector": "canary=true", "nodes": ""})
    rollout = PluginRollout.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/pluginrollout/{rollout.pk}/change/")
    cluster.tick()
    page = operator.get("/admin/plugins_app/pluginrollout/").content.decode()
    assert f"{WORKER}: succeeded 2.0" in page
    operator.post("/admin/plugins_app/pluginrollout/", {"action": "rollback_canary", "_selected_action": [rollout.pk]})
    assert PluginRollout.objects.get().status == "rolled_back"

    viewer = Client()
    viewer.force_login(make_user("staff-viewer", "viewer", is_staff=True))
    assert viewer.post(url, {"selector": "canary=true"}).status_code == 403
    assert AuditEntry.objects.filter(action="plugin.canary", outcome="denied", source="admin").exists()


def test_plugin_detail_shows_rollouts_and_the_list_costs_the_same_for_more(cluster, operator_client, viewer_client,
                                                                            tmp_path, django_assert_max_num_queries):
    write(tmp_path, "2.0")
    canary(operator_client)
    cluster.tick()
    detail = viewer_client.get(f"/api/v1/plugins/{NAME}/").json()
    assert detail["rollouts"][0]["outcome"][WORKER]["version"] == "2.0"
    assert detail["pinned_code"]["version"] == "1.0"
    with django_assert_max_num_queries(12) as few:
        viewer_client.get("/api/v1/plugin-rollouts/")
    one_rollout = len(few.captured_queries)  # now: the next request resets the connection's query log
    operator_client.post(f"/api/v1/plugins/{NAME}/canary/rollback/")
    cluster.tick()
    for _ in range(3):
        canary(operator_client)
        cluster.tick()
        operator_client.post(f"/api/v1/plugins/{NAME}/canary/rollback/")
        cluster.tick()
    with django_assert_max_num_queries(one_rollout):
        assert viewer_client.get("/api/v1/plugin-rollouts/").json()["count"] == 4


def test_nodes_carry_their_labels(db, viewer_client):
    record_heartbeat("labelled-web", "web", labels={"zone": "a", "canary": "true"})
    rows = {row["name"]: row for row in viewer_client.get("/api/v1/nodes/").json()["results"]}
    assert rows["labelled-web"]["labels"] == {"zone": "a", "canary": "true"}
    assert Env({"CHAMELEON_NODE_LABELS": " zone=a, canary=true "}).labels("CHAMELEON_NODE_LABELS") == {
        "zone": "a", "canary": "true"}
    assert Env({}).labels("CHAMELEON_NODE_LABELS") == {}
    with pytest.raises(ConfigError, match="CHAMELEON_NODE_LABELS: expected key=value"):
        Env({"CHAMELEON_NODE_LABELS": "zone"}).labels("CHAMELEON_NODE_LABELS")


@pytest.mark.parametrize("selector, labels, matches", [
    ("canary=true", {"canary": "true", "zone": "a"}, True),
    ("canary==true,zone=a", {"canary": "true", "zone": "b"}, False),
    ("zone!=b", {"zone": "a"}, True),
    ("zone!=b", {}, True),
    ("gpu", {"gpu": ""}, True),
    ("!gpu", {"gpu": "1"}, False),
    ({"canary": True}, {"canary": "true"}, True),
    ("", {"canary": "true"}, False),
])
def test_label_selectors(selector, labels, matches):
    assert selector_matches(parse_selector(selector), labels) is matches
