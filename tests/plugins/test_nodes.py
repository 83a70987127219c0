"""Nodes: a worker hosts plugins, carries out commands given in the web process, reconciles, shows lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import Node
from plugins_app.models import PluginCommandResult, PluginInstance
from tests.fixtures.services import wait_for

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def instance(name: str, node: str) -> PluginInstance | None:
    return PluginInstance.objects.filter(plugin__name=name, node=node).first()


def running_on(node: str) -> set[str]:
    return set(PluginInstance.objects.filter(node=node, state="running").values_list("plugin__name", flat=True))


def test_a_restart_asked_in_the_web_process_is_carried_out_by_the_worker(live_worker, operator_client):
    worker = live_worker.node_name
    wait_for(lambda: {"logger", "hello", "notification"} <= running_on(worker), 60,
             "the worker to run the built-in plugins")
    response = operator_client.post("/api/v1/plugins/hello/restart/")
    assert response.status_code == 202, response.content
    command = response.json()
    assert worker in command["target_nodes"]
    result = wait_for(lambda: PluginCommandResult.objects.filter(command_id=command["id"], node=worker).first(),
                      30, "the worker to report the restart")
    assert result.outcome == "succeeded" and result.state == "running"
    assert instance("hello", worker).restart_count == 1
    outcome = operator_client.get(f"/api/v1/plugin-commands/{command['id']}/").json()["outcome"]
    assert outcome[worker]["outcome"] == "succeeded"


def test_desired_state_is_reconciled_and_a_silent_node_shows_as_lost(live_worker, operator_client):
    worker = live_worker.node_name
    wait_for(lambda: "notification" in running_on(worker), 60, "notification running on the worker")
    assert operator_client.post("/api/v1/plugins/notification/stop/").status_code == 202
    wait_for(lambda: instance("notification", worker).state == "stopped", 30, "the worker to stop notification")
    assert operator_client.post("/api/v1/plugins/notification/start/").status_code == 202
    wait_for(lambda: instance("notification", worker).state == "running", 30, "the worker to start it again")

    live_worker.kill()  # SIGKILL: no goodbye, the heartbeats just stop
    Node.objects.filter(name=worker).update(last_heartbeat=timezone.now() - timedelta(minutes=5))
    body = operator_client.get("/api/v1/plugins/hello/").json()
    assert body["nodes"][worker]["node_status"] == "lost"
    command = operator_client.post("/api/v1/plugins/hello/restart/").json()
    assert worker not in command["target_nodes"], "a lost node is not expected to answer"
