"""The scheduler's event topics (SPEC §4) and publishing them after the database commits."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction

logger = logging.getLogger("chameleon.scheduler")


@dataclass(frozen=True)
class TaskEventType:
    topic: str
    description: str


TASK_EVENTS = {
    name: TaskEventType(f"scheduler.task.{name}", description)
    for name, description in (
        ("created", "A task was defined."),
        ("updated", "A task's definition changed."),
        ("scheduled", "A task got a (new) next run time."),
        ("started", "A run started on a worker."),
        ("completed", "A run succeeded."),
        ("failed", "A run failed, timed out or was lost."),
        ("paused", "A task was paused."),
        ("resumed", "A task was resumed."),
        ("canceled", "A task was canceled."),
        ("deleted", "A task was deleted."),
    )
}


def publish_task_event(name: str, task_id: str, data: dict[str, Any] | None = None) -> None:
    """Publish `scheduler.task.<name>` once the current transaction commits (now if none)."""
    topic = TASK_EVENTS[name].topic
    payload = {"task_id": task_id, **(data or {})}

    def send() -> None:
        from plugins_app.events import publish

        try:
            publish(topic, payload, source="scheduler")
        except Exception:  # the bus being down must not fail a run or a control
            logger.exception("Could not publish %s for task %s", topic, task_id)

    transaction.on_commit(send)
