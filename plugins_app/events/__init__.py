"""The event bus's public interface: `publish()`, `subscribe()`, `unsubscribe()`, `Event`.

Everything in Chameleon publishes through these functions (SPEC §4). `publish()` builds
the envelope, waits for the surrounding transaction to commit when there is one, queues
the event for this process's subscribers (never waiting on them) and, unless
`scope="local"`, hands it to the cross-node transport (plugins_app.events.transport).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugins_app.events.bus import EventBus, Subscription
from plugins_app.events.envelope import (
    Event,
    InvalidEvent,
    InvalidTopic,
    validate_pattern,
    validate_topic,
)

__all__ = [
    "Event", "EventBus", "InvalidEvent", "InvalidTopic", "Subscription", "flush", "get_bus", "publish",
    "validate_pattern", "validate_topic",
    "subscribe", "unsubscribe",
]

SCOPES = ("local", "cluster")

_bus: EventBus | None = None
_valid_topics: set[str] = set()


def get_bus() -> EventBus:
    """This process's bus, configured from `CHAMELEON["EVENT_*"]` on first use."""
    global _bus
    if _bus is None:
        from core.conf import chameleon_settings

        _bus = EventBus(
            workers=chameleon_settings.EVENT_WORKERS,
            queue_size=chameleon_settings.EVENT_QUEUE_SIZE,
            handler_timeout=chameleon_settings.EVENT_HANDLER_TIMEOUT,
        )
    return _bus


def publish(
    topic: str,
    data: dict[str, Any] | None = None,
    *,
    source: str = "system",
    scope: str = "cluster",
    after_commit: bool | None = None,
) -> Event:
    """Publish an event and return its envelope.

    `scope="local"` keeps it in this process; `"cluster"` (the default) stores it and sends it
    to every node. Inside `transaction.atomic()` the event goes out only once the
    transaction commits (and not at all on rollback), unless `after_commit=False`.
    """
    return delivery.publish_event(topic, data, source=source, scope=scope, after_commit=after_commit)


def subscribe(
    pattern: str,
    handler: Callable[[Event], Any],
    *,
    group: str | None = None,
    filter: Callable[[Event], bool] | None = None,  # noqa: A002 - part of the contract
    timeout: float | None = None,
    max_queue: int | None = None,
    batch: bool = False,
    name: str | None = None,
) -> Subscription:
    """Call `handler(event)` for every event whose topic matches `pattern`.

    `*` matches exactly one segment, `#` zero or more. `filter(event) -> bool` narrows it
    further. A coroutine function is awaited on the event loop running at subscribe time.
    With a `group`, each cluster event reaches one subscription of that group in the whole
    cluster; without, every node's subscription gets it. `timeout` (seconds) and
    `max_queue` default to `EVENT_HANDLER_TIMEOUT` / `EVENT_QUEUE_SIZE`; `batch=True` passes
    lists of events.
    """
    subscription = get_bus().subscribe(
        pattern, handler, group=group, filter=filter, timeout=timeout, max_queue=max_queue, batch=batch,
        name=name,
    )
    delivery.subscribed(subscription)
    return subscription


def unsubscribe(subscription: Subscription) -> None:
    get_bus().unsubscribe(subscription)


def flush(timeout: float = 5.0) -> bool:
    """Wait until this process's queued events are handled and sent (tests, shutdown)."""
    return delivery.flush(timeout)


def check_topic(topic: str) -> str:
    """Validate a topic once; later publishes of the same topic skip the regex."""
    if topic not in _valid_topics:
        validate_topic(topic)
        if len(_valid_topics) < 100_000:
            _valid_topics.add(topic)
    return topic


from plugins_app.events import delivery  # noqa: E402 - it imports the names defined above
