"""The event bus's public interface: `publish()` and `subscribe()` (SPEC §4).

Everything in Chameleon publishes through these two functions. Until the full bus
(patterns on a trie, bounded queues, Redis/Kafka transports, the outbox) lands, this
module delivers synchronously in-process to matching subscribers and logs each event;
the signatures are the contract the full bus keeps.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

logger = logging.getLogger("chameleon.events")


@dataclass(frozen=True)
class Event:
    """The envelope: id, topic, source, data, timestamp (UTC ISO 8601) and node."""

    topic: str
    data: dict[str, Any] = field(default_factory=dict)
    source: str = "system"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: str = field(default_factory=lambda: timezone.now().isoformat().replace("+00:00", "Z"))
    node: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "topic": self.topic, "source": self.source, "data": self.data,
            "timestamp": self.timestamp, "node": self.node,
        }


@dataclass
class Subscription:
    pattern: str
    handler: Callable[[Event], Any]
    group: str | None = None
    filter: Callable[[Event], bool] | None = None


_subscriptions: list[Subscription] = []


def _matches(pattern: str, topic: str) -> bool:
    regex = "^" + r"\.".join(
        "[^.]+" if part == "*" else ".*" if part == "#" else re.escape(part) for part in pattern.split(".")
    ) + "$"
    return re.match(regex.replace(r"\..*", r"(\..*)?"), topic) is not None


def publish(
    topic: str, data: dict[str, Any] | None = None, *, source: str = "system", scope: str = "cluster"
) -> Event:
    """Publish an event. `scope="local"` keeps it in this process; "cluster" crosses nodes."""
    from core.nodes import current_node_name

    event = Event(topic=topic, data=data or {}, source=source, node=current_node_name())
    logger.info("event %s from %s", topic, source)
    for subscription in list(_subscriptions):
        if _matches(subscription.pattern, topic) and (subscription.filter is None or subscription.filter(event)):
            try:
                subscription.handler(event)
            except Exception:
                logger.exception("Event handler for %s failed on %s", subscription.pattern, topic)
    return event


def subscribe(
    pattern: str,
    handler: Callable[[Event], Any],
    *,
    group: str | None = None,
    filter: Callable[[Event], bool] | None = None,
) -> Subscription:
    """Call `handler(event)` for every event whose topic matches `pattern` (`*`, `#`)."""
    subscription = Subscription(pattern, handler, group, filter)
    _subscriptions.append(subscription)
    return subscription


def unsubscribe(subscription: Subscription) -> None:
    if subscription in _subscriptions:
        _subscriptions.remove(subscription)
