"""/health as SPEC §7: components, not_configured, heartbeats, degraded and down."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import Node

pytestmark = pytest.mark.django_db(transaction=True)


def add_node(kind: str, *, age: float = 0.0, stopped: bool = False) -> Node:
    beat = timezone.now() - timedelta(seconds=age)
    return Node.objects.create(
        name=f"{kind}-{age}-{stopped}", kind=kind, hostname="h", pid=1, last_heartbeat=beat,
        stopped_at=beat if stopped else None,
    )


def test_health_document_has_every_component(client, settings):
    settings.CHAMELEON = {**settings.CHAMELEON, "REDIS_URL": "", "KAFKA_BROKERS": [], "ETCD_ENDPOINTS": []}
    body = client.get("/health").json()
    assert set(body) >= {"status", "service", "version", "timestamp", "components"}
    assert body["service"] == "chameleon"
    assert body["timestamp"].endswith("Z")
    assert body["components"]["database"] == "ok"
    for name in ("redis", "kafka", "etcd"):
        assert body["components"][name] == "not_configured"


def test_workers_and_beat_are_judged_by_heartbeats(client):
    components = client.get("/health").json()["components"]
    assert (components["workers"], components["beat"]) == ("down", "down")
    add_node("worker")
    add_node("beat", age=3600)  # lost long ago
    add_node("beat", stopped=True)
    response = client.get("/health")
    body = response.json()
    assert body["components"]["workers"] == "ok"
    assert body["components"]["beat"] == "down"
    assert body["status"] == "degraded"
    assert response.status_code == 200


def test_everything_up_is_ok(client, settings):
    settings.CHAMELEON = {**settings.CHAMELEON, "REDIS_URL": "", "KAFKA_BROKERS": [], "ETCD_ENDPOINTS": []}
    add_node("worker")
    add_node("beat")
    body = client.get("/health").json()
    assert body["status"] == "ok"


def test_unreachable_redis_is_down_and_degrades(client, settings):
    settings.CHAMELEON = {**settings.CHAMELEON, "REDIS_URL": "redis://127.0.0.1:1/0"}
    add_node("worker")
    add_node("beat")
    body = client.get("/health").json()
    assert body["components"]["redis"] == "down"
    assert body["status"] == "degraded"
    assert "error" in body["details"]["redis"]


def test_unreachable_etcd_and_kafka_are_down(client, settings):
    settings.CHAMELEON = {**settings.CHAMELEON, "ETCD_ENDPOINTS": ["127.0.0.1:1"], "KAFKA_BROKERS": ["127.0.0.1:1"]}
    components = client.get("/health").json()["components"]
    assert components["etcd"] == "down"
    assert components["kafka"] == "down"


def test_configured_redis_is_ok(client, settings, redis_url):
    settings.CHAMELEON = {**settings.CHAMELEON, "REDIS_URL": redis_url}
    assert client.get("/health").json()["components"]["redis"] == "ok"


def test_configured_etcd_is_ok(client, settings, etcd_endpoints):
    settings.CHAMELEON = {**settings.CHAMELEON, "ETCD_ENDPOINTS": etcd_endpoints}
    body = client.get("/health").json()
    assert body["components"]["etcd"] == "ok"
    assert body["details"]["etcd"]["version"]


def test_database_down_is_503(client, settings, monkeypatch):
    from core import health

    def broken() -> tuple[str, dict]:
        raise ConnectionError("database unreachable")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "down"
