"""Admin for tasks (schedule editing with validation, next-run preview, single and bulk
actions, run history inline, filters) and runs (read-only). Writes go through services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from core.models import AuditEntry
from core.services import record_audit
from scheduler_app import handlers, services
from scheduler_app.models import Task, TaskRun
from scheduler_app.schedules import ScheduleError

OPERATIONS = {
    "pause": services.pause_task, "resume": services.resume_task, "cancel": services.cancel_task,
    "run": services.run_task_now,
}


def actor(request: HttpRequest) -> services.Actor:
    return services.Actor(user=request.user, source=AuditEntry.Source.ADMIN, request=request)


class TaskForm(forms.ModelForm):
    """Checks the definition with the same rules as the API (services.validate_task_data)."""

    handler = forms.ChoiceField(choices=())
    schedule = forms.JSONField(
        help_text='{"type": "cron", "cron": "*/5 * * * *", "timezone": "Europe/Paris"} | '
                  '{"type": "interval", "interval": "30s"} | {"type": "once", "delay": "10s"} or {"at": "ISO 8601"}',
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
    )

    class Meta:
        model = Task
        fields = ["id", "name", "description", "handler", "args", "kwargs", "schedule", "max_runs", "timeout",
                  "retries", "retry_backoff", "concurrency"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        names = [handler.name for handler in handlers.all_handlers()]
        if self.instance.pk and self.instance.handler not in names:
            names.append(self.instance.handler)
        self.fields["handler"].choices = [(name, name) for name in names]
        if self.instance.pk and "id" in self.fields:
            self.fields["id"].disabled = True

    def clean(self) -> dict:
        cleaned = super().clean()
        data = {key: value for key, value in cleaned.items() if key in self.Meta.fields}
        for key in ("args", "kwargs"):
            if data.get(key) is None:
                data[key] = [] if key == "args" else {}
        try:
            services.validate_task_data(data, instance=self.instance if self.instance.pk else None)
        except ValidationError as exc:
            for field, field_messages in exc.message_dict.items():
                target = "schedule" if field.startswith("schedule") else field
                target = target if target in self.fields else None
                for message in field_messages:
                    self.add_error(target, f"{field}: {message}" if target == "schedule" else message)
        return cleaned


class TaskRunInline(admin.TabularInline):
    model = TaskRun
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ["-id"]
    fields = ("id", "status_badge", "trigger", "attempt", "scheduled_for", "started_at", "duration", "worker",
              "error")
    readonly_fields = fields
    verbose_name_plural = "run history (latest 20)"

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        if obj is not None:
            latest = list(TaskRun.objects.filter(task=obj).order_by("-id").values_list("id", flat=True)[:20])
            formset.get_queryset = lambda self: TaskRun.objects.filter(pk__in=latest).order_by("-id")
        return formset

    @admin.display(description="Status")
    def status_badge(self, run: TaskRun) -> str:
        return format_html('<span class="badge badge-{}">{}</span>', run.status, run.get_status_display())


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskForm
    list_display = ("id", "name", "handler", "schedule_text", "status_badge", "run_count", "failure_count",
                    "last_run_at", "next_run_at")
    list_filter = ("status", "handler", "concurrency", ("next_run_at", admin.DateFieldListFilter))
    search_fields = ("id", "name", "description", "handler")
    ordering = ("id",)
    actions = ["pause_selected", "resume_selected", "cancel_selected", "run_selected"]
    inlines = [TaskRunInline]
    readonly_fields = ("status_badge", "schedule_text", "next_runs_preview", "run_count", "failure_count",
                       "last_run_at", "next_run_at", "last_error", "created_by", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("id", "name", "description", "handler", "args", "kwargs")}),
        ("Schedule", {"fields": ("schedule", "schedule_text", "next_runs_preview", "max_runs")}),
        ("Policy", {"fields": ("timeout", "retries", "retry_backoff", "concurrency")}),
        ("State", {"fields": ("status_badge", "run_count", "failure_count", "last_run_at",
                              "next_run_at", "last_error", "created_by", "created_at", "updated_at")}),
    )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, task: Task) -> str:
        return format_html('<span class="badge badge-{}">{}</span>', task.status, task.get_status_display())

    @admin.display(description="Schedule")
    def schedule_text(self, task: Task) -> str:
        return task.schedule_text if task.schedule else "-"

    @admin.display(description="Next runs (preview)")
    def next_runs_preview(self, task: Task) -> str:
        if not task.pk:
            return "Shown after saving."
        try:
            times = services.task_preview(task, 5)
        except ScheduleError as exc:
            return f"invalid schedule: {exc}"
        if not times:
            return f"none ({task.get_status_display().lower()})"
        zone = task.parsed_schedule.zone
        return format_html("<ol>{}</ol>", format_html_join(
            "", "<li>{} <small>({})</small></li>",
            ((t.isoformat(), timezone.localtime(t, zone).strftime("%Y-%m-%d %H:%M:%S %Z")) for t in times)))

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else ("schedule_text", "next_runs_preview")

    def get_fieldsets(self, request, obj=None):
        if obj:
            return self.fieldsets
        return self.fieldsets[:3]

    def save_model(self, request, obj: Task, form: TaskForm, change: bool) -> None:
        data = {key: form.cleaned_data.get(key) for key in TaskForm.Meta.fields if key in form.cleaned_data}
        data["args"] = data.get("args") or []
        data["kwargs"] = data.get("kwargs") or {}
        if change:
            data.pop("id", None)
            saved = services.update_task(obj.pk, {k: v for k, v in data.items() if k in form.changed_data},
                                         actor=actor(request))
        else:
            saved = services.create_task(data, actor=actor(request))
        obj.__dict__.update({key: value for key, value in saved.__dict__.items() if not key.startswith("_")})
        obj._state.adding = False

    def delete_model(self, request, obj: Task) -> None:
        services.delete_task(obj.pk, actor=actor(request))

    def delete_queryset(self, request, queryset) -> None:
        for task_id in list(queryset.values_list("pk", flat=True)):
            services.delete_task(task_id, actor=actor(request))

    def get_urls(self):
        return [
            path("<path:object_id>/operate/<str:operation>/", self.admin_site.admin_view(self.operate_view),
                 name="scheduler_app_task_operate"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "task_operations": list(OPERATIONS)}
        return super().change_view(request, object_id, form_url, extra_context)

    def operate_view(self, request: HttpRequest, object_id: str, operation: str):
        """One control from the change page's buttons (POST, CSRF-protected)."""
        task = get_object_or_404(Task, pk=object_id)
        if operation not in OPERATIONS or request.method != "POST":
            raise PermissionDenied
        if not self.has_change_permission(request, task):
            record_audit(action=f"task.{operation}", target_type="task", target=task.pk,
                         outcome=AuditEntry.Outcome.DENIED, user=request.user, source=AuditEntry.Source.ADMIN,
                         request=request)
            raise PermissionDenied
        try:
            OPERATIONS[operation](task.pk, actor=actor(request))
            self.message_user(request, f"{operation.title()}: done for {task.pk}.", messages.SUCCESS)
        except services.SchedulerError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(reverse("admin:scheduler_app_task_change", args=[task.pk]))

    def _bulk(self, request, queryset, operation: str) -> None:
        outcome = services.bulk_action(operation, list(queryset.values_list("pk", flat=True)), actor=actor(request))
        if outcome["done"]:
            self.message_user(request, f"{operation.title()}: {len(outcome['done'])} task(s).", messages.SUCCESS)
        if outcome["refused"]:
            self.message_user(request, f"{operation.title()} refused for: {', '.join(outcome['refused'])}.",
                              messages.WARNING)

    @admin.action(description="Pause selected tasks", permissions=["change"])
    def pause_selected(self, request, queryset) -> None:
        self._bulk(request, queryset, "pause")

    @admin.action(description="Resume selected tasks", permissions=["change"])
    def resume_selected(self, request, queryset) -> None:
        self._bulk(request, queryset, "resume")

    @admin.action(description="Cancel selected tasks", permissions=["change"])
    def cancel_selected(self, request, queryset) -> None:
        self._bulk(request, queryset, "cancel")

    @admin.action(description="Run selected tasks now", permissions=["change"])
    def run_selected(self, request, queryset) -> None:
        self._bulk(request, queryset, "run")


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "status_badge", "trigger", "attempt", "scheduled_for", "started_at", "duration",
                    "worker")
    list_filter = ("status", "trigger", ("scheduled_for", admin.DateFieldListFilter), "worker")
    search_fields = ("task__id", "error", "worker")
    list_select_related = ("task",)
    readonly_fields = [field.name for field in TaskRun._meta.fields]
    date_hierarchy = "scheduled_for"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, run: TaskRun) -> str:
        return format_html('<span class="badge badge-{}">{}</span>', run.status, run.get_status_display())

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# django-celery-beat's own pages would let staff edit a task's PeriodicTask behind the
# scheduler's back; tasks are edited above, and the services keep beat's rows in sync.
for _model in (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
