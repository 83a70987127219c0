"""The audit log: written by the service and on logins, read-only in the admin."""

from __future__ import annotations

import pytest

from core import services
from core.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_record_audit_keeps_who_what_target_and_outcome(viewer, rf):
    request = rf.post("/x", REMOTE_ADDR="10.1.2.3")
    request.user = viewer
    entry = services.record_audit(
        action="plugin.restart", target_type="plugin", target="hello", outcome="failure",
        source=AuditEntry.Source.API, detail={"error": "boom"}, request=request,
    )
    entry.refresh_from_db()
    assert (entry.username, entry.user, entry.action, entry.target_type, entry.target) == (
        viewer.username, viewer, "plugin.restart", "plugin", "hello",
    )
    assert entry.outcome == "failure"
    assert entry.detail == {"error": "boom"}
    assert entry.ip_address == "10.1.2.3"


def test_username_survives_the_user_being_deleted(viewer):
    entry = services.record_audit(action="task.pause", target="t1", user=viewer)
    viewer.delete()
    entry.refresh_from_db()
    assert entry.user is None
    assert entry.username == "viewer-user"


def test_admin_login_and_failed_login_are_audited(client, superuser):
    client.post("/admin/login/", {"username": "root-user", "password": "wrong"})
    client.post("/admin/login/", {"username": "root-user", "password": "root-user-password"})
    outcomes = list(AuditEntry.objects.filter(action="auth.login").order_by("id").values_list("target", "outcome"))
    assert outcomes == [("root-user", "denied"), ("root-user", "success")]


def test_audit_log_in_the_admin_is_listed_but_not_editable(client, superuser):
    entry = services.record_audit(action="task.cancel", target="nightly")
    client.force_login(superuser)
    listing = client.get("/admin/core/auditentry/")
    assert listing.status_code == 200
    assert b"task.cancel" in listing.content
    assert b"/admin/core/auditentry/add/" not in listing.content
    assert client.get("/admin/core/auditentry/add/").status_code == 403
    response = client.post(f"/admin/core/auditentry/{entry.pk}/change/", {"action": "forged"})
    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.action == "task.cancel"


def test_audit_api_filters_by_action_and_outcome(viewer_client):
    services.record_audit(action="task.pause", target="a")
    services.record_audit(action="task.pause", target="b", outcome="denied")
    services.record_audit(action="plugin.stop", target="c")
    data = viewer_client.get("/api/v1/audit/", {"action": "task.pause", "outcome": "denied"}).json()
    assert data["count"] == 1
    assert data["results"][0]["target"] == "b"
