"""The embedded transport: stored event rows are the messages, every receiver polls them.

No server needed, so events cross between the web and worker processes of `make run`.
A node receiver reads rows newer than the last it saw (rechecking id gaps a little while,
as a transaction that started earlier may commit a lower id later); a group receiver
claims rows through its `GroupCursor` in a transaction, so each row goes to one node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, transaction
from django.db.models import Max

#: How long a missing id is waited for before it is taken as a rolled-back insert.
GAP_WAIT_SECONDS = 10.0
BATCH = 500


def _interval() -> float:
    from core.conf import chameleon_settings

    return chameleon_settings.EVENT_POLL_INTERVAL


def _message(row: Any) -> dict[str, Any]:
    return {**row.as_envelope(), "origin": row.origin}


def _latest_id() -> int:
    from plugins_app.events.models import Event

    return Event.objects.aggregate(last=Max("id"))["last"] or 0


def receive_node(stop: threading.Event, on_message: Callable[[Any], None], ready: threading.Event) -> None:
    from plugins_app.events.models import Event

    last = _latest_id()
    gaps: dict[int, float] = {}
    ready.set()
    try:
        while not stop.wait(_interval()):
            try:
                rows = list(Event.objects.filter(id__gt=last).order_by("id")[:BATCH])
                if gaps:
                    late = list(Event.objects.filter(id__in=list(gaps)).order_by("id"))
                    for row in late:
                        gaps.pop(row.id, None)
                    rows = sorted(late + rows, key=lambda row: row.id)
                now = time.monotonic()
                seen = last
                for row in rows:
                    if row.id > seen:
                        gaps.update((missing, now + GAP_WAIT_SECONDS) for missing in range(seen + 1, row.id))
                        seen = row.id
                    on_message(_message(row))
                last = seen
                for missing in [key for key, deadline in gaps.items() if deadline < now]:
                    del gaps[missing]
            finally:
                close_old_connections()
    finally:
        close_old_connections()


def claim(group: str, limit: int = BATCH) -> list[Any]:
    """Take the next rows for `group`: each row is claimed by exactly one receiver."""
    from plugins_app.events.models import Event, GroupCursor

    with transaction.atomic():
        cursor = GroupCursor.objects.select_for_update().filter(group=group).first()
        if cursor is None:
            cursor = GroupCursor.objects.create(group=group, last_id=_latest_id())
            return []
        rows = list(Event.objects.filter(id__gt=cursor.last_id).order_by("id")[:limit])
        if rows:
            cursor.last_id = rows[-1].id
            cursor.save(update_fields=["last_id", "updated_at"])
    return rows


def receive_group(
    group: str, consumer: str, stop: threading.Event, on_message: Callable[[Any], None], ready: threading.Event
) -> None:
    try:
        claim(group, limit=0)
        ready.set()
        while not stop.wait(_interval()):
            try:
                for row in claim(group):
                    on_message(_message(row))
            finally:
                close_old_connections()
    finally:
        close_old_connections()
