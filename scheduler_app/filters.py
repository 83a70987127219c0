"""Filter sets for tasks and runs."""

import django_filters

from scheduler_app.models import Task, TaskRun


class TaskFilter(django_filters.FilterSet):
    schedule_type = django_filters.ChoiceFilter(
        choices=[("cron", "cron"), ("interval", "interval"), ("once", "once")], method="filter_schedule_type")
    due_before = django_filters.IsoDateTimeFilter(field_name="next_run_at", lookup_expr="lte")

    def filter_schedule_type(self, queryset, name: str, value: str):
        return queryset.filter(schedule__type=value)

    class Meta:
        model = Task
        fields = ["status", "handler", "concurrency", "created_by"]


class TaskRunFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="scheduled_for", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="scheduled_for", lookup_expr="lt")

    class Meta:
        model = TaskRun
        fields = ["task", "status", "trigger", "worker", "attempt"]
