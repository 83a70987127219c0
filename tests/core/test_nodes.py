"""Nodes: heartbeats, lost and stopped status, pruning, and the nodes API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core import services
from core.models import Node

pytestmark = pytest.mark.django_db


def test_heartbeat_registers_then_refreshes_a_node():
    first = services.record_heartbeat("worker@h:1", "worker")
    assert first.status == "alive"
    Node.objects.filter(pk=first.pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert Node.objects.get(pk=first.pk).status == "lost"
    again = services.record_heartbeat("worker@h:1", "worker")
    assert again.pk == first.pk
    assert again.status == "alive"
    assert again.started_at == first.started_at


def test_a_stopped_node_says_so_and_a_heartbeat_revives_it():
    services.record_heartbeat("web@h:2", "web")
    services.mark_node_stopped("web@h:2")
    assert Node.objects.get(name="web@h:2").status == "stopped"
    assert not Node.objects.alive().filter(name="web@h:2").exists()


def test_prune_forgets_only_long_gone_nodes():
    services.record_heartbeat("worker@h:old", "worker")
    services.record_heartbeat("worker@h:new", "worker")
    Node.objects.filter(name="worker@h:old").update(last_heartbeat=timezone.now() - timedelta(days=2))
    assert services.prune_nodes() == 1
    assert list(Node.objects.values_list("name", flat=True)) == ["worker@h:new"]


def test_nodes_api_filters_by_status(viewer_client):
    services.record_heartbeat("worker@h:a", "worker")
    services.record_heartbeat("worker@h:b", "worker")
    Node.objects.filter(name="worker@h:b").update(last_heartbeat=timezone.now() - timedelta(minutes=5))
    lost = viewer_client.get("/api/v1/nodes/", {"status": "lost"}).json()
    assert [node["name"] for node in lost["results"]] == ["worker@h:b"]
    assert lost["results"][0]["status"] == "lost"
    bad = viewer_client.get("/api/v1/nodes/", {"status": "sleeping"})
    assert bad.status_code == 400
    assert "status" in bad.json()["error"]["fields"]
