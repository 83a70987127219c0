"""What a plugin may reach: `PluginContext` (logger, events, services, task handlers, config, data dir)."""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.logging import plugin_var


class PluginPermissionDenied(PermissionError):
    """A plugin used a context capability its `permissions` do not declare."""

    def __init__(self, plugin: str, permission: str, what: str) -> None:
        self.plugin = plugin
        self.permission = permission
        super().__init__(f"Plugin {plugin!r} may not {what}: it does not declare the permission {permission!r}")


class ServiceLocator:
    """Named services registered by plugins, shared within the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[str, tuple[str, Any]] = {}

    def register(self, owner: str, name: str, service: Any) -> None:
        with self._lock:
            if name in self._services and self._services[name][0] != owner:
                raise ValueError(f"Service {name!r} is already registered by plugin {self._services[name][0]!r}")
            self._services[name] = (owner, service)

    def get(self, name: str) -> Any:
        try:
            return self._services[name][1]
        except KeyError:
            raise LookupError(f"No service is registered as {name!r}") from None

    def release(self, owner: str, name: str, service: Any) -> None:
        """Remove `name` only if it is still this exact registration (a reload may have replaced it)."""
        with self._lock:
            current = self._services.get(name)
            if current is not None and current[0] == owner and current[1] is service:
                del self._services[name]

    def names(self) -> dict[str, str]:
        return {name: owner for name, (owner, _) in self._services.items()}


class _PluginLogAdapter(logging.LoggerAdapter):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        plugin_var.set(self.extra["plugin"])
        return msg, kwargs


class PluginContext:
    """The one door from a plugin to the host; every capability is checked against permissions.

    `logger` is always available. `publish` needs `events:publish`; `subscribe(pattern)` needs
    `events:subscribe` or `events:subscribe:<pattern covering it>`; `register_service` needs
    `services:register`, `get_service` `services:get`; `register_task_handler` needs
    `tasks:register`; `config` needs `config:read`; `data_dir` needs `data:write`. What a
    plugin registers through its context is released when it stops.
    """

    def __init__(self, plugin_name: str, permissions: tuple[str, ...], *, config: dict[str, Any],
                 data_root: Path, services: ServiceLocator, node: str = "",
                 event_timeout: float | None = None) -> None:
        self.plugin_name = plugin_name
        self.permissions = frozenset(permissions)
        self._config = config
        self._data_root = data_root
        self._services = services
        self.node = node
        self.event_timeout = event_timeout
        self.logger = _PluginLogAdapter(logging.getLogger(f"chameleon.plugins.{plugin_name}"), {"plugin": plugin_name})
        self._subscriptions: list[Any] = []
        self._handlers: list[tuple[str, Callable[..., Any]]] = []
        self._registered: list[tuple[str, Any]] = []

    # -- permission checks ------------------------------------------------------------
    def _require(self, permission: str, what: str) -> None:
        if permission not in self.permissions:
            raise PluginPermissionDenied(self.plugin_name, permission, what)

    def _may_subscribe(self, pattern: str) -> bool:
        if "events:subscribe" in self.permissions:
            return True
        for granted in self.permissions:
            if granted.startswith("events:subscribe:"):
                allowed = granted.split(":", 2)[2]
                if allowed == pattern or fnmatch.fnmatchcase(pattern, allowed.replace("#", "*")):
                    return True
        return False

    # -- capabilities -----------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        self._require("config:read", "read its config")
        return self._config

    def _set_config(self, config: dict[str, Any]) -> None:
        self._config = config

    @property
    def data_dir(self) -> Path:
        self._require("data:write", "use a data directory")
        path = self._data_root / self.plugin_name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def publish(self, topic: str, data: dict[str, Any] | None = None, *, scope: str = "cluster") -> Any:
        self._require("events:publish", f"publish {topic!r}")
        from plugins_app import events

        return events.publish(topic, data or {}, source=f"plugin:{self.plugin_name}", scope=scope)

    def subscribe(self, pattern: str, handler: Callable[..., Any], *, group: str | None = None,
                  filter: Callable[..., bool] | None = None) -> Any:
        if not self._may_subscribe(pattern):
            raise PluginPermissionDenied(self.plugin_name, f"events:subscribe:{pattern}", f"subscribe to {pattern!r}")
        from plugins_app import events

        extra = {"timeout": self.event_timeout} if self.event_timeout is not None else {}
        subscription = events.subscribe(pattern, handler, group=group, filter=filter,
                                        name=f"plugin:{self.plugin_name}:{pattern}", **extra)
        self._subscriptions.append(subscription)
        return subscription

    def register_service(self, name: str, service: Any) -> None:
        self._require("services:register", f"register the service {name!r}")
        self._services.register(self.plugin_name, name, service)
        self._registered.append((name, service))

    def get_service(self, name: str) -> Any:
        self._require("services:get", f"look up the service {name!r}")
        return self._services.get(name)

    def register_task_handler(self, name: str, func: Callable[..., Any], *, description: str = "",
                              schema: dict[str, Any] | None = None) -> None:
        self._require("tasks:register", f"register the task handler {name!r}")
        from scheduler_app.handlers import register_handler

        register_handler(name, func, description=description, schema=schema,
                         owner=f"plugin:{self.plugin_name}", replace=True)
        self._handlers.append((name, func))

    def release(self) -> None:
        """Undo what the plugin registered (called by the host after `stop`)."""
        from plugins_app import events
        from scheduler_app.handlers import _handlers, unregister_handler

        for subscription in self._subscriptions:
            unsubscribe = getattr(events, "unsubscribe", None)
            if unsubscribe is not None:
                unsubscribe(subscription)
            elif hasattr(subscription, "cancel"):
                subscription.cancel()
        self._subscriptions.clear()
        for name, func in self._handlers:
            handler = _handlers.get(name)
            if handler is not None and handler.func is func:
                unregister_handler(name)
        self._handlers.clear()
        for name, service in self._registered:
            self._services.release(self.plugin_name, name, service)
        self._registered.clear()
