"""`manage.py status`: the operator's one-glance view without a browser."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from core import services

pytestmark = pytest.mark.django_db(transaction=True)


def test_status_shows_components_and_live_nodes():
    services.record_heartbeat("worker@box:7", "worker")
    services.record_heartbeat("web@box:8", "web")
    services.mark_node_stopped("web@box:8")
    out = StringIO()
    call_command("status", stdout=out)
    text = out.getvalue()
    assert "database  ok" in text
    assert "workers   ok" in text
    assert "worker@box:7" in text
    assert "web@box:8" not in text  # stopped nodes are history
    assert "Nodes (1 alive)" in text


def test_status_as_json():
    services.record_heartbeat("beat@box:9", "beat")
    out = StringIO()
    call_command("status", "--json", stdout=out)
    document = json.loads(out.getvalue())
    assert document["health"]["components"]["beat"] == "ok"
    assert document["nodes"] == [{"name": "beat@box:9", "kind": "beat", "status": "alive"}]
    assert "status_counts" in document["scheduler"]
