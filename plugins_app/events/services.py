"""Event bus services: storing, outbox claims, listing, publishing on behalf of users, retention."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Concat
from django.http import HttpRequest
from django.utils import timezone

from core.conf import chameleon_settings
from core.models import AuditEntry
from core.services import record_audit
from plugins_app.events import publish
from plugins_app.events.envelope import Event, InvalidEvent, validate_pattern, validate_topic
from plugins_app.events.models import Event as EventRow
from plugins_app.events.registry import validate_event_data

logger = logging.getLogger("chameleon.events")


def store_events(events: Iterable[Event], *, origin: str = "", dispatched: bool = True) -> int:
    """Write cluster events to the events table (history, database transport, outbox)."""
    rows = [
        EventRow(
            event_id=event.id, topic=event.topic, source=event.source[:200], data=event.data,
            timestamp=event.created, node=event.node, origin=origin, dispatched=dispatched,
        )
        for event in events
    ]
    EventRow.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


#: How long a claim on outbox rows holds; rows whose sender died are claimable again after.
CLAIM_LEASE_SECONDS = 60.0


def claim_events(event_ids: list[str], *, owner: str, lease: float = CLAIM_LEASE_SECONDS) -> set[str]:
    """Claim the outbox rows of `event_ids` for `owner`; return the ids it must not send.

    Those are rows sent already (`dispatched`) or held by another sender's unexpired claim
    (a sweeper on another node). Ids without a row are not returned: nobody else can send
    them. Waits for a sweeper's claim transaction rather than skipping its rows, so a row
    being claimed is never mistaken for one not stored.
    """
    now = timezone.now()
    taken: set[str] = set()
    with transaction.atomic():
        rows = EventRow.objects.select_for_update().filter(event_id__in=event_ids).order_by("pk").values_list(
            "pk", "event_id", "dispatched", "claimed_until", "claimed_by"
        )
        mine = []
        for pk, event_id, dispatched, claimed_until, claimed_by in rows:
            if dispatched or (claimed_until is not None and claimed_until > now and claimed_by != owner):
                taken.add(event_id)
            else:
                mine.append(pk)
        if mine:
            EventRow.objects.filter(pk__in=mine).update(
                claimed_until=now + timedelta(seconds=lease), claimed_by=owner
            )
    return taken


def claim_orphaned_events(
    *, owner: str, older_than: float, limit: int = 500, lease: float = CLAIM_LEASE_SECONDS
) -> list[EventRow]:
    """Claim up to `limit` outbox rows older than `older_than` seconds, oldest first.

    Rows claimed by another sender are left alone until the claim expires. On PostgreSQL
    (and MySQL) rows another sweeper is claiming right now are skipped (`skip_locked`); on
    SQLite the transaction is IMMEDIATE (settings.DATABASES), so claims run one at a time.
    """
    now = timezone.now()
    orphans = EventRow.objects.filter(
        dispatched=False, timestamp__lt=now - timedelta(seconds=older_than)
    ).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
    if not orphans.exists():
        return []  # the usual answer, from a read that takes no lock
    with transaction.atomic():
        rows = list(orphans.select_for_update(skip_locked=True).order_by("timestamp", "id")[:limit])
        if rows:
            EventRow.objects.filter(pk__in=[row.pk for row in rows]).update(
                claimed_until=now + timedelta(seconds=lease), claimed_by=owner
            )
    return rows


def mark_events_sent(event_ids: list[str]) -> int:
    """The transport took these events: out of the outbox, claims cleared."""
    return EventRow.objects.filter(event_id__in=event_ids, dispatched=False).update(
        dispatched=True, claimed_until=None, claimed_by=""
    )


def release_claims(event_ids: list[str], *, owner: str) -> int:
    """Give back `owner`'s claims on rows it could not send, so another sender may try."""
    return EventRow.objects.filter(event_id__in=event_ids, claimed_by=owner, dispatched=False).update(
        claimed_until=None, claimed_by=""
    )


def pattern_regex(pattern: str) -> str:
    """A regular expression matching "." + topic for the topics `pattern` matches.

    With a dot in front of every segment, `#` (zero or more segments) is simply
    `(\\.[^.]+)*`; querysets match it against the topic with a leading dot (`dotted_topic`).
    """
    validate_pattern(pattern)
    parts = []
    for segment in pattern.split("."):
        if segment == "#":
            parts.append(r"(\.[^.]+)*")
        elif segment == "*":
            parts.append(r"\.[^.]+")
        else:
            parts.append(r"\." + re.escape(segment))
    return "^" + "".join(parts) + "$"


def matching_topics(queryset: QuerySet[EventRow], patterns: list[str]) -> QuerySet[EventRow]:
    regex = "|".join(f"({pattern_regex(pattern)})" for pattern in patterns)
    return queryset.annotate(dotted_topic=Concat(Value("."), "topic")).filter(dotted_topic__regex=regex)


def filter_events(
    queryset: QuerySet[EventRow], *, topic: str | None = None, source: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> QuerySet[EventRow]:
    if topic:
        if "*" in topic or "#" in topic:
            queryset = matching_topics(queryset, [topic])
        else:
            queryset = queryset.filter(topic=validate_topic(topic))
    if source:
        queryset = queryset.filter(source=source)
    if since:
        queryset = queryset.filter(timestamp__gte=since)
    if until:
        queryset = queryset.filter(timestamp__lt=until)
    return queryset


def recent_events(limit: int = 100, *, patterns: list[str] | None = None) -> list[dict[str, Any]]:
    """The newest stored events (oldest first) matching any of `patterns` (all by default)."""
    queryset = EventRow.objects.order_by("-id")
    if patterns and "#" not in patterns:
        queryset = matching_topics(queryset, patterns)
    return [row.as_envelope() for row in reversed(list(queryset[:limit]))]


def publish_event_as(
    *, topic: str, data: dict[str, Any], user: AbstractBaseUser | AnonymousUser | None,
    request: HttpRequest | None = None, source_kind: str = AuditEntry.Source.API,
) -> Event:
    """Publish an event for a user (API, seed route, CLI): validated and audited."""
    authenticated = user is not None and user.is_authenticated
    try:
        validate_topic(topic)
        validate_event_data(topic, data)
        event = publish(topic, data, source=f"api:{user.get_username()}" if authenticated else "system")
    except InvalidEvent as exc:
        record_audit(action="events.publish", target_type="event", target=str(topic)[:200],
                     outcome=AuditEntry.Outcome.FAILURE, user=user, request=request, source=source_kind,
                     detail={"error": str(exc)})
        raise
    record_audit(action="events.publish", target_type="event", target=topic, user=user, request=request,
                 source=source_kind, detail={"event_id": event.id})
    return event


def record_invalid_publish(*, request: HttpRequest, topic: str, errors: Any,
                           source_kind: str = AuditEntry.Source.API) -> None:
    record_audit(action="events.publish", target_type="event", target=topic, outcome=AuditEntry.Outcome.FAILURE,
                 request=request, source=source_kind, detail={"errors": errors})


def purge_expired_events(*, days: float | None = None, batch_size: int = 1000) -> int:
    """Delete stored events older than the retention (`EVENT_RETENTION_DAYS`), in batches."""
    days = chameleon_settings.EVENT_RETENTION_DAYS if days is None else days
    if days is None or days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(EventRow.objects.filter(timestamp__lt=cutoff).order_by("id").values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        deleted += EventRow.objects.filter(id__in=ids).delete()[0]
    if deleted:
        logger.info("Removed %d events older than %g days", deleted, days)
    return deleted
