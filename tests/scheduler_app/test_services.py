"""Task services: definitions, controls, PeriodicTask sync, next_run_at, audit and events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from core.models import AuditEntry
from plugins_app import events
from scheduler_app import services
from scheduler_app.dispatch import dispatch_due
from scheduler_app.models import Task, TaskRun
from scheduler_app.runner import execute_run
from tests.fixtures.services import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def published():
    seen: list = []
    subscription = events.subscribe("scheduler.task.#", seen.append)
    yield seen
    events.unsubscribe(subscription)


def make(task_id="job", schedule=None, **extra) -> Task:
    data = {"id": task_id, "name": task_id.title(), "schedule": schedule or {"type": "interval", "interval": "1m"}}
    data.update(extra)
    return services.create_task(data)


def test_create_sets_next_run_and_a_matching_periodic_task(django_capture_on_commit_callbacks, published):
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        task = make(schedule={"type": "interval", "interval": "90s"})
    assert task.status == Task.Status.PENDING
    assert before + timedelta(seconds=89) < task.next_run_at <= timezone.now() + timedelta(seconds=90)
    periodic = PeriodicTask.objects.get(pk=task.periodic_task_id)
    assert periodic.task == services.RUN_TASK_NAME and periodic.args == '["job"]'
    assert periodic.interval.every == 90 and periodic.enabled
    # The bus delivers on its own threads: wait for both events, in publish order.
    wait_for(lambda: len(published) >= 2, 5, "the created and scheduled events")
    assert [event.topic for event in published] == ["scheduler.task.created", "scheduler.task.scheduled"]
    assert AuditEntry.objects.filter(action="task.create", target="job", outcome="success").exists()


def test_cron_task_gets_crontab_and_once_task_gets_clocked():
    cron = make("cron-job", {"type": "cron", "cron": "15 3 * * 1-5", "timezone": "Europe/Paris"})
    crontab = PeriodicTask.objects.get(pk=cron.periodic_task_id).crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == (
        "15", "3", "1-5", "Europe/Paris")
    once = make("once-job", {"type": "once", "delay": "1h"})
    periodic = PeriodicTask.objects.get(pk=once.periodic_task_id)
    assert periodic.one_off and periodic.clocked.clocked_time == once.next_run_at


def test_duplicate_id_is_a_conflict_and_is_audited():
    make()
    with pytest.raises(services.TaskConflict):
        make()
    assert AuditEntry.objects.filter(action="task.create", target="job", outcome="failure").exists()


@pytest.mark.parametrize(("data", "field"), [
    ({"id": "bad id!", "schedule": {"type": "interval", "interval": "1s"}}, "id"),
    ({"id": "x", "schedule": {"type": "interval", "interval": "nope"}}, "schedule.interval"),
    ({"id": "x"}, "schedule"),
    ({"id": "x", "schedule": {"type": "interval", "interval": "1s"}, "handler": "no.such"}, "handler"),
    ({"id": "x", "schedule": {"type": "interval", "interval": "1s"}, "handler": "events.publish",
      "kwargs": {"data": {}}}, "kwargs"),
    ({"id": "x", "schedule": {"type": "interval", "interval": "1s"}, "concurrency": "sometimes"}, "concurrency"),
    ({"id": "x", "schedule": {"type": "interval", "interval": "1s"}, "timeout": "forever"}, "timeout"),
    ({"id": "x", "schedule": {"type": "interval", "interval": "1s"}, "retries": -1}, "retries"),
])
def test_invalid_definitions_are_refused_per_field(data, field):
    with pytest.raises(ValidationError) as caught:
        services.create_task(data)
    assert field in caught.value.message_dict
    assert not Task.objects.exists()


def test_pause_resume_cancel_keep_status_and_periodic_task_in_sync():
    task = make()
    services.pause_task("job")
    task.refresh_from_db()
    assert task.status == "paused" and not PeriodicTask.objects.get(pk=task.periodic_task_id).enabled
    services.resume_task("job")
    task.refresh_from_db()
    assert task.status == "pending" and task.next_run_at > timezone.now()
    assert PeriodicTask.objects.get(pk=task.periodic_task_id).enabled
    services.cancel_task("job")
    task.refresh_from_db()
    assert task.status == "canceled" and task.next_run_at is None
    with pytest.raises(services.TaskConflict):
        services.resume_task("job")
    with pytest.raises(services.TaskNotFound):
        services.pause_task("missing")
    actions = list(AuditEntry.objects.filter(target="job").values_list("action", "outcome"))
    assert ("task.pause", "success") in actions and ("task.resume", "failure") in actions


def test_paused_task_is_not_dispatched():
    task = make(schedule={"type": "interval", "interval": "1s"})
    services.pause_task(task.id)
    Task.objects.filter(pk=task.id).update(next_run_at=timezone.now() - timedelta(seconds=5))
    dispatch_due()
    assert not TaskRun.objects.exists()


def test_edit_moves_next_run_at_and_periodic_task():
    task = make()
    updated = services.update_task("job", {"schedule": {"type": "cron", "cron": "0 0 1 1 *"}, "name": "Yearly"})
    assert updated.next_run_at.month == 1 and updated.next_run_at.day == 1 and updated.next_run_at > timezone.now()
    periodic = PeriodicTask.objects.get(pk=task.periodic_task_id)
    assert periodic.crontab.day_of_month == "1" and periodic.interval is None
    with pytest.raises(ValidationError):
        services.update_task("job", {"schedule": {"type": "cron", "cron": "bad"}})


def test_dispatch_claims_each_slot_once_and_counts_max_runs(django_capture_on_commit_callbacks):
    task = make(schedule={"type": "interval", "interval": "1s", "max_runs": 3})
    for _ in range(5):
        Task.objects.filter(pk=task.id, next_run_at__isnull=False).update(next_run_at=timezone.now())
        dispatch_due()
        dispatch_due()  # a second pass (or a second beat) finds nothing to claim
    runs = list(TaskRun.objects.filter(task=task))
    assert len(runs) == 3 and len({run.scheduled_for for run in runs}) == 3
    for run in runs:
        with django_capture_on_commit_callbacks(execute=True):
            assert execute_run(task.id, run.pk)["status"] == "succeeded"
    task.refresh_from_db()
    assert (task.status, task.run_count, task.failure_count, task.next_run_at) == ("completed", 3, 0, None)


def test_once_task_runs_exactly_once_and_completes():
    task = make("once", {"type": "once", "delay": "0s"})
    dispatch_due()
    dispatch_due()
    (run,) = TaskRun.objects.filter(task=task)
    execute_run(task.id, run.pk)
    assert execute_run(task.id, run.pk)["skipped"]  # a redelivered message does nothing
    task.refresh_from_db()
    assert (task.status, task.run_count) == ("completed", 1)
    dispatch_due()
    assert TaskRun.objects.filter(task=task).count() == 1


def test_failure_records_traceback_retries_with_backoff_then_fails_once_task(settings):
    from scheduler_app.handlers import register_handler, unregister_handler

    def boom(**kwargs):
        raise RuntimeError("boom")

    register_handler("test.boom", boom, replace=True)
    try:
        task = make("flaky", {"type": "once", "delay": "0s"}, handler="test.boom", retries=1, retry_backoff="2s")
        dispatch_due()
        first = TaskRun.objects.get(task=task)
        execute_run(task.id, first.pk)
        first.refresh_from_db()
        assert first.status == "failed" and "RuntimeError: boom" in first.error and "Traceback" in first.traceback
        retry = TaskRun.objects.get(task=task, trigger="retry")
        assert retry.attempt == 2 and retry.scheduled_for >= first.finished_at + timedelta(seconds=1.9)
        task.refresh_from_db()
        assert task.status == "running" and task.run_count == 0
        execute_run(task.id, retry.pk)
        task.refresh_from_db()
        assert (task.status, task.run_count, task.failure_count) == ("failed", 1, 1)
        assert "boom" in task.last_error
    finally:
        unregister_handler("test.boom")


def test_forbid_skips_while_a_run_is_going_and_replace_cancels_it():
    forbid = make("forbid", {"type": "interval", "interval": "1s"}, concurrency="forbid")
    replace = make("replace", {"type": "interval", "interval": "1s"}, concurrency="replace")
    for _ in range(2):
        Task.objects.update(next_run_at=timezone.now())
        dispatch_due()
    assert TaskRun.objects.filter(task=forbid).count() == 1
    statuses = sorted(TaskRun.objects.filter(task=replace).values_list("status", flat=True))
    assert statuses == ["canceled", "queued"]


def test_cancel_revokes_queued_runs_and_run_now_queues_a_manual_run():
    task = make()
    run = services.run_task_now("job")
    assert run.trigger == "manual" and run.status == "queued"
    services.cancel_task("job")
    run.refresh_from_db()
    assert run.status == "canceled"
    assert execute_run(task.id, run.pk)["skipped"]
    with pytest.raises(services.TaskConflict):
        services.run_task_now("job")


def test_task_preview_stops_at_max_runs():
    task = make(schedule={"type": "interval", "interval": "10s", "max_runs": 2})
    times = services.task_preview(task, 5)
    assert len(times) == 2 and times[1] - times[0] == timedelta(seconds=10)


def test_delete_removes_task_and_periodic_task(published, django_capture_on_commit_callbacks):
    task = make()
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_task("job")
    assert not Task.objects.exists() and not PeriodicTask.objects.filter(pk=task.periodic_task_id).exists()
    wait_for(lambda: "scheduler.task.deleted" in [event.topic for event in published], 5, "the deleted event")


def test_purge_removes_old_runs_in_batches():
    from scheduler_app.dispatch import purge_old_runs

    task = make()
    old = timezone.now() - timedelta(days=40)
    TaskRun.objects.bulk_create([
        TaskRun(task=task, scheduled_for=old, trigger="manual", status="succeeded", finished_at=old)
        for _ in range(25)
    ] + [TaskRun(task=task, scheduled_for=old, trigger="manual", status="succeeded", finished_at=timezone.now())])
    assert purge_old_runs(30, batch_size=10) == 25
    assert TaskRun.objects.count() == 1


def test_plugins_call_handler_fails_the_run_with_a_clear_error_for_an_unknown_plugin():
    task = make("call-missing", {"type": "once", "delay": "0s"}, handler="plugins.call",
                kwargs={"plugin": "no-such-plugin", "method": "greet"})
    dispatch_due()
    run = TaskRun.objects.get(task=task)
    assert execute_run(task.id, run.pk)["status"] == "failed"
    run.refresh_from_db()
    assert "no-such-plugin" in run.error and run.traceback


def test_events_publish_handler_publishes_the_event(published):
    seen: list = []
    subscription = events.subscribe("test.scheduled", seen.append)
    try:
        task = make("publisher", {"type": "once", "delay": "0s"}, handler="events.publish",
                    kwargs={"topic": "test.scheduled", "data": {"n": 1}})
        dispatch_due()
        run = TaskRun.objects.get(task=task)
        assert execute_run(task.id, run.pk)["status"] == "succeeded"
        wait_for(lambda: seen, 5, "the published event")
        assert seen[0].data == {"n": 1} and seen[0].source == "scheduler"
    finally:
        events.unsubscribe(subscription)
