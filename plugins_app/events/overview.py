"""Figures for the dashboard's overview cards, read defensively from whichever apps exist."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.db import DatabaseError
from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone

from core.models import Node
from plugins_app.events.envelope import format_timestamp
from plugins_app.events.models import Event

logger = logging.getLogger("chameleon.events")

CHART_MINUTES = 30


def _model(app_label: str, model_name: str) -> Any:
    try:
        return apps.get_model(app_label, model_name)
    except LookupError:
        return None


def _counts(model: Any, field: str, **filters: Any) -> dict[str, int] | None:
    if model is None:
        return None
    try:
        rows = model.objects.filter(**filters).values(field).annotate(n=Count("pk")).order_by()
        return {row[field]: row["n"] for row in rows}
    except (DatabaseError, Exception) as exc:  # noqa: BLE001 - another app's model may not be migrated yet
        logger.debug("Overview: cannot count %s.%s (%s)", model.__name__, field, exc)
        return None


def plugin_figures() -> dict[str, Any] | None:
    # Instances on live nodes only: a restarted process is a new node, its old rows history.
    alive = list(Node.objects.alive().values_list("name", flat=True))
    states = _counts(_model("plugins_app", "PluginInstance"), "state", node__in=alive)
    if states is None:
        return None
    return {"running": states.get("running", 0), "failed": states.get("failed", 0),
            "total": sum(states.values()), "by_state": states}


def task_figures() -> dict[str, Any] | None:
    statuses = _counts(_model("scheduler_app", "Task"), "status")
    if statuses is None:
        return None
    return {"total": sum(statuses.values()), "by_status": statuses}


def event_figures(minutes: int = CHART_MINUTES) -> dict[str, Any]:
    now = timezone.now().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=minutes - 1)
    rows = (
        Event.objects.filter(timestamp__gte=start).annotate(minute=TruncMinute("timestamp"))
        .values("minute").annotate(n=Count("pk")).order_by()
    )
    counts = {row["minute"].replace(tzinfo=now.tzinfo): row["n"] for row in rows}
    series = []
    for index in range(minutes):
        minute = start + timedelta(minutes=index)
        series.append({"minute": format_timestamp(minute.timestamp()), "count": counts.get(minute, 0)})
    return {"per_minute": series, "last_minute": series[-1]["count"], "stored": Event.objects.count()}


def node_figures() -> dict[str, Any]:
    alive = list(Node.objects.alive().values("name", "kind"))
    return {
        "alive": len(alive), "lost": Node.objects.lost().count(),
        "by_kind": {kind: sum(1 for node in alive if node["kind"] == kind) for kind in ("web", "worker", "beat")},
    }


def service_figures() -> dict[str, Any] | None:
    """Registered service instances by health, from the registry (database or etcd)."""
    if not apps.is_installed("plugins_app.discovery"):
        return None
    from plugins_app.discovery.services import service_summary

    try:
        summary = service_summary()
    except Exception as exc:  # noqa: BLE001 - etcd unreachable must not break the dashboard
        logger.debug("Overview: cannot read the service registry (%s)", exc)
        return None
    by_health: dict[str, int] = {}
    for counts in summary.values():
        for health, count in counts.items():
            by_health[health] = by_health.get(health, 0) + count
    return {"services": len(summary), "instances": sum(by_health.values()), "by_health": by_health}


def overview() -> dict[str, Any]:
    return {
        "plugins": plugin_figures(), "tasks": task_figures(), "events": event_figures(), "nodes": node_figures(),
        "services": service_figures(), "generated_at": format_timestamp(timezone.now().timestamp()),
    }
