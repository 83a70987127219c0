"""REST API and seed-compatible routes of the scheduler: shapes, statuses, permissions, audit."""

from __future__ import annotations

import pytest

from core.models import AuditEntry
from scheduler_app.models import Task, TaskRun

pytestmark = pytest.mark.django_db

INTERVAL = {"type": "interval", "interval": "30s"}


def create(client, task_id="report", schedule=None, **extra):
    body = {"id": task_id, "name": "Report", "description": "d", "schedule": schedule or INTERVAL, **extra}
    return client.post("/scheduler/tasks", body, format="json")


# --- Seed routes ------------------------------------------------------------------------

def test_seed_create_answers_201_with_the_envelope(operator_client):
    response = create(operator_client)
    assert response.status_code == 201
    body = response.json()
    assert body["code"] == 201 and body["message"] == "success"
    task = body["data"]["task"]
    assert body["data"]["message"]
    assert {"id", "name", "description", "schedule", "status", "run_count", "failure_count", "created_at",
            "last_run_at", "next_run_at"} <= set(task)
    assert task["status"] == "pending" and task["schedule"] == {"type": "interval", "interval": "30s"}
    assert AuditEntry.objects.filter(action="task.create", source="seed_api", username="operator-user").exists()


def test_seed_list_detail_status_and_scheduler_status(operator_client):
    create(operator_client, "a")
    create(operator_client, "b", {"type": "cron", "cron": "@daily"})
    operator_client.post("/scheduler/tasks/b/pause")
    listed = operator_client.get("/scheduler/tasks").json()["data"]
    assert listed["total"] == 2 and set(listed["tasks"]) == {"a", "b"}
    assert operator_client.get("/scheduler/tasks/a").json()["data"]["task"]["id"] == "a"
    paused = operator_client.get("/scheduler/tasks/status/paused").json()["data"]
    assert paused["status"] == "paused" and paused["total"] == 1 and list(paused["tasks"]) == ["b"]
    status = operator_client.get("/scheduler/status").json()["data"]
    assert status["total_tasks"] == 2 and status["status_counts"]["paused"] == 1
    assert status["status_counts"]["pending"] == 1 and isinstance(status["running"], bool)


def test_seed_controls_answer_message_and_task_id(operator_client):
    create(operator_client)
    for operation, final in (("pause", "paused"), ("resume", "pending"), ("cancel", "canceled")):
        response = operator_client.post(f"/scheduler/tasks/report/{operation}")
        assert response.status_code == 200, response.content
        assert response.json()["data"]["task_id"] == "report" and response.json()["data"]["message"]
        assert Task.objects.get(pk="report").status == final
    # A canceled task stays readable.
    assert operator_client.get("/scheduler/tasks/report").json()["data"]["task"]["status"] == "canceled"
    refused = operator_client.post("/scheduler/tasks/report/resume")
    assert refused.status_code == 409 and refused.json()["code"] == 409


def test_seed_unknown_task_is_404_bad_schedule_400_duplicate_409(operator_client):
    for response in (operator_client.get("/scheduler/tasks/nope"), operator_client.post("/scheduler/tasks/nope/pause")):
        assert response.status_code == 404
        assert response.json()["code"] == 404 and "nope" in response.json()["message"]
    bad = create(operator_client, schedule={"type": "cron", "cron": "every tuesday"})
    assert bad.status_code == 400
    assert bad.json()["code"] == 400 and "cron" in bad.json()["message"]
    assert "schedule.cron" in bad.json()["errors"]
    assert create(operator_client).status_code == 201
    duplicate = create(operator_client)
    assert duplicate.status_code == 409 and duplicate.json()["code"] == 409
    assert operator_client.get("/scheduler/tasks/status/sleeping").status_code == 400


def test_viewer_reads_but_gets_403_on_operations_and_is_audited(viewer_client, operator_client):
    create(operator_client)
    assert viewer_client.get("/scheduler/tasks").status_code == 200
    assert viewer_client.get("/scheduler/status").status_code == 200
    assert create(viewer_client, "other").status_code == 403
    for operation in ("pause", "resume", "cancel"):
        response = viewer_client.post(f"/scheduler/tasks/report/{operation}")
        assert response.status_code == 403 and response.json()["code"] == 403
    assert viewer_client.post("/api/v1/tasks/report/run/").status_code == 403
    assert viewer_client.delete("/api/v1/tasks/report/").status_code == 403
    assert Task.objects.get(pk="report").status == "pending"
    denied = AuditEntry.objects.filter(outcome="denied", username="viewer-user")
    assert denied.count() >= 5 and denied.filter(action="task.pause").exists()


def test_anonymous_gets_401(anonymous_client):
    assert anonymous_client.get("/scheduler/tasks").status_code in (401, 403)
    assert anonymous_client.get("/api/v1/tasks/").status_code == 401


# --- REST API ---------------------------------------------------------------------------

def test_rest_crud_and_actions(operator_client):
    response = operator_client.post("/api/v1/tasks/", {
        "id": "nightly.report", "schedule": {"type": "cron", "cron": "0 2 * * *", "timezone": "Europe/Paris"},
        "timeout": "5m", "retries": 2, "retry_backoff": "PT10S", "concurrency": "forbid",
    }, format="json")
    assert response.status_code == 201, response.content
    task = response.json()
    assert task["timeout"] == 300 and task["retry_backoff"] == 10 and task["schedule_text"].startswith("cron")
    assert operator_client.get("/api/v1/tasks/nightly.report/").json()["id"] == "nightly.report"
    patched = operator_client.patch("/api/v1/tasks/nightly.report/", {"name": "Nightly"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "Nightly"
    bad = operator_client.patch("/api/v1/tasks/nightly.report/", {"schedule": {"type": "interval"}}, format="json")
    assert bad.status_code == 400 and "schedule.interval" in bad.json()["error"]["fields"]
    assert operator_client.post("/api/v1/tasks/nightly.report/pause/").json()["status"] == "paused"
    assert operator_client.post("/api/v1/tasks/nightly.report/resume/").json()["status"] == "pending"
    run = operator_client.post("/api/v1/tasks/nightly.report/run/")
    assert run.status_code == 202 and run.json()["run"]["trigger"] == "manual"
    runs = operator_client.get("/api/v1/tasks/nightly.report/runs/").json()
    assert runs["count"] == 1 and runs["results"][0]["status"] == "queued"
    run_id = runs["results"][0]["id"]
    assert operator_client.get(f"/api/v1/tasks/nightly.report/runs/{run_id}/").json()["id"] == run_id
    assert operator_client.get("/api/v1/task-runs/?status=queued").json()["count"] == 1
    preview = operator_client.get("/api/v1/tasks/nightly.report/preview/?count=3").json()["next_runs"]
    assert len(preview) == 3
    assert operator_client.post("/api/v1/tasks/nightly.report/cancel/").json()["status"] == "canceled"
    assert TaskRun.objects.get(pk=run_id).status == "canceled"
    assert operator_client.delete("/api/v1/tasks/nightly.report/").status_code == 204
    assert operator_client.get("/api/v1/tasks/nightly.report/").status_code == 404
    actions = set(AuditEntry.objects.filter(target="nightly.report").values_list("action", flat=True))
    assert {"task.create", "task.update", "task.pause", "task.resume", "task.run", "task.cancel",
            "task.delete"} <= actions


def test_rest_errors_404_409_and_filters(operator_client):
    assert operator_client.post("/api/v1/tasks/missing/pause/").status_code == 404
    assert create(operator_client, "x1").status_code == 201
    dup = operator_client.post("/api/v1/tasks/", {"id": "x1", "schedule": INTERVAL}, format="json")
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "conflict"
    create(operator_client, "x2", {"type": "cron", "cron": "@hourly"})
    assert [t["id"] for t in operator_client.get("/api/v1/tasks/?schedule_type=cron").json()["results"]] == ["x2"]
    assert operator_client.get("/api/v1/tasks/?status=pending&ordering=-id").json()["results"][0]["id"] == "x2"
    garbage = operator_client.post("/api/v1/tasks/", ["not", "an", "object"], format="json")
    assert garbage.status_code == 400


def test_schedule_preview_endpoint_validates(operator_client):
    good = operator_client.post("/api/v1/tasks/preview/", {"schedule": {"type": "cron", "cron": "*/10 * * * *"},
                                                            "count": 4}, format="json")
    assert good.status_code == 200 and len(good.json()["next_runs"]) == 4
    bad = operator_client.post("/api/v1/tasks/preview/", {"schedule": {"type": "cron", "cron": "99 * * * *"}},
                               format="json")
    assert bad.status_code == 400 and "schedule.cron" in bad.json()["error"]["fields"]


def test_handlers_list_with_schemas_and_status(viewer_client):
    handlers = {h["name"]: h for h in viewer_client.get("/api/v1/handlers/").json()}
    assert {"log", "events.publish", "plugins.call"} <= set(handlers)
    assert handlers["events.publish"]["schema"]["required"] == ["topic"]
    assert viewer_client.get("/api/v1/handlers/plugins.call/").json()["owner"] == "builtin"
    assert viewer_client.get("/api/v1/handlers/nope/").status_code == 404
    status = viewer_client.get("/api/v1/scheduler/status/").json()
    assert {"running", "total_tasks", "status_counts", "active_beat", "workers"} <= set(status)
