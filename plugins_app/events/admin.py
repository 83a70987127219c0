"""Admin pages for stored events (read-only; publish through the API, CLI or dashboard)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin
from plugins_app.events.models import Event


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "topic", "source", "node", "dispatched_badge")
    list_filter = ("dispatched", "source")
    search_fields = ("event_id", "topic", "source", "node")
    date_hierarchy = "timestamp"
    readonly_fields = ("event_id", "topic", "source", "data", "timestamp", "node", "origin", "dispatched")
    show_full_result_count = False  # counting a large events table on every page is slow

    @admin.display(description="Sent", ordering="dispatched")
    def dispatched_badge(self, obj: Event) -> str:
        state = "ok" if obj.dispatched else "pending"
        return format_html('<span class="badge badge-{}">{}</span>', state, "sent" if obj.dispatched else "outbox")
