"""Admin pages for the audit log (read-only) and nodes."""

from django.contrib import admin
from django.utils.html import format_html

from core.models import AuditEntry, Node


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the system writes: visible to staff with view permission, changed by nobody."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "username", "action", "target_type", "target", "outcome_badge", "source")
    list_filter = ("outcome", "source", "action", "target_type")
    search_fields = ("username", "action", "target", "request_id")
    date_hierarchy = "timestamp"
    readonly_fields = [field.name for field in AuditEntry._meta.fields]

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_badge(self, obj: AuditEntry) -> str:
        return format_html('<span class="badge badge-{}">{}</span>', obj.outcome, obj.get_outcome_display())


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "status_badge", "label_list", "hostname", "pid", "version", "started_at",
                    "last_heartbeat")
    list_filter = ("kind",)
    search_fields = ("name", "hostname")
    exclude = ("metrics",)
    readonly_fields = ("name", "kind", "hostname", "pid", "version", "labels", "started_at", "last_heartbeat",
                       "stopped_at", "info")

    @admin.display(description="Labels")
    def label_list(self, obj: Node) -> str:
        return ", ".join(f"{key}={value}" for key, value in sorted((obj.labels or {}).items())) or "-"

    @admin.display(description="Status")
    def status_badge(self, obj: Node) -> str:
        return format_html('<span class="badge badge-{}">{}</span>', obj.status, obj.status)
