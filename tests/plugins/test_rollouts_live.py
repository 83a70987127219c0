"""Canary rollouts across real processes: a Celery worker labelled canary=true and this process's host.

The worker loads `canarytest` from a plugin dir at 1.0; version 2.0 is written to disk
and canaried to `canary=true` (the worker) only; rolled back, the worker runs 1.0 again
from memory while the file says 2.0; canaried again and promoted, both nodes run 2.0.
"""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from plugins_app.models import PluginInstance, PluginRollout, PluginRolloutNode
from tests.fixtures.processes import celery, wait_for_node
from tests.fixtures.services import wait_for
from tests.plugins.canary_plugin import NAME, plugin_dir, runs, write
from tests.plugins.test_rollouts import Cluster

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

WEB = "rollout-live-web"


@pytest.fixture
def live(tmp_path, settings, start_process):
    """(worker process, in-process cluster with the web host) -- both run canarytest 1.0."""
    write(tmp_path, "1.0")
    directory = str(plugin_dir(tmp_path))
    settings.CHAMELEON = {**settings.CHAMELEON, "PLUGIN_DIRS": [directory]}
    worker = start_process(
        "worker",
        celery("worker", "--loglevel", "info", "--concurrency", "1", "--without-gossip", "--without-mingle",
               "-Q", django_settings.CELERY_TASK_DEFAULT_QUEUE),
        CHAMELEON_PLUGIN_DIRS=directory, CHAMELEON_NODE_LABELS="canary=true,zone=b",
    )
    worker.node_name = wait_for_node("worker", worker)
    wait_for(lambda: worker_at(worker, "1.0"), 60, "the worker to run canarytest 1.0")
    cluster = Cluster(tmp_path)
    cluster.add(WEB, "web", {"zone": "a"})
    yield worker, cluster
    cluster.stop()


def worker_at(worker, version: str) -> bool:
    instance = PluginInstance.objects.filter(plugin__name=NAME, node=worker.node_name).first()
    return instance is not None and instance.state == "running" and instance.version == version


def answered(cluster: Cluster, rollout_id: int, phase: str, nodes: list[str]) -> dict[str, PluginRolloutNode]:
    """Tick this process's host; the rows of `nodes` once all of them answered `phase`."""
    cluster.tick()
    rows = {row.node: row for row in PluginRolloutNode.objects.filter(rollout_id=rollout_id, node__in=nodes,
                                                                      phase=phase)}
    return rows if len(rows) == len(nodes) else {}


def test_canary_to_labelled_nodes_then_rollback_then_promote(live, operator_client, tmp_path):
    worker, cluster = live
    node = worker.node_name
    write(tmp_path, "2.0")

    response = operator_client.post(f"/api/v1/plugins/{NAME}/canary/", {"selector": "canary=true"}, format="json")
    assert response.status_code == 202, response.content
    first = response.json()
    assert first["canary_nodes"] == [node] and first["from_version"] == "1.0"
    rows = wait_for(lambda: answered(cluster, first["id"], "canary", [node]), 30, "the worker to run the canary")
    assert rows[node].outcome == "succeeded", rows[node].message
    assert worker_at(worker, "2.0") and runs(tmp_path, node)[-2:] == ["start 2.0", "stop 1.0"]
    assert cluster.which(WEB) == "1.0"
    assert PluginRollout.objects.get(pk=first["id"]).to_version == "2.0"

    assert operator_client.post(f"/api/v1/plugins/{NAME}/canary/rollback/").status_code == 202
    rows = wait_for(lambda: answered(cluster, first["id"], "rollback", [node, WEB]), 30, "both nodes to roll back")
    assert {n: r.outcome for n, r in rows.items()} == {node: "succeeded", WEB: "succeeded"}
    # The worker runs 1.0 again -- from the class it kept, while the file on disk is 2.0.
    assert worker_at(worker, "1.0") and runs(tmp_path, node)[-2:] == ["start 1.0", "stop 2.0"]
    assert 'version = "2.0"' in (plugin_dir(tmp_path) / f"{NAME}.py").read_text()
    assert cluster.which(WEB) == "1.0"

    second = operator_client.post(f"/api/v1/plugins/{NAME}/canary/", {"selector": "canary=true"},
                                  format="json").json()
    wait_for(lambda: answered(cluster, second["id"], "canary", [node]), 30, "the worker to run the second canary")
    assert worker_at(worker, "2.0") and cluster.which(WEB) == "1.0"
    promoted = operator_client.post(f"/api/v1/plugins/{NAME}/canary/promote/")
    assert promoted.status_code == 202 and promoted.json()["status"] == "promoted"
    rows = wait_for(lambda: answered(cluster, second["id"], "promote", [node, WEB]), 30, "both nodes to promote")
    assert {n: r.outcome for n, r in rows.items()} == {node: "succeeded", WEB: "succeeded"}
    assert worker_at(worker, "2.0") and cluster.which(WEB) == "2.0"
    detail = operator_client.get(f"/api/v1/plugins/{NAME}/").json()
    assert detail["pinned_code"] == {} and [r["status"] for r in detail["rollouts"][:2]] == ["promoted", "rolled_back"]


def test_a_new_version_failing_on_the_canary_node_leaves_the_old_one_running(live, operator_client, tmp_path):
    worker, cluster = live
    node = worker.node_name
    write(tmp_path, "2.0", start_body="raise RuntimeError('2.0 cannot start')")
    rollout_id = operator_client.post(f"/api/v1/plugins/{NAME}/canary/", {"selector": {"canary": "true"}},
                                      format="json").json()["id"]
    rows = wait_for(lambda: answered(cluster, rollout_id, "canary", [node]), 30, "the worker to try the canary")
    assert rows[node].outcome == "failed" and "RuntimeError: 2.0 cannot start" in rows[node].message
    rollout = operator_client.get(f"/api/v1/plugin-rollouts/{rollout_id}/").json()
    assert rollout["status"] == "failed" and node in rollout["message"]
    assert rollout["outcome"][node]["version"] == "1.0"
    assert worker_at(worker, "1.0") and "start 2.0" not in runs(tmp_path, node)
    assert operator_client.post(f"/api/v1/plugins/{NAME}/canary/promote/").status_code == 409
