"""Admin pages (schedule validation, preview, actions, run history) and the `tasks` command."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from core.models import AuditEntry
from scheduler_app import services
from scheduler_app.models import Task, TaskRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def form_data(**overrides) -> dict:
    data = {"id": "admin-task", "name": "From admin", "description": "", "handler": "log", "args": "[]",
            "kwargs": '{"message": "hi"}', "schedule": '{"type": "interval", "interval": "45s"}', "max_runs": "",
            "timeout": "", "retries": "0", "retry_backoff": "1", "concurrency": "allow",
            "runs-TOTAL_FORMS": "0", "runs-INITIAL_FORMS": "0", "runs-MIN_NUM_FORMS": "0", "runs-MAX_NUM_FORMS": "0"}
    data.update(overrides)
    return data


def test_admin_add_validates_the_schedule_and_saves_through_services(admin_client_logged):
    page = admin_client_logged.post("/admin/scheduler_app/task/add/",
                                    form_data(schedule='{"type": "cron", "cron": "70 * * * *"}'))
    assert page.status_code == 200 and "schedule.cron" in page.content.decode()
    assert not Task.objects.exists()
    saved = admin_client_logged.post("/admin/scheduler_app/task/add/", form_data())
    assert saved.status_code == 302, saved.content.decode()[:3000]
    task = Task.objects.get(pk="admin-task")
    assert task.next_run_at is not None and task.periodic_task_id is not None
    assert AuditEntry.objects.filter(action="task.create", source="admin", target="admin-task").exists()


def test_admin_change_page_shows_preview_history_and_controls(admin_client_logged):
    services.create_task({"id": "shown", "schedule": {"type": "cron", "cron": "0 9 * * *",
                                                      "timezone": "Europe/Paris"}})
    run = services.run_task_now("shown")
    TaskRun.objects.filter(pk=run.pk).update(status="failed", error="Boom happened")
    page = admin_client_logged.get("/admin/scheduler_app/task/shown/change/").content.decode()
    assert "Next runs (preview)" in page and "CET" in page or "CEST" in page
    assert "Boom happened" in page  # run history inline
    assert "/admin/scheduler_app/task/shown/operate/pause/" in page
    response = admin_client_logged.post("/admin/scheduler_app/task/shown/operate/pause/")
    assert response.status_code == 302 and Task.objects.get(pk="shown").status == "paused"
    assert admin_client_logged.get("/admin/scheduler_app/task/shown/operate/resume/").status_code == 403
    changed = admin_client_logged.post("/admin/scheduler_app/task/shown/change/", form_data(
        id="shown", schedule='{"type": "interval", "interval": "2m"}'))
    assert changed.status_code == 302
    assert Task.objects.get(pk="shown").schedule == {"type": "interval", "interval": "2m"}


def test_admin_bulk_actions_and_filters(admin_client_logged):
    for name in ("b1", "b2", "b3"):
        services.create_task({"id": name, "schedule": {"type": "interval", "interval": "1m"}})
    services.cancel_task("b3")
    response = admin_client_logged.post("/admin/scheduler_app/task/", {
        "action": "pause_selected", "_selected_action": ["b1", "b2", "b3"]}, follow=True)
    assert response.status_code == 200
    assert sorted(Task.objects.filter(status="paused").values_list("pk", flat=True)) == ["b1", "b2"]
    assert "refused for: b3" in response.content.decode()
    listing = admin_client_logged.get("/admin/scheduler_app/task/?status__exact=paused").content.decode()
    assert "b1" in listing and "b3</a>" not in listing
    assert admin_client_logged.get("/admin/scheduler_app/taskrun/").status_code == 200


def test_viewer_staff_cannot_operate_from_admin(viewer, db):
    viewer.is_staff = True
    viewer.save()
    services.create_task({"id": "guarded", "schedule": {"type": "interval", "interval": "1m"}})
    client = Client()
    client.force_login(viewer)
    assert client.get("/admin/scheduler_app/task/guarded/change/").status_code == 200
    assert client.post("/admin/scheduler_app/task/guarded/operate/pause/").status_code == 403
    assert Task.objects.get(pk="guarded").status == "pending"
    assert AuditEntry.objects.filter(action="task.pause", outcome="denied", target="guarded").exists()


def test_cli_create_list_control_and_errors():
    out = StringIO()
    call_command("tasks", "create", "cli-task", "--schedule", '{"type": "interval", "interval": "10s"}',
                 "--kwargs", '{"message": "from cli"}', stdout=out)
    assert "Created cli-task" in out.getvalue()
    call_command("tasks", "create", "cli-cron", "--schedule", "*/5 * * * *", stdout=out)
    listing = StringIO()
    call_command("tasks", "list", "--json", stdout=listing)
    assert {row["id"] for row in json.loads(listing.getvalue())} == {"cli-task", "cli-cron"}
    for command, status in (("pause", "paused"), ("resume", "pending"), ("cancel", "canceled")):
        call_command("tasks", command, "cli-cron", stdout=out)
        assert Task.objects.get(pk="cli-cron").status == status
    call_command("tasks", "run", "cli-task", stdout=out)
    assert TaskRun.objects.filter(task_id="cli-task", trigger="manual").count() == 1
    preview = StringIO()
    call_command("tasks", "preview", "cli-task", "--count", "3", stdout=preview)
    assert len(preview.getvalue().split()) == 3
    with pytest.raises(CommandError, match="schedule.interval"):
        call_command("tasks", "create", "bad", "--schedule", '{"type": "interval", "interval": "x"}')
    with pytest.raises(CommandError, match="not found"):
        call_command("tasks", "pause", "ghost")
    assert AuditEntry.objects.filter(source="cli", action="task.pause", target="cli-cron").exists()
