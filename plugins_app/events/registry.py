"""The one registry of declared event types (SPEC §4 built-in topics plus plugins' own).

Declaring a type documents it (description, optional JSON Schema for `data`) and lets the
API validate what is published under it. Topics nobody declared may still be published
as long as their format is valid; they are listed as custom.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from plugins_app.events.envelope import InvalidEvent, validate_pattern
from plugins_app.events.trie import TopicTrie


@dataclass(frozen=True)
class EventType:
    """A declared topic (or family of topics when it holds `*` / `#`, e.g. `test.*`)."""

    topic: str
    description: str = ""
    schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    owner: str = "chameleon"


BUILTIN_EVENT_TYPES: tuple[EventType, ...] = (
    *(EventType(f"plugin.{name}", f"A plugin was {name.replace('_', ' ')}.") for name in (
        "registered", "initialized", "started", "stopped", "failed", "restarted", "reloaded",
    )),
    EventType("plugin.health_changed", "A plugin's health check changed state."),
    *(EventType(f"scheduler.task.{name}", f"A scheduled task was {name}.") for name in (
        "created", "updated", "scheduled", "started", "completed", "failed", "paused", "resumed",
        "canceled", "deleted",
    )),
    EventType("config.updated", "A configuration document got a new version."),
    EventType("config.rolled_back", "A configuration document was rolled back."),
    EventType("service.registered", "A service instance registered."),
    EventType("service.deregistered", "A service instance deregistered or expired."),
    EventType("service.health_changed", "A service instance's health changed."),
    EventType("node.joined", "A node (web/worker/beat process) joined the cluster."),
    EventType("node.lost", "A node stopped heartbeating."),
    EventType("alert.fired", "An alert rule started firing."),
    EventType("alert.resolved", "A firing alert resolved."),
    EventType("test.*", "Test events (e.g. test.demo from POST /plugins/events/test)."),
)

_lock = threading.Lock()
_types: dict[str, EventType] = {}
_trie = TopicTrie()


def register_event_type(
    topic: str, description: str = "", *, schema: dict[str, Any] | None = None, owner: str = "chameleon",
    replace: bool = False,
) -> EventType:
    """Declare an event type; `schema` (JSON Schema) validates `data` published through the API."""
    validate_pattern(topic)
    if schema is not None:
        jsonschema.Draft202012Validator.check_schema(schema)
    event_type = EventType(topic, description, schema, owner)
    with _lock:
        if topic in _types and not replace:
            if _types[topic] == event_type:
                return _types[topic]
            raise ValueError(f"Event type {topic!r} is already declared by {_types[topic].owner}.")
        if topic in _types:
            _trie.remove(topic, _types[topic])
        _types[topic] = event_type
        _trie.add(topic, event_type)
    return event_type


def unregister_event_type(topic: str) -> None:
    with _lock:
        event_type = _types.pop(topic, None)
        if event_type is not None:
            _trie.remove(topic, event_type)


def register_builtin_event_types() -> None:
    for event_type in BUILTIN_EVENT_TYPES:
        register_event_type(event_type.topic, event_type.description, schema=event_type.schema, replace=True)


def get_event_type(topic: str) -> EventType | None:
    """The declared type a concrete topic belongs to (exact declarations win), or None."""
    if topic in _types:
        return _types[topic]
    matches = _trie.match(topic)
    return matches[0] if matches else None


def all_event_types() -> list[EventType]:
    return sorted(_types.values(), key=lambda event_type: event_type.topic)


def validate_event_data(topic: str, data: Any) -> dict[str, Any]:
    """Check `data` is a JSON object and fits the declared type's schema, if it has one."""
    if not isinstance(data, dict):
        raise InvalidEvent("Event data must be a JSON object.")
    event_type = get_event_type(topic)
    if event_type is not None and event_type.schema is not None:
        try:
            jsonschema.validate(data, event_type.schema)
        except jsonschema.ValidationError as exc:
            raise InvalidEvent(f"Event data does not fit {event_type.topic}'s schema: {exc.message}") from None
    return data
