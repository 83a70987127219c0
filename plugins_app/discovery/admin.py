"""Admin console for services (from the active registry, with health badges), alert rules and alerts."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html

from core.models import AuditEntry
from core.services import record_audit
from plugins_app.discovery import alerts, services
from plugins_app.discovery.models import Alert, AlertRule, Health, ServiceInstance

#: Alert states drawn with an existing badge colour (badges.css has no firing/resolved).
BADGE_STYLE = {"firing": "failure", "resolved": "ok", "unknown": "stopped"}


def badge(state: str) -> str:
    return format_html('<span class="badge badge-{} badge-{}">{}</span>', state, BADGE_STYLE.get(state, state), state)


@admin.register(ServiceInstance)
class ServiceInstanceAdmin(admin.ModelAdmin):
    """Lists the instances of the active registry (etcd or the database), so both back ends show here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # instances register themselves (API), the admin watches and deregisters

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._deregister(request)
        name = request.GET.get("name") or None
        health = request.GET.get("health") if request.GET.get("health") in Health.values else None
        error = ""
        try:
            found = services.list_instances(name=name, health=health)
            summary = services.service_summary()
        except services.RegistryError as exc:
            found, summary, error = [], {}, str(exc)
        rows = [{"instance": item, "badge": badge(item.health)} for item in found]
        context = {
            **self.admin_site.each_context(request),
            "title": "Services",
            "opts": self.model._meta,
            "rows": rows,
            "summary": summary,
            "backend": services.get_registry().kind if not error else "unavailable",
            "error": error,
            "name": name or "",
            "health": health or "",
            "health_choices": Health.values,
            "can_deregister": self.has_delete_permission(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/discovery/serviceinstance/change_list.html", context)

    def _deregister(self, request: HttpRequest) -> HttpResponse:
        instance_id = request.POST.get("instance", "")
        if not self.has_delete_permission(request):
            record_audit(action="service.deregister", target_type="service", target=instance_id,
                         outcome=AuditEntry.Outcome.DENIED, source=AuditEntry.Source.ADMIN, request=request)
            raise PermissionDenied
        try:
            services.deregister_instance(instance_id)
        except services.InstanceNotFound:
            record_audit(action="service.deregister", target_type="service", target=instance_id,
                         outcome=AuditEntry.Outcome.FAILURE, source=AuditEntry.Source.ADMIN, request=request)
            self.message_user(request, f"No live instance {instance_id}.", messages.ERROR)
        else:
            record_audit(action="service.deregister", target_type="service", target=instance_id,
                         source=AuditEntry.Source.ADMIN, request=request)
            self.message_user(request, f"Deregistered {instance_id}.", messages.SUCCESS)
        return HttpResponseRedirect(request.get_full_path())


class AlertInline(admin.TabularInline):
    model = Alert
    extra = 0
    can_delete = False
    fields = ("state_badge", "severity", "message", "value", "fired_at", "resolved_at")
    readonly_fields = fields
    ordering = ("-fired_at",)
    verbose_name_plural = "history"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="state")
    def state_badge(self, obj: Alert) -> str:
        return badge(obj.state)


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["name", "description", "metric", "labels", "condition", "threshold", "duration", "severity",
                  "channels", "enabled"]

    def clean_channels(self) -> list[dict[str, Any]]:
        try:
            return alerts.validate_channels(self.cleaned_data.get("channels") or [])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ("name", "state_badge", "metric", "condition", "threshold", "duration", "severity", "enabled",
                    "last_value", "last_evaluated_at")
    list_filter = ("state", "severity", "enabled")
    search_fields = ("name", "metric")
    readonly_fields = ("state", "pending_since", "last_value", "last_evaluated_at")
    inlines = [AlertInline]

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: AlertRule) -> str:
        return badge(obj.state)

    def save_model(self, request: HttpRequest, obj: AlertRule, form: Any, change: bool) -> None:
        data = {field: form.cleaned_data[field] for field in form.changed_data if field in form.cleaned_data}
        if change:
            alerts.update_rule(obj, data, request=request, source=AuditEntry.Source.ADMIN)
        else:
            obj.save()
            record_audit(action="alert_rule.create", target_type="alert_rule", target=obj.name,
                         source=AuditEntry.Source.ADMIN, request=request)

    def delete_model(self, request: HttpRequest, obj: AlertRule) -> None:
        alerts.delete_rule(obj, request=request, source=AuditEntry.Source.ADMIN)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("rule", "state_badge", "severity", "message", "fired_at", "resolved_at")
    list_filter = ("state", "severity", "rule")
    list_select_related = ("rule",)
    date_hierarchy = "fired_at"
    readonly_fields = ("rule", "state", "severity", "message", "value", "resolved_value", "fired_at",
                       "resolved_at", "notifications")

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: Alert) -> str:
        return badge(obj.state)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
