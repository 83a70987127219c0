"""The API skeleton: router root, JSON errors with field messages, pagination, OpenAPI."""

from __future__ import annotations

import pytest

from core import services

pytestmark = pytest.mark.django_db


def test_api_root_lists_resources(viewer_client):
    body = viewer_client.get("/api/v1/").json()
    assert {"audit", "nodes"} <= set(body)


def test_validation_errors_carry_field_messages(viewer_client):
    response = viewer_client.post("/api/v1/nodes/ping-worker/", {"timeout": "soon"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"]["timeout"] == ["A valid number is required."]
    assert error["message"].startswith("timeout:")


def test_unknown_api_path_is_a_json_404(viewer_client):
    response = viewer_client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unknown_object_is_a_json_404(viewer_client):
    response = viewer_client.get("/api/v1/audit/999999/")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == 404


def test_lists_are_paginated(viewer_client):
    for index in range(7):
        services.record_audit(action="test.page", target=str(index))
    data = viewer_client.get("/api/v1/audit/", {"page_size": 3}).json()
    assert data["count"] == 7
    assert len(data["results"]) == 3
    assert "page=2" in data["next"]


def test_bad_page_is_a_clear_404(viewer_client):
    response = viewer_client.get("/api/v1/audit/", {"page": 99})
    assert response.status_code == 404
    assert "Invalid page" in response.json()["error"]["message"]


def test_openapi_schema_describes_the_api(viewer_client):
    response = viewer_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Chameleon API"
    assert "/api/v1/audit/" in schema["paths"]
    assert "/api/v1/nodes/ping-worker/" in schema["paths"]


def test_swagger_ui_redirects_anonymous_users_to_login(client):
    response = client.get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/api/docs/")


def test_swagger_ui_serves_its_assets_locally(client, viewer):
    client.force_login(viewer)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn." not in html


def test_requests_get_a_request_id_and_keep_a_valid_incoming_one(client):
    assert len(client.get("/health")["X-Request-ID"]) == 32
    assert client.get("/health", HTTP_X_REQUEST_ID="trace-42")["X-Request-ID"] == "trace-42"
    assert client.get("/health", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"] != "bad id\n"


def test_console_pages_need_login(client, viewer):
    assert client.get("/")["Location"].startswith("/admin/login/")
    client.force_login(viewer)
    page = client.get("/")
    assert page.status_code == 200
    assert b"Control plane" in page.content


def test_unknown_console_page_is_a_page_not_a_traceback(client, settings):
    settings.DEBUG = False
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert b"Nothing is at /no-such-page" in response.content
