"""Serializers for tasks, runs, handlers and the scheduler's status.

Writes are validated by `services.validate_task_data` (one set of rules for every door);
these input serializers describe the fields for the OpenAPI schema.
"""

from __future__ import annotations

from rest_framework import serializers

from scheduler_app.models import Task, TaskRun


class TaskSerializer(serializers.ModelSerializer):
    schedule_text = serializers.CharField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Task
        fields = [
            "id", "name", "description", "handler", "args", "kwargs", "schedule", "schedule_text", "max_runs",
            "timeout", "retries", "retry_backoff", "concurrency", "status", "run_count", "failure_count",
            "last_run_at", "next_run_at", "last_error", "created_at", "updated_at", "created_by",
        ]
        read_only_fields = fields


class TaskInputSerializer(serializers.Serializer):
    """A task definition (POST; PATCH takes any subset except `id`)."""

    id = serializers.CharField(help_text="A slug: letters, digits, '-', '_', '.'.")
    name = serializers.CharField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    handler = serializers.CharField(required=False, default="log")
    args = serializers.ListField(required=False)
    kwargs = serializers.DictField(required=False)
    schedule = serializers.JSONField(help_text='e.g. {"type": "cron", "cron": "*/5 * * * *", "timezone": "UTC"}, '
                                     '{"type": "interval", "interval": "30s"}, {"type": "once", "delay": "10s"}')
    max_runs = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    timeout = serializers.CharField(required=False, allow_null=True, help_text="Duration: 30s, PT30S or seconds.")
    retries = serializers.IntegerField(required=False, min_value=0)
    retry_backoff = serializers.CharField(required=False, help_text="Duration before the first retry (doubles).")
    concurrency = serializers.ChoiceField(choices=Task.Concurrency.choices, required=False)


class TaskRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskRun
        fields = [
            "id", "task", "status", "trigger", "attempt", "scheduled_for", "queued_at", "sent_at", "started_at",
            "finished_at", "duration", "worker", "worker_pid", "celery_id", "result", "error", "traceback",
        ]
        read_only_fields = fields


class RunRefSerializer(serializers.Serializer):
    message = serializers.CharField()
    task_id = serializers.CharField()
    run = TaskRunSerializer()


class PreviewSerializer(serializers.Serializer):
    schedule = serializers.JSONField()
    count = serializers.IntegerField(required=False, default=5, min_value=1, max_value=100)


class PreviewResultSerializer(serializers.Serializer):
    next_runs = serializers.ListField(child=serializers.DateTimeField())


class HandlerSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    owner = serializers.CharField()
    schema = serializers.JSONField(help_text="JSON Schema of the handler's kwargs.")


class SchedulerStatusSerializer(serializers.Serializer):
    running = serializers.BooleanField()
    total_tasks = serializers.IntegerField()
    status_counts = serializers.DictField(child=serializers.IntegerField())
    active_beat = serializers.CharField()
    beats = serializers.ListField(child=serializers.CharField())
    workers = serializers.IntegerField()
    runs_active = serializers.IntegerField()
