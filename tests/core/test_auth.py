"""Authentication and roles: who may read and operate (SPEC §9)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1/audit/", "/api/v1/nodes/", "/api/schema/"])
def test_anonymous_api_calls_are_refused(anonymous_client, path):
    response = anonymous_client.get(path, HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert b"not_authenticated" in response.content


def test_a_bad_token_is_refused(anonymous_client):
    anonymous_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = anonymous_client.get("/api/v1/nodes/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid token."


def test_health_needs_no_login(anonymous_client):
    assert anonymous_client.get("/health").status_code == 200


def test_drf_create_token_command_gives_a_working_token(viewer, anonymous_client, capsys):
    call_command("drf_create_token", viewer.username)
    key = Token.objects.get(user=viewer).key
    assert key in capsys.readouterr().out
    anonymous_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert anonymous_client.get("/api/v1/audit/").status_code == 200


def test_session_login_works_for_the_api(client, viewer):
    assert client.login(username=viewer.username, password="viewer-user-password")
    assert client.get("/api/v1/nodes/").status_code == 200


def test_roles_are_created_by_migrations_with_view_and_operate_permissions():
    viewer = set(Group.objects.get(name="viewer").permissions.values_list("codename", flat=True))
    operator = set(Group.objects.get(name="operator").permissions.values_list("codename", flat=True))
    assert {"view_auditentry", "view_node", "view_periodictask"} <= viewer
    assert all(codename.startswith("view_") for codename in viewer)
    assert {"view_periodictask", "change_periodictask", "add_periodictask"} <= operator
    # Nobody but the system writes the audit log.
    assert not {"add_auditentry", "change_auditentry", "delete_auditentry"} & operator


def test_a_user_without_a_role_cannot_read(anonymous_client, django_user_model):
    from tests.fixtures.users import token_client

    nobody = django_user_model.objects.create_user("nobody", password="nobody-password")
    assert token_client(nobody).get("/api/v1/audit/").status_code == 403


def test_audit_log_is_read_only_through_the_api(operator_client):
    from core.models import AuditEntry

    response = operator_client.post("/api/v1/audit/", {"action": "forged"}, format="json")
    assert response.status_code in (403, 405)
    assert not AuditEntry.objects.filter(action="forged").exists()


def test_metrics_need_a_login_or_token(anonymous_client, viewer):
    assert anonymous_client.get("/metrics").status_code == 401
    key = Token.objects.create(user=viewer).key
    response = anonymous_client.get("/metrics", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    assert b"django_http_requests" in response.content


def test_metrics_can_be_opened_by_configuration(anonymous_client, settings):
    settings.CHAMELEON = {**settings.CHAMELEON, "METRICS_PUBLIC": True}
    assert anonymous_client.get("/metrics").status_code == 200
