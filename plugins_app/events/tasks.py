"""Celery tasks of the event bus: publish from a worker, and retention cleanup."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="events.publish")
def publish_event(topic: str, data: dict[str, Any] | None = None, source: str = "system") -> str:
    """Publish a cluster event from a worker; returns its id."""
    from plugins_app.events import flush, publish

    event = publish(topic, data or {}, source=source)
    flush(5.0)  # a prefork child may be recycled; send before returning
    return event.id


@shared_task(name="events.purge_expired")
def purge_expired_events() -> int:
    from plugins_app.events.services import purge_expired_events as purge

    return purge()
