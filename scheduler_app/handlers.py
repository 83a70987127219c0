"""The registry of task handlers: code registers a callable under a name (SPEC §5).

Plugins register handlers through their context (`ctx.register_task_handler`), modules
call `register_handler` directly. Built-ins: `log`, `events.publish`, `plugins.call`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class HandlerError(Exception):
    """A handler name is unknown, taken, or malformed."""


@dataclass(frozen=True)
class Handler:
    name: str
    func: Callable[..., Any]
    description: str = ""
    #: JSON Schema of the handler's kwargs, listed by the API.
    schema: dict[str, Any] = field(default_factory=dict)
    #: Who registered it: "builtin", "module:<path>" or "plugin:<name>".
    owner: str = "builtin"


_handlers: dict[str, Handler] = {}


def register_handler(
    name: str,
    func: Callable[..., Any],
    *,
    description: str = "",
    schema: dict[str, Any] | None = None,
    owner: str = "builtin",
    replace: bool = False,
) -> Handler:
    """Register `func` as the handler called `name`; refuses a taken name unless `replace`."""
    if name in _handlers and not replace and _handlers[name].func is not func:
        raise HandlerError(f"Task handler {name!r} is already registered by {_handlers[name].owner}")
    handler = Handler(name, func, description, schema or {}, owner)
    _handlers[name] = handler
    return handler


def unregister_handler(name: str) -> None:
    _handlers.pop(name, None)


def get_handler(name: str) -> Handler:
    try:
        return _handlers[name]
    except KeyError:
        raise HandlerError(f"No task handler is registered as {name!r}") from None


def all_handlers() -> list[Handler]:
    return sorted(_handlers.values(), key=lambda handler: handler.name)
