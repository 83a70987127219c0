"""Stored events (history for the API and dashboard, the database transport and outbox)."""

from __future__ import annotations

from django.db import models


class Event(models.Model):
    """One published cluster event, kept for `EVENT_RETENTION_DAYS`.

    `dispatched` is False while the event waits in the outbox for the transport (Redis or
    Kafka) to come back; on the embedded database transport the row itself is the message.
    `origin` names the publishing process, so its own receivers skip it. A process about to
    (re-)send an outbox row claims it first (`claimed_by` until `claimed_until`, see
    `services.claim_events`), so one sender sends it; a claim whose holder died expires.
    """

    event_id = models.CharField(max_length=64, unique=True)
    topic = models.CharField(max_length=200, db_index=True)
    source = models.CharField(max_length=200, db_index=True)
    data = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField(db_index=True)
    node = models.CharField(max_length=200, blank=True)
    origin = models.CharField(max_length=32, blank=True)
    dispatched = models.BooleanField(default=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            # Only the outbox (a handful of rows), oldest first: what a sweeper reads.
            models.Index(fields=["timestamp", "id"], name="events_outbox_age_idx",
                         condition=models.Q(dispatched=False)),
        ]

    def __str__(self) -> str:
        return f"{self.topic} from {self.source}"

    def as_envelope(self) -> dict:
        from plugins_app.events.envelope import format_timestamp

        return {
            "id": self.event_id, "topic": self.topic, "source": self.source, "data": self.data,
            "timestamp": format_timestamp(self.timestamp.timestamp()), "node": self.node,
        }


class GroupCursor(models.Model):
    """How far a subscription group has read the database transport (once per cluster)."""

    group = models.CharField(max_length=200, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.group} at {self.last_id}"
