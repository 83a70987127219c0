"""Scheduler models: Task (a stored definition), TaskRun (one execution) and the beat lease."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from scheduler_app.schedules import ScheduleError, describe, parse_schedule

TASK_ID_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
    "Use letters, digits, '-', '_' and '.', starting with a letter or digit (at most 100).",
)


class Task(models.Model):
    """A scheduled job: which handler to call with what, on which schedule, under what policy.

    `next_run_at` is the single truth beat dispatches from; only services change it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    class Concurrency(models.TextChoices):
        ALLOW = "allow", "Allow overlapping runs"
        FORBID = "forbid", "Skip while a run is going"
        REPLACE = "replace", "Cancel the running one"

    #: States in which beat dispatches the task.
    ACTIVE = (Status.PENDING, Status.RUNNING)
    #: States a task never leaves except by being resumed (completed/failed) or deleted.
    FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELED)

    id = models.CharField(primary_key=True, max_length=100, validators=[TASK_ID_VALIDATOR])
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    handler = models.CharField(max_length=200, default="log")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    schedule = models.JSONField()
    max_runs = models.PositiveIntegerField(null=True, blank=True)
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds; the run is stopped after it.")
    retries = models.PositiveSmallIntegerField(default=0)
    retry_backoff = models.FloatField(default=1.0, help_text="Seconds before the first retry; doubles each time.")
    concurrency = models.CharField(max_length=16, choices=Concurrency.choices, default=Concurrency.ALLOW)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    run_count = models.PositiveIntegerField(default=0)
    failure_count = models.PositiveIntegerField(default=0)
    #: Runs handed out so far (schedule and manual); compared to max_runs when claiming.
    dispatch_count = models.PositiveIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "next_run_at"], name="sched_task_due")]

    def __str__(self) -> str:
        return self.name or self.id

    @property
    def effective_max_runs(self) -> int | None:
        return self.parsed_schedule.max_runs if self.parsed_schedule.max_runs else self.max_runs

    @property
    def parsed_schedule(self):
        cached = getattr(self, "_parsed_schedule", None)
        if cached is None or cached[0] != self.schedule:
            cached = (self.schedule, parse_schedule(self.schedule, max_runs=self.max_runs))
            self._parsed_schedule = cached
        return cached[1]

    @property
    def schedule_text(self) -> str:
        try:
            return describe(self.parsed_schedule)
        except ScheduleError:
            return "invalid schedule"


class TaskRun(models.Model):
    """One execution attempt of a task, from queued to its outcome."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        TIMED_OUT = "timed_out", "Timed out"
        CANCELED = "canceled", "Canceled"
        LOST = "lost", "Lost"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual"
        RETRY = "retry", "Retry"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FAILURES = (Status.FAILED, Status.TIMED_OUT, Status.LOST)

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    attempt = models.PositiveSmallIntegerField(default=1)
    scheduled_for = models.DateTimeField(help_text="When the run was due.")
    queued_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When its Celery message was sent.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds.")
    worker = models.CharField(max_length=200, blank=True, help_text="The worker node that ran it.")
    worker_host = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    celery_id = models.CharField(max_length=64, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "sent_at"], name="sched_run_status"),
            models.Index(fields=["task", "-id"], name="sched_run_task"),
        ]
        constraints = [
            # The database's own guard against a slot dispatched twice (two beats, a restart).
            models.UniqueConstraint(
                fields=["task", "scheduled_for"], condition=Q(trigger="schedule", attempt=1),
                name="sched_run_once_per_slot",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} #{self.pk} ({self.status})"


class SchedulerLease(models.Model):
    """The database lease that makes one beat replica active (used without Redis)."""

    name = models.CharField(primary_key=True, max_length=100)
    holder = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or '-'}"
