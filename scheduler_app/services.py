"""Scheduler services: define, edit and control tasks, keeping each PeriodicTask in sync.

The REST API, the seed routes, the admin and the CLI all call these functions; each one
audits what it did (or why it refused), and publishes `scheduler.task.*` after commit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jsonschema
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.http import HttpRequest
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)

from core.models import AuditEntry
from core.services import record_audit
from scheduler_app import handlers
from scheduler_app.events import publish_task_event
from scheduler_app.models import TASK_ID_VALIDATOR, Task, TaskRun
from scheduler_app.schedules import ScheduleError, parse_duration, parse_schedule

RUN_TASK_NAME = "scheduler_app.run_task"
PERIODIC_PREFIX = "chameleon:"
EDITABLE_FIELDS = ("name", "description", "handler", "args", "kwargs", "schedule", "max_runs", "timeout",
                   "retries", "retry_backoff", "concurrency")


class SchedulerError(Exception):
    """A refused operation; `status` is the HTTP status the doors answer with."""

    status = 400
    code = "invalid"


class TaskNotFound(SchedulerError):
    status = 404
    code = "not_found"


class TaskConflict(SchedulerError):
    status = 409
    code = "conflict"


@dataclass
class Actor:
    """Who asks, through which door: recorded in the audit log."""

    user: AbstractBaseUser | AnonymousUser | None = None
    source: str = AuditEntry.Source.SYSTEM
    request: HttpRequest | None = None


SYSTEM = Actor()


def audited(action: str) -> Callable:
    """Audit the wrapped service: success, or failure with the reason (then re-raise)."""

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(task_id_or_data: Any, *args: Any, actor: Actor = SYSTEM, **kwargs: Any) -> Any:
            target = task_id_or_data if isinstance(task_id_or_data, str) else str(
                (task_id_or_data or {}).get("id", "") if isinstance(task_id_or_data, dict) else "")
            try:
                result = func(task_id_or_data, *args, actor=actor, **kwargs)
            except (SchedulerError, ValidationError) as exc:
                detail = {"error": _error_text(exc)}
                record_audit(action=action, target_type="task", target=target, outcome=AuditEntry.Outcome.FAILURE,
                             user=actor.user, source=actor.source, detail=detail, request=actor.request)
                raise
            detail = {"run_id": result.pk} if isinstance(result, TaskRun) else None
            record_audit(action=action, target_type="task", target=result.pk if isinstance(result, Task) else target,
                         user=actor.user, source=actor.source, detail=detail, request=actor.request)
            return result

        return wrapper

    return decorate


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


# --- Validation -------------------------------------------------------------------------

def validate_task_data(data: dict[str, Any], *, instance: Task | None = None) -> dict[str, Any]:
    """Check and normalize task fields; raises ValidationError keyed by field (schedule keys as `schedule.<k>`)."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    if instance is None:
        task_id = data.get("id")
        if not isinstance(task_id, str) or not task_id:
            errors["id"] = ["is required (a slug such as nightly-report)"]
        else:
            try:
                TASK_ID_VALIDATOR(task_id)
                clean["id"] = task_id
            except ValidationError as exc:
                errors["id"] = exc.messages
    for key in ("name", "description"):
        if key in data:
            if not isinstance(data[key], str):
                errors[key] = ["must be a string"]
            else:
                clean[key] = data[key] or ""
    if "name" in clean and len(clean["name"]) > 200:
        errors["name"] = ["must be at most 200 characters"]
    if "handler" in data:
        if not isinstance(data["handler"], str):
            errors["handler"] = ["must be a string"]
        else:
            try:
                handlers.get_handler(data["handler"])
                clean["handler"] = data["handler"]
            except handlers.HandlerError as exc:
                errors["handler"] = [str(exc)]
    if "args" in data:
        if not isinstance(data["args"], list):
            errors["args"] = ["must be a list"]
        else:
            clean["args"] = data["args"]
    if "kwargs" in data:
        if not isinstance(data["kwargs"], dict):
            errors["kwargs"] = ["must be an object"]
        else:
            clean["kwargs"] = data["kwargs"]
    if "max_runs" in data:
        value = data["max_runs"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            errors["max_runs"] = ["must be a positive integer or null"]
        else:
            clean["max_runs"] = value
    if "timeout" in data:
        if data["timeout"] in (None, ""):
            clean["timeout"] = None
        else:
            try:
                clean["timeout"] = parse_duration(data["timeout"], field="timeout")
                if clean["timeout"] <= 0:
                    errors["timeout"] = ["must be more than 0"]
            except ScheduleError as exc:
                errors.update(exc.message_dict)
    if "retries" in data:
        value = data["retries"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            errors["retries"] = ["must be an integer from 0 to 100"]
        else:
            clean["retries"] = value
    if "retry_backoff" in data:
        try:
            clean["retry_backoff"] = parse_duration(data["retry_backoff"], field="retry_backoff")
        except ScheduleError as exc:
            errors.update(exc.message_dict)
    if "concurrency" in data:
        if data["concurrency"] not in Task.Concurrency.values:
            errors["concurrency"] = [f"must be one of {', '.join(Task.Concurrency.values)}"]
        else:
            clean["concurrency"] = data["concurrency"]
    if "schedule" in data or instance is None:
        if data.get("schedule") in (None, "", {}):
            errors["schedule"] = ["is required, e.g. {\"type\": \"interval\", \"interval\": \"30s\"}"]
        else:
            max_runs = clean.get("max_runs", instance.max_runs if instance else None)
            try:
                parsed = parse_schedule(data["schedule"], max_runs=max_runs)
                clean["schedule"] = parsed.normalized
                clean["_parsed"] = parsed
            except ScheduleError as exc:
                for key, messages in exc.message_dict.items():
                    errors["schedule" if key == "schedule" else f"schedule.{key}"] = messages
    handler_name = clean.get("handler", instance.handler if instance else "log")
    kwargs = clean.get("kwargs", instance.kwargs if instance else {})
    if "handler" not in errors and "kwargs" not in errors:
        try:
            schema = handlers.get_handler(handler_name).schema
            if schema:
                jsonschema.validate(kwargs, schema)
        except handlers.HandlerError:
            pass
        except jsonschema.ValidationError as exc:
            path = ".".join(str(part) for part in exc.absolute_path)
            errors["kwargs"] = [f"{path + ': ' if path else ''}{exc.message}"]
    if errors:
        raise ValidationError(errors)
    return clean


# --- PeriodicTask sync --------------------------------------------------------------------

def _sync_periodic_task(task: Task) -> None:
    """Write the task's django-celery-beat PeriodicTask (schedule, args, enabled)."""
    schedule = task.parsed_schedule
    kinds: dict[str, Any] = {"interval": None, "crontab": None, "clocked": None, "solar": None}
    if schedule.type == "once":
        clocked = task.periodic_task.clocked if task.periodic_task and task.periodic_task.clocked else None
        when = task.next_run_at or schedule.at or timezone.now()
        if clocked is None or clocked.clocked_time != when:
            clocked = ClockedSchedule.objects.create(clocked_time=when)
        kinds["clocked"] = clocked
    elif schedule.is_every:
        kinds["interval"], _ = IntervalSchedule.objects.get_or_create(
            every=max(1, math.ceil(schedule.interval)), period=IntervalSchedule.SECONDS)
    else:
        minute, hour, day_of_month, month, day_of_week = schedule.cron.split()
        kinds["crontab"], _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week,
            timezone=schedule.timezone)
    values = {
        "task": RUN_TASK_NAME, "args": f'["{task.id}"]', "kwargs": "{}",
        "enabled": task.status in Task.ACTIVE, "one_off": schedule.type == "once",
        "description": f"Chameleon task {task.id}: {task.name}"[:2000], **kinds,
    }
    if task.periodic_task_id:
        PeriodicTask.objects.filter(pk=task.periodic_task_id).update(**values)
        PeriodicTasks.update_changed()
    else:
        periodic, _ = PeriodicTask.objects.update_or_create(name=f"{PERIODIC_PREFIX}{task.id}"[:200], defaults=values)
        Task.objects.filter(pk=task.pk).update(periodic_task=periodic)
        task.periodic_task = periodic


def _set_periodic_enabled(task_ids: list[str], enabled: bool) -> None:
    PeriodicTask.objects.filter(name__in=[f"{PERIODIC_PREFIX}{tid}" for tid in task_ids]).update(enabled=enabled)
    PeriodicTasks.update_changed()


# --- Reading ----------------------------------------------------------------------------

def get_task(task_id: str) -> Task:
    try:
        return Task.objects.get(pk=task_id)
    except (Task.DoesNotExist, ValueError):
        raise TaskNotFound(f"Task {task_id!r} not found") from None


def preview_next_runs(schedule: dict[str, Any] | str, count: int = 5, *, now: datetime | None = None,
                      max_runs: int | None = None) -> list[datetime]:
    """The next `count` run times of a schedule (in UTC; DST handled in the schedule's zone)."""
    now = now or timezone.now()
    return parse_schedule(schedule, now=now, max_runs=max_runs).preview(max(0, min(count, 100)), now)


def task_preview(task: Task, count: int = 5) -> list[datetime]:
    """The task's own next run times: from next_run_at on, stopping at max_runs."""
    if task.status not in Task.ACTIVE or task.next_run_at is None:
        return []
    schedule = task.parsed_schedule
    limit = count
    if schedule.max_runs:
        limit = min(limit, max(0, schedule.max_runs - task.dispatch_count))
    times: list[datetime] = []
    current = task.next_run_at
    while current is not None and len(times) < limit:
        times.append(current)
        current = schedule.next_after(current, current)
    return times


def scheduler_status() -> dict[str, Any]:
    """Beat replicas and the active one, workers, and task counts by status."""
    from core.models import Node
    from scheduler_app.lease import active_holder

    counts = dict(Task.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    beats = list(Node.objects.alive().filter(kind=Node.Kind.BEAT).values_list("name", flat=True))
    return {
        "running": bool(beats),
        "total_tasks": sum(counts.values()),
        "status_counts": {status: counts.get(status, 0) for status in Task.Status.values},
        "active_beat": active_holder(),
        "beats": beats,
        "workers": Node.objects.alive().filter(kind=Node.Kind.WORKER).count(),
        "runs_active": TaskRun.objects.filter(status__in=TaskRun.ACTIVE).count(),
    }


# --- Writing ----------------------------------------------------------------------------

@audited("task.create")
def create_task(data: dict[str, Any], *, actor: Actor = SYSTEM) -> Task:
    """Define a task; it is due at its schedule's first time after now."""
    clean = validate_task_data(data)
    parsed = clean.pop("_parsed")
    if Task.objects.filter(pk=clean["id"]).exists():
        raise TaskConflict(f"Task {clean['id']!r} already exists")
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    now = timezone.now()
    try:
        with transaction.atomic():
            task = Task.objects.create(**clean, created_by=user, next_run_at=parsed.first_run(now),
                                       status=Task.Status.PENDING)
            _sync_periodic_task(task)
    except IntegrityError:
        raise TaskConflict(f"Task {clean['id']!r} already exists") from None
    publish_task_event("created", task.id, {"schedule": task.schedule, "next_run_at": _iso(task.next_run_at)})
    _publish_scheduled(task)
    return task


@audited("task.update")
def update_task(task_id: str, data: dict[str, Any], *, actor: Actor = SYSTEM) -> Task:
    """Edit a task; a schedule change takes effect from the next tick (next_run_at recomputed)."""
    with transaction.atomic():
        task = _locked(task_id)
        if "id" in data and data["id"] != task.id:
            raise ValidationError({"id": ["cannot be changed"]})
        clean = validate_task_data({key: value for key, value in data.items() if key in EDITABLE_FIELDS},
                                   instance=task)
        parsed = clean.pop("_parsed", None)
        if parsed is None and "max_runs" in clean:
            parsed = parse_schedule(task.schedule, max_runs=clean["max_runs"])
        for key, value in clean.items():
            setattr(task, key, value)
        if parsed is not None and task.status in Task.ACTIVE:
            if parsed.max_runs and task.dispatch_count >= parsed.max_runs:
                task.next_run_at = None
            else:
                task.next_run_at = parsed.first_run(timezone.now())
        task.save()
        _sync_periodic_task(task)
        if task.status in Task.ACTIVE and task.next_run_at is None:
            _settle_status(task.id)
            task.refresh_from_db()
    publish_task_event("updated", task.id, {"fields": sorted(clean)})
    if "schedule" in clean or "max_runs" in clean:
        _publish_scheduled(task)
    return task


@audited("task.pause")
def pause_task(task_id: str, *, actor: Actor = SYSTEM) -> Task:
    """A paused task does not run until resumed (a run already going finishes)."""
    with transaction.atomic():
        task = _locked(task_id)
        if task.status == Task.Status.PAUSED:
            return task
        if task.status not in Task.ACTIVE:
            raise TaskConflict(f"Task {task_id!r} is {task.status} and cannot be paused")
        task.status = Task.Status.PAUSED
        task.save(update_fields=["status", "updated_at"])
        _set_periodic_enabled([task.id], False)
    publish_task_event("paused", task.id)
    return task


@audited("task.resume")
def resume_task(task_id: str, *, actor: Actor = SYSTEM) -> Task:
    """Back to pending; the next run is the schedule's next time from now (a missed once runs now)."""
    with transaction.atomic():
        task = _locked(task_id)
        if task.status in Task.ACTIVE:
            return task
        if task.status != Task.Status.PAUSED:
            raise TaskConflict(f"Task {task_id!r} is {task.status} and cannot be resumed")
        now = timezone.now()
        schedule = task.parsed_schedule
        if schedule.max_runs and task.dispatch_count >= schedule.max_runs:
            task.next_run_at = None
        elif schedule.type == "once":
            task.next_run_at = max(task.next_run_at or now, now)
        else:
            task.next_run_at = schedule.first_run(now)
        task.status = Task.Status.PENDING
        task.save(update_fields=["status", "next_run_at", "updated_at"])
        _sync_periodic_task(task)
        _settle_status(task.id)
        task.refresh_from_db()
    publish_task_event("resumed", task.id, {"next_run_at": _iso(task.next_run_at)})
    _publish_scheduled(task)
    return task


@audited("task.cancel")
def cancel_task(task_id: str, *, actor: Actor = SYSTEM) -> Task:
    """No further runs; a queued or running run is revoked. The task stays readable as canceled."""
    with transaction.atomic():
        task = _locked(task_id)
        if task.status == Task.Status.CANCELED:
            return task
        task.status = Task.Status.CANCELED
        task.next_run_at = None
        task.save(update_fields=["status", "next_run_at", "updated_at"])
        _set_periodic_enabled([task.id], False)
        revoked = cancel_active_runs(task.id, "task canceled")
    publish_task_event("canceled", task.id, {"revoked_runs": revoked})
    return task


@audited("task.delete")
def delete_task(task_id: str, *, actor: Actor = SYSTEM) -> Task:
    with transaction.atomic():
        task = _locked(task_id)
        cancel_active_runs(task.id, "task deleted")
        periodic_id = task.periodic_task_id
        task.delete()
        task.id = task_id  # kept on the returned (deleted) instance, for the audit and callers
        PeriodicTask.objects.filter(pk=periodic_id).delete()
        PeriodicTasks.update_changed()
    publish_task_event("deleted", task_id)
    return task


@audited("task.run")
def run_task_now(task_id: str, *, actor: Actor = SYSTEM) -> TaskRun:
    """Queue a manual run at once (does not count against max_runs or move the schedule)."""
    from scheduler_app.dispatch import new_run, send_runs

    with transaction.atomic():
        task = _locked(task_id)
        if task.status == Task.Status.CANCELED:
            raise TaskConflict(f"Task {task_id!r} is canceled")
        run = new_run(task, timezone.now(), TaskRun.Trigger.MANUAL)
        run.save()
        transaction.on_commit(lambda: send_runs([run]))
    return run


def bulk_action(action: str, task_ids: list[str], *, actor: Actor = SYSTEM) -> dict[str, list[str]]:
    """Apply pause/resume/cancel/run/delete to many tasks; returns ids done and refused."""
    operations = {"pause": pause_task, "resume": resume_task, "cancel": cancel_task, "run": run_task_now,
                  "delete": delete_task}
    operation = operations[action]
    done, refused = [], []
    for task_id in task_ids:
        try:
            operation(task_id, actor=actor)
            done.append(task_id)
        except SchedulerError:
            refused.append(task_id)
    return {"done": done, "refused": refused}


# --- Shared with dispatch and runner ----------------------------------------------------------

def _locked(task_id: str) -> Task:
    try:
        return Task.objects.select_for_update().get(pk=task_id)
    except Task.DoesNotExist:
        raise TaskNotFound(f"Task {task_id!r} not found") from None


def cancel_active_runs(task_id: str, reason: str, *, exclude: list[int] | None = None) -> int:
    """Mark the task's queued/running runs canceled and revoke their Celery messages."""
    from scheduler_app.tasks import revoke_runs

    runs = TaskRun.objects.filter(task_id=task_id, status__in=TaskRun.ACTIVE).exclude(pk__in=exclude or [])
    celery_ids = [cid for cid in runs.values_list("celery_id", flat=True) if cid]
    now = timezone.now()
    count = runs.update(status=TaskRun.Status.CANCELED, finished_at=now, error=reason)
    if celery_ids:
        transaction.on_commit(lambda: revoke_runs(celery_ids))
    return count


def _settle_status(task_id: str) -> None:
    """Derive pending/running/completed/failed from the task's runs and remaining schedule."""
    task = Task.objects.select_for_update().filter(pk=task_id).first()
    if task is None or task.status not in Task.ACTIVE:
        return
    if TaskRun.objects.filter(task_id=task_id, status__in=TaskRun.ACTIVE).exists():
        status = Task.Status.RUNNING
    elif task.next_run_at is None:
        last = TaskRun.objects.filter(task_id=task_id).exclude(trigger=TaskRun.Trigger.MANUAL).first()
        failed = task.parsed_schedule.type == "once" and last is not None and last.status in TaskRun.FAILURES
        status = Task.Status.FAILED if failed else Task.Status.COMPLETED
    else:
        status = Task.Status.PENDING
    if status != task.status:
        Task.objects.filter(pk=task_id).update(status=status)
        if status in Task.FINAL:
            _set_periodic_enabled([task_id], False)


def _publish_scheduled(task: Task) -> None:
    """`scheduler.task.scheduled`: the task has a (new) next run time."""
    if task.next_run_at is not None and task.status in Task.ACTIVE:
        publish_task_event("scheduled", task.id, {"next_run_at": _iso(task.next_run_at)})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
