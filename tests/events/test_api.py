"""REST: GET/POST /api/v1/events/ and the seed route POST /plugins/events/test."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEntry
from plugins_app.events import publish, subscribe, unsubscribe
from plugins_app.events.models import Event as EventRow
from tests.fixtures.services import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(event_transport):
    event_transport("database")
    # Only this test's events (rolled back after it): with a Redis transport, earlier tests'
    # events are stored by a background thread, outside their test transactions.
    EventRow.objects.all().delete()
    published = [
        publish("plugin.started", {"plugin": "hello"}, source="plugin:hello"),
        publish("plugin.stopped", {"plugin": "hello"}, source="plugin:hello"),
        publish("scheduler.task.failed", {"task": "x"}, source="scheduler"),
        publish("scheduler.task.run.failed", {"task": "y"}, source="scheduler"),
        publish("test.demo", {}, source="api:someone"),
    ]
    EventRow.objects.filter(event_id=published[0].id).update(timestamp=timezone.now() - timedelta(hours=2))
    return published


def topics_of(response) -> list[str]:
    return [event["topic"] for event in response.json()["results"]]


@pytest.mark.parametrize(("query", "expected"), [
    ("", ["test.demo", "scheduler.task.run.failed", "scheduler.task.failed", "plugin.stopped", "plugin.started"]),
    ("topic=plugin.*", ["plugin.stopped", "plugin.started"]),
    ("topic=scheduler.task.failed", ["scheduler.task.failed"]),
    ("topic=%23.failed", ["scheduler.task.run.failed", "scheduler.task.failed"]),
    ("topic=scheduler.*.failed", ["scheduler.task.failed"]),
    ("source=scheduler", ["scheduler.task.run.failed", "scheduler.task.failed"]),
    ("topic=plugin.%23&source=plugin:hello", ["plugin.stopped", "plugin.started"]),
])
def test_list_filters_by_topic_pattern_and_source_newest_first(viewer_client, stored, query, expected):
    response = viewer_client.get(f"/api/v1/events/?{query}")
    assert response.status_code == 200, response.json()
    assert topics_of(response) == expected


def test_list_filters_by_time_and_paginates(viewer_client, stored):
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    response = viewer_client.get("/api/v1/events/", {"since": since})
    assert "plugin.started" not in topics_of(response) and len(topics_of(response)) == 4
    until = (timezone.now() - timedelta(hours=1)).isoformat()
    assert topics_of(viewer_client.get("/api/v1/events/", {"until": until})) == ["plugin.started"]
    page = viewer_client.get("/api/v1/events/", {"page_size": 2, "page": 2}).json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"] and page["previous"]
    event = page["results"][0]
    assert set(event) == {"id", "topic", "source", "data", "timestamp", "node"}
    detail = viewer_client.get(f"/api/v1/events/{event['id']}/")
    assert detail.status_code == 200 and detail.json() == event


@pytest.mark.parametrize("query", ["topic=a..b", "topic=plugin.**", "since=yesterday"])
def test_bad_filters_are_400_with_field_messages(viewer_client, stored, query):
    response = viewer_client.get(f"/api/v1/events/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]


def test_anonymous_gets_401(anonymous_client):
    assert anonymous_client.get("/api/v1/events/").status_code == 401
    assert anonymous_client.post("/plugins/events/test", {}, format="json").status_code == 401


def test_operator_publishes_an_event_that_subscribers_get_and_is_audited(operator_client, operator, event_transport):
    event_transport("database")
    seen = []
    subscription = subscribe("orders.#", seen.append)
    try:
        response = operator_client.post("/api/v1/events/", {"topic": "orders.created", "data": {"id": 7}}, format="json")
        assert response.status_code == 201, response.json()
        wait_for(lambda: seen, 5, "the published event to reach a subscriber")
    finally:
        unsubscribe(subscription)
    body = response.json()
    assert body["topic"] == "orders.created" and body["data"] == {"id": 7}
    assert body["source"] == f"api:{operator.username}" and seen[0].id == body["id"]
    assert EventRow.objects.filter(event_id=body["id"]).exists()
    assert AuditEntry.objects.filter(action="events.publish", target="orders.created", outcome="success",
                                     username=operator.username).exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"topic": "bad topic"}, "topic"),
    ({"topic": "a.*"}, "topic"),
    ({}, "topic"),
    ({"topic": "ok.topic", "data": [1, 2]}, "data"),
    ({"topic": "ok.topic", "data": "text"}, "data"),
])
def test_invalid_publish_is_400_with_field_message_and_audited(operator_client, body, field):
    response = operator_client.post("/api/v1/events/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert AuditEntry.objects.filter(action="events.publish", outcome="failure").exists()


def test_viewer_cannot_publish_and_the_attempt_is_audited(viewer_client, viewer):
    response = viewer_client.post("/api/v1/events/", {"topic": "x.y"}, format="json")
    assert response.status_code == 403
    assert viewer_client.post("/plugins/events/test", {}, format="json").status_code == 403
    assert AuditEntry.objects.filter(action="events.publish", outcome="denied", username=viewer.username).count() == 2
    assert not EventRow.objects.filter(topic="x.y").exists()


def test_seed_route_publishes_test_demo_in_the_seed_envelope(operator_client, event_transport):
    event_transport("database")
    response = operator_client.post("/plugins/events/test", {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 200 and body["message"] == "success"
    assert set(body["data"]) == {"message", "event"}
    event = body["data"]["event"]
    assert event["topic"] == "test.demo" and set(event) == {"id", "topic", "source", "data", "timestamp", "node"}
    assert EventRow.objects.filter(event_id=event["id"], topic="test.demo").exists()
    assert AuditEntry.objects.filter(action="events.publish", target="test.demo", source="seed_api").exists()


def test_seed_route_error_uses_the_seed_envelope(operator_client):
    response = operator_client.post("/plugins/events/test", {"message": ["not", "text"]}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == 400 and response.json()["data"] is None


def test_event_types_lists_builtin_topics(viewer_client):
    response = viewer_client.get("/api/v1/event-types/")
    assert response.status_code == 200
    assert {"plugin.started", "test.*", "node.joined"} <= {item["topic"] for item in response.json()}


def test_admin_lists_events_read_only(client, superuser, stored):
    client.force_login(superuser)
    page = client.get("/admin/events/event/")
    assert page.status_code == 200 and "scheduler.task.failed" in page.content.decode()
    assert client.get("/admin/events/event/add/").status_code == 403
    row = EventRow.objects.get(event_id=stored[0].id)
    assert client.get(f"/admin/events/event/{row.pk}/change/").status_code == 200
