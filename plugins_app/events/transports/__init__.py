"""Cross-process delivery: the transports, and what senders and receivers share.

The sender with its outbox is `transports.outbound.Outbound`; the receivers are
`transports.inbound.Inbound`.

The transport is chosen by `CHAMELEON["EVENT_TRANSPORT"]`: `auto` picks Redis when
`REDIS_URL` is set, else Kafka when `KAFKA_BROKERS` is, else the database (the stored rows
are the messages; every node polls them). A transport implements `send(messages)`,
`receive_node(stop, on_message, ready)` (every event, once per node) and
`receive_group(group, consumer, stop, on_message, ready)` (once per cluster per group),
and optionally `ping()` (raises while the transport is down).

Durability: what the transport refuses is stored as the outbox (`dispatched=False`); the
publishing process re-sends it when the transport is back, and every process's sender
sweeps outbox rows older than `EVENT_OUTBOX_GRACE` that nobody sent (their publisher died).
Senders claim rows before sending, so each is sent once; receivers drop ids seen recently.
"""

from __future__ import annotations

import json
from typing import Any

from plugins_app.events.envelope import Event


def transport_name() -> str:
    from core.conf import chameleon_settings

    mode = chameleon_settings.EVENT_TRANSPORT
    if mode == "auto":
        if chameleon_settings.REDIS_URL:
            return "redis"
        return "kafka" if chameleon_settings.KAFKA_BROKERS else "database"
    return mode


def make_transport() -> Any:
    """The configured transport object, or None for the embedded database transport."""
    from core.conf import chameleon_settings

    name = transport_name()
    if name == "redis":
        from plugins_app.events.transports.redis import RedisTransport

        return RedisTransport(chameleon_settings.REDIS_URL, chameleon_settings.EVENT_STREAM)
    if name == "kafka":
        from plugins_app.events.transports.kafka import KafkaTransport

        return KafkaTransport(chameleon_settings.KAFKA_BROKERS, chameleon_settings.EVENT_STREAM)
    return None


def encode(event: Event, origin: str) -> str:
    return json.dumps({**event.as_dict(), "origin": origin}, separators=(",", ":"), default=str)


def encode_row(row: Any) -> str:
    """A stored event as a message, with its publisher's origin (whose receivers skip it)."""
    return json.dumps({**row.as_envelope(), "origin": row.origin}, separators=(",", ":"), default=str)


def _origin() -> str:
    from plugins_app.events.delivery import process_origin

    return process_origin()
