"""The event envelope (SPEC §4): id, topic, source, data, timestamp (UTC ISO 8601) and node."""

from __future__ import annotations

import itertools
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

#: One topic segment: letters, digits, `_` and `-` (no wildcards in a published topic).
SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_-]*"
TOPIC_RE = re.compile(rf"^{SEGMENT}(\.{SEGMENT})*$")
PATTERN_RE = re.compile(rf"^({SEGMENT}|\*|#)(\.({SEGMENT}|\*|#))*$")
MAX_TOPIC_LENGTH = 200


class InvalidEvent(ValueError):
    """An event that cannot be published: bad topic, pattern or data."""


class InvalidTopic(InvalidEvent):
    """A topic or pattern that does not follow the dot-separated format."""


def validate_topic(topic: Any) -> str:
    """Return `topic` when it is a valid dot-separated topic, raise InvalidTopic otherwise."""
    if not isinstance(topic, str) or not topic:
        raise InvalidTopic("A topic is a non-empty string such as 'plugin.started'.")
    if len(topic) > MAX_TOPIC_LENGTH:
        raise InvalidTopic(f"A topic is at most {MAX_TOPIC_LENGTH} characters long.")
    if not TOPIC_RE.match(topic):
        raise InvalidTopic(
            f"Invalid topic {topic!r}: use dot-separated segments of letters, digits, '_' and '-' "
            "(e.g. 'user.login'); wildcards are only for subscriptions."
        )
    return topic


def validate_pattern(pattern: Any) -> str:
    """Return `pattern` when valid: segments, `*` (exactly one segment), `#` (zero or more)."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidTopic("A topic pattern is a non-empty string such as 'plugin.*' or '#'.")
    if len(pattern) > MAX_TOPIC_LENGTH or not PATTERN_RE.match(pattern):
        raise InvalidTopic(
            f"Invalid topic pattern {pattern!r}: dot-separated segments, '*' for exactly one "
            "segment, '#' for zero or more (e.g. 'plugin.*', 'scheduler.#')."
        )
    return pattern


# Ids: a random per-process prefix and a counter -- unique, and far cheaper than uuid4()
# on the publish hot path. A forked child draws a new prefix.
_prefix = ""
_counter = itertools.count()


def _new_prefix() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count()


_new_prefix()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_prefix)


def new_event_id() -> str:
    return f"{_prefix}{next(_counter):016x}"


def format_timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_timestamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Event:
    """One event. Immutable by convention; `timestamp` is formatted on first use.

    Handlers receive the same instance, so they must not modify `data`.
    """

    __slots__ = ("topic", "data", "source", "id", "node", "scope", "_ts", "_timestamp")

    def __init__(
        self,
        topic: str,
        data: dict[str, Any] | None = None,
        source: str = "system",
        id: str | None = None,  # noqa: A002 - the envelope's field name
        timestamp: str | None = None,
        node: str = "",
        scope: str = "cluster",
        ts: float | None = None,
    ) -> None:
        self.topic = topic
        self.data = data if data is not None else {}
        self.source = source
        self.id = id or new_event_id()
        self.node = node
        self.scope = scope
        self._timestamp = timestamp
        if ts is None:
            ts = parse_timestamp(timestamp) if timestamp else time.time()
        self._ts = ts

    @property
    def timestamp(self) -> str:
        if self._timestamp is None:
            self._timestamp = format_timestamp(self._ts)
        return self._timestamp

    @property
    def ts(self) -> float:
        """The timestamp as seconds since the epoch."""
        return self._ts

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self._ts, UTC)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "topic": self.topic, "source": self.source, "data": self.data,
            "timestamp": self.timestamp, "node": self.node,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any], *, scope: str = "cluster") -> Event:
        return cls(
            topic=value["topic"], data=value.get("data") or {}, source=value.get("source", "system"),
            id=value.get("id"), timestamp=value.get("timestamp"), node=value.get("node", ""), scope=scope,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Event({self.topic!r}, source={self.source!r}, id={self.id!r})"
