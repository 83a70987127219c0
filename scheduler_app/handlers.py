"""The registry of task handlers: code registers a callable under a name (SPEC §5).

Plugins register handlers through their context (`ctx.register_task_handler`), modules
call `register_handler` directly. Built-ins: `log`, `events.publish`, `plugins.call`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
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


# --- The run a handler is executing (set by the runner) ---------------------------------

_current_run: ContextVar[dict[str, Any] | None] = ContextVar("scheduler_current_run", default=None)


def current_run() -> dict[str, Any] | None:
    """`{"task_id", "run_id", "attempt", "trigger", "scheduled_for"}` inside a handler, else None."""
    return _current_run.get()


# --- Built-in handlers ------------------------------------------------------------------

logger = logging.getLogger("chameleon.scheduler.handlers")


def log_handler(*args: Any, message: str = "", level: str = "info", **kwargs: Any) -> dict[str, Any]:
    """Log a line (and publish `scheduler.task.log`): the harmless default handler."""
    from plugins_app.events import publish

    run = current_run() or {}
    text = message or f"task {run.get('task_id', '?')} ran"
    logger.log(logging.getLevelName(level.upper()) if isinstance(level, str) else logging.INFO,
               "%s", text, extra={"task_args": list(args), "task_kwargs": kwargs})
    publish("scheduler.task.log", {"task_id": run.get("task_id"), "run_id": run.get("run_id"), "message": text},
            source="scheduler")
    return {"message": text}


def publish_handler(topic: str, data: dict[str, Any] | None = None, scope: str = "cluster") -> dict[str, Any]:
    """Publish an event on the bus."""
    from plugins_app.events import publish

    event = publish(topic, data or {}, source="scheduler", scope=scope)
    return {"event_id": getattr(event, "id", None), "topic": topic}


def _plugin_caller() -> Callable[..., Any]:
    """The plugin runtime's `manager.call`, looked up when a run needs it (it may not be installed)."""
    import importlib

    for module_name, getter_name in (("plugins_app.node", "get_manager"), ("plugins_app.manager", "get_manager")):
        try:
            getter = getattr(importlib.import_module(module_name), getter_name, None)
        except ImportError:
            continue
        if callable(getter):
            manager = getter()
            if callable(getattr(manager, "call", None)):
                return manager.call
    raise HandlerError("plugins.call needs the plugin runtime's manager.call(), which is not available")


def plugins_call_handler(plugin: str, method: str, args: list | None = None, kwargs: dict | None = None,
                         timeout: float | None = None) -> Any:
    """Call a plugin's public method through the plugin manager (breaker, metrics, limits)."""
    call = _plugin_caller()
    return call(plugin, method, *(args or []), timeout=timeout, **(kwargs or {}))


BUILTIN_HANDLERS = (
    ("log", log_handler, "Log a message and publish scheduler.task.log (harmless default).", {
        "type": "object",
        "properties": {"message": {"type": "string"},
                       "level": {"type": "string", "enum": ["debug", "info", "warning", "error"]}},
    }),
    ("events.publish", publish_handler, "Publish an event on the bus.", {
        "type": "object",
        "properties": {"topic": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"},
                       "data": {"type": "object"}, "scope": {"type": "string", "enum": ["local", "cluster"]}},
        "required": ["topic"],
    }),
    ("plugins.call", plugins_call_handler, "Call a plugin's method through the plugin manager.", {
        "type": "object",
        "properties": {"plugin": {"type": "string"}, "method": {"type": "string"},
                       "args": {"type": "array"}, "kwargs": {"type": "object"},
                       "timeout": {"type": "number", "exclusiveMinimum": 0}},
        "required": ["plugin", "method"],
    }),
)


def register_builtin_handlers() -> None:
    for name, func, description, schema in BUILTIN_HANDLERS:
        register_handler(name, func, description=description, schema=schema, owner="builtin", replace=True)
