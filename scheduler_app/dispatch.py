"""Beat's side of execution: claim due slots, send runs to workers, re-send lost messages,
end runs whose worker died, and purge old run history.

A due slot is claimed by a conditional UPDATE on `next_run_at` (the value beat read):
only one claimer can move it, so a slot becomes at most one run -- whatever the number of
beat replicas or restarts -- and a unique constraint on (task, slot) backs that up.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from core.conf import chameleon_settings
from scheduler_app import metrics
from scheduler_app.models import Task, TaskRun
from scheduler_app.schedules import ScheduleError

logger = logging.getLogger("chameleon.scheduler.dispatch")

#: Seconds past a run's timeout before the reaper ends it (Celery's hard limit fires first).
TIMEOUT_GRACE = 30.0


def new_run(task: Task, scheduled_for: datetime, trigger: str, attempt: int = 1) -> TaskRun:
    return TaskRun(task=task, scheduled_for=scheduled_for, trigger=trigger, attempt=attempt,
                   celery_id=str(uuid.uuid4()))


def dispatch_due(now: datetime | None = None, limit: int = 2000) -> float | None:
    """Turn every due slot into a queued run and send it; returns seconds until the next due slot.

    The due rows are read and moved inside one transaction that owns them: row locks with
    SKIP LOCKED on PostgreSQL/MySQL (a row another beat or a control holds is left for the
    next tick), SQLite's IMMEDIATE transaction (one writer at a time) otherwise. So each
    slot is claimed once, and all moves are written with one bulk UPDATE.
    """
    from scheduler_app.services import cancel_active_runs

    now = now or timezone.now()
    planned: list[TaskRun] = []
    with transaction.atomic():
        due_query = (
            Task.objects.filter(status__in=Task.ACTIVE, next_run_at__lte=now)
            .only("id", "schedule", "max_runs", "next_run_at", "dispatch_count", "concurrency", "timeout", "status",
                  "last_error")
            .order_by("next_run_at")
        )
        features = connection.features
        if features.has_select_for_update_skip_locked:
            due_query = due_query.select_for_update(
                skip_locked=True, **({"of": ("self",)} if features.has_select_for_update_of else {}))
        due = list(due_query[:limit])
        if due:
            guarded = [task.id for task in due if task.concurrency != Task.Concurrency.ALLOW]
            busy = set(
                TaskRun.objects.filter(task_id__in=guarded, status__in=TaskRun.ACTIVE).values_list("task_id", flat=True)
            ) if guarded else set()
            moved: list[Task] = []
            for task in due:
                run = _claim(task, now, task.id in busy, cancel_active_runs)
                moved.append(task)
                if run is not None:
                    planned.append(run)
            _write_moves(moved)
            TaskRun.objects.bulk_create(planned)
    if planned:
        send_runs(planned)
    upcoming = next_due_at()
    return None if upcoming is None else max(0.0, (upcoming - timezone.now()).total_seconds())


def next_due_at() -> datetime | None:
    """The earliest next_run_at of an active task: one index probe per status (no sort)."""
    times = [
        Task.objects.filter(status=status, next_run_at__isnull=False).order_by("next_run_at")
        .values_list("next_run_at", flat=True).first()
        for status in Task.ACTIVE
    ]
    return min((moment for moment in times if moment is not None), default=None)


def _write_moves(tasks: list[Task]) -> None:
    """Write the claimed tasks' new state with one prepared UPDATE run for each row.

    (`bulk_update` builds a CASE expression per field in Python: ~5 ms per row here.)
    """
    ops = connection.ops
    table = ops.quote_name(Task._meta.db_table)
    columns = ("next_run_at", "dispatch_count", "status", "last_error")
    assignments = ", ".join(f"{ops.quote_name(column)} = %s" for column in columns)
    sql = f"UPDATE {table} SET {assignments} WHERE {ops.quote_name('id')} = %s"
    rows = [
        (ops.adapt_datetimefield_value(task.next_run_at), task.dispatch_count, task.status, task.last_error, task.pk)
        for task in tasks
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _claim(task: Task, now: datetime, busy: bool, cancel_active_runs: Any) -> TaskRun | None:
    """Move the task past its due slot (in memory; the caller writes it); the run to create, if any."""
    slot = task.next_run_at
    try:
        schedule = task.parsed_schedule
    except ScheduleError as exc:  # stored before validation existed, or edited in the database
        task.status, task.next_run_at, task.last_error = Task.Status.FAILED, None, f"invalid schedule: {exc}"
        return None
    task.next_run_at = schedule.next_after(slot, now)
    if busy and task.concurrency == Task.Concurrency.FORBID:
        metrics.skipped.inc()
        logger.info("Skipped a run of %s: the previous one is still going (concurrency=forbid)", task.id)
        return None
    task.dispatch_count += 1
    if schedule.max_runs and task.dispatch_count >= schedule.max_runs:
        task.next_run_at = None
    task.status = Task.Status.RUNNING
    if busy and task.concurrency == Task.Concurrency.REPLACE:
        cancel_active_runs(task.id, "replaced by a newer run (concurrency=replace)")
    return new_run(task, slot, TaskRun.Trigger.SCHEDULE)


def send_runs(runs: list[TaskRun]) -> None:
    """Send each run's Celery message (with the task's time limits) and mark it sent."""
    from scheduler_app.tasks import run_task

    sent: list[int] = []
    with run_task.app.producer_or_acquire() as producer:
        for run in runs:
            timeout = run.task.timeout
            limits = {"soft_time_limit": timeout, "time_limit": timeout + 5} if timeout else {}
            try:
                run_task.apply_async(args=[run.task_id, run.pk], task_id=run.celery_id, producer=producer, **limits)
            except Exception:  # broker down: the run stays unsent and is re-sent later
                logger.exception("Could not send run %s of task %s", run.pk, run.task_id)
                continue
            sent.append(run.pk)
            metrics.dispatched.labels(trigger=run.trigger).inc()
            metrics.dispatch_lag.observe(max(0.0, (timezone.now() - run.scheduled_for).total_seconds()))
    if sent:
        TaskRun.objects.filter(pk__in=sent, sent_at__isnull=True).update(sent_at=timezone.now())


def send_waiting_runs(now: datetime | None = None) -> int:
    """Send retries whose backoff has passed and re-send messages no worker picked up."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=chameleon_settings.SCHEDULER_REQUEUE_AFTER)
    waiting = list(
        TaskRun.objects.filter(status=TaskRun.Status.QUEUED, scheduled_for__lte=now, sent_at__isnull=True)
        .select_related("task")[:500]
    )
    resend = list(
        TaskRun.objects.filter(status=TaskRun.Status.QUEUED, sent_at__lt=stale).select_related("task")[:500]
    )
    if resend:
        # A message can be lost with its worker; starting a run is conditional, so a
        # second message for the same run never runs it twice.
        TaskRun.objects.filter(pk__in=[run.pk for run in resend]).update(sent_at=None)
    send_runs(waiting + resend)
    return len(waiting) + len(resend)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_runs(now: datetime | None = None) -> int:
    """End runs whose worker died (`lost`) or that outlived their timeout (`timed_out`)."""
    from core.models import Node
    from scheduler_app.runner import finish_run

    now = now or timezone.now()
    running = list(TaskRun.objects.filter(status=TaskRun.Status.RUNNING).select_related("task")[:1000])
    if not running:
        return 0
    names = {run.worker for run in running}
    dead_nodes = set(Node.objects.filter(name__in=names).exclude(pk__in=Node.objects.alive()).values_list(
        "name", flat=True))
    host = socket.gethostname()
    ended = 0
    for run in running:
        reason = None
        outcome = TaskRun.Status.LOST
        elapsed = (now - run.started_at).total_seconds() if run.started_at else 0.0
        if run.worker in dead_nodes:
            reason = f"worker {run.worker} stopped heartbeating while the run was going"
        elif run.worker_host == host and run.worker_pid and not _pid_alive(run.worker_pid):
            reason = f"worker process {run.worker_pid} on {host} died while the run was going"
        elif run.task.timeout and elapsed > run.task.timeout + TIMEOUT_GRACE:
            reason = f"still running {elapsed:.0f}s after its {run.task.timeout:g}s timeout"
            outcome = TaskRun.Status.TIMED_OUT
        if reason is None:
            continue
        if run.task.timeout and elapsed >= run.task.timeout:
            outcome = TaskRun.Status.TIMED_OUT  # Celery's hard time limit killed the process
            reason = f"timed out after {run.task.timeout:g}s ({reason})"
        if finish_run(run.pk, outcome, error=reason, handler=run.task.handler):
            logger.warning("Run %s of task %s ended %s: %s", run.pk, run.task_id, outcome, reason)
            ended += 1
    return ended


def purge_old_runs(days: float | None = None, *, batch_size: int = 1000) -> int:
    """Delete finished runs older than `days` (SCHEDULER_RUN_RETENTION_DAYS), in batches."""
    days = chameleon_settings.SCHEDULER_RUN_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        batch = list(TaskRun.objects.filter(finished_at__lt=cutoff).order_by("pk").values_list("pk", flat=True)[
            :batch_size])
        if not batch:
            return deleted
        deleted += TaskRun.objects.filter(pk__in=batch).delete()[0]


def update_gauges() -> None:
    counts = dict.fromkeys(Task.Status.values, 0)
    counts.update(Task.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    for status, count in counts.items():
        metrics.tasks_total.labels(status=status).set(count)
