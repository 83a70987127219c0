"""REST API: /api/v1/services/ and /api/v1/alerts/ -- roles, validation, audit."""

from __future__ import annotations

import pytest

from core.models import AuditEntry
from plugins_app.discovery import services
from plugins_app.discovery.models import AlertRule
from tests.fixtures.services import wait_for

SERVICES = "/api/v1/services/"
RULES = "/api/v1/alerts/rules/"


def register(client, **body):
    return client.post(SERVICES, {"name": "api", "endpoint": "http://10.0.0.1:8000", **body}, format="json")


def test_operator_registers_heartbeats_resolves_and_deregisters(registry, operator_client):
    response = register(operator_client, id="api-1", version="2.0", metadata={"zone": "a"}, ttl=60, weight=2)
    assert response.status_code == 201, response.content
    assert response.json()["id"] == "api-1" and response.json()["health"] == "healthy"

    listed = operator_client.get(SERVICES, {"name": "api"}).json()
    assert listed["count"] == 1 and listed["results"][0]["metadata"] == {"zone": "a"}
    assert operator_client.get(f"{SERVICES}api-1/").json()["weight"] == 2

    beat = operator_client.post(f"{SERVICES}api-1/heartbeat/")
    assert beat.status_code == 200 and beat.json()["last_heartbeat"] >= response.json()["last_heartbeat"]

    wait_for(lambda: operator_client.get(f"{SERVICES}resolve/", {"name": "api"}).status_code == 200, 5, "resolvable")
    resolved = operator_client.get(f"{SERVICES}resolve/", {"name": "api", "strategy": "weighted_round_robin"})
    assert resolved.json()["endpoint"] == "http://10.0.0.1:8000"
    assert operator_client.get(f"{SERVICES}summary/").json() == {"api": {"unknown": 0, "healthy": 1, "unhealthy": 0}}

    assert operator_client.delete(f"{SERVICES}api-1/").status_code == 204
    assert operator_client.get(f"{SERVICES}api-1/").status_code == 404
    assert operator_client.post(f"{SERVICES}api-1/heartbeat/").status_code == 404
    wait_for(lambda: operator_client.get(f"{SERVICES}resolve/", {"name": "api"}).status_code == 404, 5,
             "no instance left to resolve")

    actions = list(AuditEntry.objects.filter(target_type="service").values_list("action", "outcome", "username"))
    assert ("service.register", "success", "operator-user") in actions
    assert ("service.heartbeat", "success", "operator-user") in actions
    assert ("service.deregister", "success", "operator-user") in actions
    assert ("service.heartbeat", "failure", "operator-user") in actions


def test_viewer_reads_but_every_write_is_denied_and_audited(registry, viewer_client):
    instance = services.register_instance(id="seen", name="api", endpoint="10.0.0.1:80", ttl=60)
    assert viewer_client.get(SERVICES).json()["count"] == 1
    assert viewer_client.get(f"{SERVICES}{instance.id}/").status_code == 200
    wait_for(lambda: viewer_client.get(f"{SERVICES}resolve/", {"name": "api"}).status_code == 200, 5, "resolve")
    assert register(viewer_client).status_code == 403
    assert viewer_client.post(f"{SERVICES}seen/heartbeat/").status_code == 403
    assert viewer_client.delete(f"{SERVICES}seen/").status_code == 403
    assert viewer_client.post(RULES, {"name": "x", "metric": "m", "threshold": 1}, format="json").status_code == 403
    denied = set(AuditEntry.objects.filter(outcome="denied", username="viewer-user").values_list("action", flat=True))
    assert denied == {"service.create", "service.heartbeat", "service.destroy", "alert_rule.create"}
    assert [item.id for item in services.list_instances()] == ["seen"]


def test_anonymous_gets_401(db, anonymous_client):
    assert anonymous_client.get(SERVICES).status_code == 401
    assert anonymous_client.get("/api/v1/alerts/").status_code == 401


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": ""}, "name"),
        ({"name": "bad name!"}, "name"),
        ({"endpoint": ""}, "endpoint"),
        ({"ttl": 0}, "ttl"),
        ({"weight": -1}, "weight"),
        ({"check": {"type": "ping"}}, "check"),
        ({"check": {"type": "http", "interval": -5}}, "check"),
        ({"metadata": "zone=a"}, "metadata"),
        ({"id": "../etc"}, "id"),
    ],
)
def test_bad_registrations_get_field_errors(registry, operator_client, body, field):
    response = register(operator_client, **body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert AuditEntry.objects.filter(action="service.register", outcome="failure").exists()


def test_resolve_and_list_validate_their_parameters(db, operator_client):
    assert operator_client.get(f"{SERVICES}resolve/").status_code == 400
    bad = operator_client.get(f"{SERVICES}resolve/", {"name": "api", "strategy": "fastest"})
    assert bad.status_code == 400 and "strategy" in bad.json()["error"]["fields"]
    assert operator_client.get(SERVICES, {"health": "great"}).status_code == 400
    assert operator_client.get(f"{SERVICES}resolve/", {"name": "nobody"}).status_code == 404


def test_alert_rules_crud_and_history(db, operator_client, viewer_client):
    body = {
        "name": "too-many-instances", "metric": "chameleon_service_instances", "labels": {"service": "api"},
        "condition": "gt", "threshold": 3, "duration": 30, "severity": "critical",
        "channels": [{"type": "log"}, {"type": "webhook", "url": "http://127.0.0.1:9/hook"}],
    }
    created = operator_client.post(RULES, body, format="json")
    assert created.status_code == 201, created.content
    rule_id = created.json()["id"]
    assert created.json()["state"] == "ok"
    assert viewer_client.get(RULES).json()["count"] == 1
    patched = operator_client.patch(f"{RULES}{rule_id}/", {"threshold": 5, "enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["threshold"] == 5
    assert operator_client.get("/api/v1/alerts/").json()["count"] == 0
    assert operator_client.delete(f"{RULES}{rule_id}/").status_code == 204
    assert not AlertRule.objects.exists()
    actions = set(AuditEntry.objects.filter(target_type="alert_rule").values_list("action", flat=True))
    assert actions == {"alert_rule.create", "alert_rule.update", "alert_rule.delete"}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"channels": [{"type": "pager"}]}, "channels"),
        ({"channels": [{"type": "webhook", "url": "ftp://x"}]}, "channels"),
        ({"channels": [{"type": "email"}]}, "channels"),
        ({"condition": "about"}, "condition"),
        ({"threshold": "high"}, "threshold"),
        ({"duration": -1}, "duration"),
        ({"metric": "not a metric"}, "metric"),
        ({"labels": ["x"]}, "labels"),
    ],
)
def test_bad_alert_rules_get_field_errors(db, operator_client, change, field):
    body = {"name": "rule", "metric": "chameleon_process_threads", "threshold": 1, **change}
    response = operator_client.post(RULES, body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "method, path, body, expected",
    [
        ("post", SERVICES, ["not", "an", "object"], 400),
        ("post", SERVICES, "just a string", 400),
        ("post", SERVICES, {"name": "x", "endpoint": "y", "metadata": {"deep": {"a": [1, 2]}}, "ttl": "NaN"}, 400),
        ("put", f"{SERVICES}nobody/", {}, 405),
        ("patch", f"{SERVICES}nobody/", {}, 405),
        ("get", f"{SERVICES}nobody/", None, 404),
        ("delete", f"{SERVICES}nobody/", None, 404),
        ("post", f"{SERVICES}nobody/heartbeat/", None, 404),
        ("get", f"{SERVICES}resolve/?name=%00bad", None, 400),
        ("post", RULES, ["x"], 400),
        ("get", "/api/v1/alerts/?state=weird", None, 400),
        ("get", f"{SERVICES}?page=999", None, 404),
    ],
)
def test_odd_requests_never_500(db, operator_client, method, path, body, expected):
    response = getattr(operator_client, method)(path, body, format="json") if body is not None \
        else getattr(operator_client, method)(path)
    assert response.status_code == expected, response.content
