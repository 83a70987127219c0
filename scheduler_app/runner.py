"""A worker's side of execution: one start -> run -> finish wrapper per run.

`start_run` moves the run from queued to running only if it is still queued (a second
message for the same run, or a canceled run, does nothing); `finish_run` records the
outcome only if the run is still running (a run canceled or reaped meanwhile keeps that
state), decides a retry with backoff, and counts the run on its task atomically.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback as traceback_module
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from core.nodes import current_node_name
from scheduler_app import handlers, metrics
from scheduler_app.events import publish_task_event
from scheduler_app.models import Task, TaskRun

logger = logging.getLogger("chameleon.scheduler.runner")

MAX_RESULT_CHARS = 64_000
MAX_BACKOFF = 3600.0


def start_run(run_id: int, celery_id: str = "") -> TaskRun | None:
    """Claim a queued run for this worker process; None when it is not queued any more."""
    now = timezone.now()
    with transaction.atomic():
        started = TaskRun.objects.filter(pk=run_id, status=TaskRun.Status.QUEUED).update(
            status=TaskRun.Status.RUNNING, started_at=now, worker=current_node_name() or f"pid:{os.getpid()}",
            worker_host=socket.gethostname(), worker_pid=os.getpid(),
            **({"celery_id": celery_id} if celery_id else {}),
        )
        if not started:
            return None
        run = TaskRun.objects.select_related("task").get(pk=run_id)
        Task.objects.filter(pk=run.task_id, status=Task.Status.PENDING).update(status=Task.Status.RUNNING)
    publish_task_event("started", run.task_id, {"run_id": run.pk, "attempt": run.attempt, "trigger": run.trigger,
                                                "worker": run.worker})
    return run


def execute_run(task_id: str, run_id: int, celery_id: str = "") -> dict[str, Any]:
    """Run one TaskRun's handler and record the outcome; what the Celery task calls."""
    run = start_run(run_id, celery_id)
    if run is None:
        return {"run_id": run_id, "skipped": "not queued (already ran, canceled or lost)"}
    task = run.task
    began = time.perf_counter()
    outcome, result, error, trace = TaskRun.Status.SUCCEEDED, None, "", ""
    token = handlers._current_run.set({"task_id": task.id, "run_id": run.pk, "attempt": run.attempt,
                                       "trigger": run.trigger, "scheduled_for": run.scheduled_for.isoformat()})
    try:
        handler = handlers.get_handler(task.handler)
        result = _jsonable(handler.func(*(task.args or []), **(task.kwargs or {})))
    except SoftTimeLimitExceeded:
        outcome, error = TaskRun.Status.TIMED_OUT, f"timed out after {task.timeout:g}s"
        trace = traceback_module.format_exc()
    except Exception as exc:
        outcome, error = TaskRun.Status.FAILED, f"{type(exc).__name__}: {exc}"
        trace = traceback_module.format_exc()
    finally:
        handlers._current_run.reset(token)
    duration = time.perf_counter() - began
    finish_run(run.pk, outcome, result=result, error=error, traceback=trace, duration=duration,
               handler=task.handler)
    return {"run_id": run.pk, "status": outcome}


def finish_run(run_id: int, outcome: str, *, result: Any = None, error: str = "", traceback: str = "",
               duration: float | None = None, handler: str = "") -> bool:
    """Record a running run's outcome; retry or count it on the task. False if it was not running."""
    from scheduler_app.services import _settle_status

    now = timezone.now()
    with transaction.atomic():
        run = TaskRun.objects.select_related("task").filter(pk=run_id).first()
        if run is None:
            return False
        if duration is None and run.started_at:
            duration = (now - run.started_at).total_seconds()
        if not TaskRun.objects.filter(pk=run_id, status=TaskRun.Status.RUNNING).update(
            status=outcome, finished_at=now, duration=duration, result=result, error=error[:10_000],
            traceback=traceback[-20_000:],
        ):
            return False
        task = run.task
        failed = outcome in TaskRun.FAILURES
        retry = failed and run.attempt <= task.retries and task.status not in (Task.Status.CANCELED,)
        if retry:
            from scheduler_app.dispatch import new_run

            delay = min(MAX_BACKOFF, task.retry_backoff * (2 ** (run.attempt - 1)))
            new_run(task, now + timedelta(seconds=delay), TaskRun.Trigger.RETRY, run.attempt + 1).save()
            Task.objects.filter(pk=task.pk).update(last_error=error[:10_000])
        else:
            Task.objects.filter(pk=task.pk).update(
                run_count=F("run_count") + 1, failure_count=F("failure_count") + (1 if failed else 0),
                last_run_at=now, last_error=error[:10_000] if failed else "",
            )
            if task.periodic_task_id:
                PeriodicTask.objects.filter(pk=task.periodic_task_id).update(
                    last_run_at=now, total_run_count=F("total_run_count") + 1)
        _settle_status(task.pk)
    label = handler or task.handler
    metrics.executions.labels(handler=label, outcome=outcome).inc()
    if duration is not None:
        metrics.durations.labels(handler=label).observe(duration)
    if failed:
        metrics.failures.labels(handler=label, outcome=outcome).inc()
    data = {"run_id": run_id, "attempt": run.attempt, "status": outcome, "duration": duration}
    if failed:
        publish_task_event("failed", task.pk, {**data, "error": error[:500], "will_retry": retry})
    else:
        publish_task_event("completed", task.pk, data)
    return True


def _jsonable(value: Any) -> Any:
    """The handler's return value as JSON (text when it is not serializable), size-capped."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) > MAX_RESULT_CHARS:
        return {"truncated": text[:MAX_RESULT_CHARS]}
    return json.loads(text)
