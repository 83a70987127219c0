"""The plugin host of one process: `PluginManager` loads, orders, starts, stops, reloads and calls plugins."""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from django.conf import settings

from core.logging import plugin_var
from plugins_app import metrics
from plugins_app.breaker import CircuitBreaker, CircuitState
from plugins_app.calls import CallRoute, CallsMixin
from plugins_app.config_schema import apply_defaults, validate_config
from plugins_app.context import PluginContext, ServiceLocator
from plugins_app.contract import HealthStatus, Plugin
from plugins_app.errors import ConfigInvalid, InvalidTransition, LifecycleError, PluginNotFound
from plugins_app.models import PluginState
from plugins_app.registry import (
    Discovery,
    PluginSource,
    check_dependencies,
    dependents_of,
    reimport,
    source_digest,
    topological,
)
from plugins_app.store import DatabaseStore, NullStore

logger = logging.getLogger("chameleon.plugins")

S = PluginState
#: How many versions of a plugin's code a host keeps in memory (the running one included).
RETAINED_VERSIONS = 5
TRANSITIONS: dict[str, set[str]] = {
    S.REGISTERED: {S.INITIALIZED, S.FAILED},
    S.INITIALIZED: {S.RUNNING, S.STOPPED, S.FAILED},
    S.RUNNING: {S.STOPPED, S.FAILED, S.RELOADING},
    S.RELOADING: {S.RUNNING, S.FAILED},
    S.STOPPED: {S.INITIALIZED, S.FAILED, S.STOPPED},
    S.FAILED: {S.INITIALIZED, S.STOPPED, S.FAILED},
}
EVENT_OF_STATE = {S.REGISTERED: "plugin.registered", S.INITIALIZED: "plugin.initialized",
                  S.RUNNING: "plugin.started", S.STOPPED: "plugin.stopped", S.FAILED: "plugin.failed"}


class PluginEntry:
    """One plugin on this node: its class, live instance, state and call guards."""

    def __init__(self, cls: type[Plugin], source: PluginSource | None) -> None:
        self.name = cls.name
        self.cls = cls
        self.source = source
        self.instance: Plugin | None = None
        self.ctx: PluginContext | None = None
        self.state: str = S.REGISTERED
        self.callable = False
        self.error = ""
        self.traceback = ""
        self.restart_count = 0
        self.config: dict[str, Any] = {}
        self.config_version = 0
        self.loaded_versions: list[dict[str, Any]] = []
        #: Fingerprint of the running code (registry.source_digest), '' when it has no source.
        self.digest = source_digest(source)
        #: Code this host has loaded, by digest (oldest first): a rollback starts one again
        #: without reading the files on disk, which may hold newer code by then.
        self.retained: dict[str, type[Plugin]] = {self.digest: cls} if self.digest else {}
        self.health: HealthStatus | None = None
        self.started_at: float | None = None
        self.breaker = CircuitBreaker(cls.max_failures, cls.reset_interval, cls.half_open_probes,
                                      on_change=lambda state, n=cls.name: metrics.plugin_circuit_state.labels(
                                          plugin=n).set(CircuitState.GAUGE[state]))
        self.lock = threading.Lock()
        self.max_concurrency = cls.max_concurrency
        #: One token per allowed concurrent call (deque pop/append are atomic).
        self.slots: collections.deque[None] = collections.deque([None] * cls.max_concurrency)
        self.call_timeout = cls.call_timeout
        self.executor: Any = None

    @property
    def active(self) -> int:
        """Calls running now."""
        return max(0, self.max_concurrency - len(self.slots))


class PluginManager(CallsMixin):
    """Hosts plugins in this process (a node): lifecycle through one state machine, calls, health.

    Every state change goes through `_transition`, which checks it against TRANSITIONS,
    persists it (instance row + history row, when the manager has a database store) and
    publishes the matching `plugin.*` event. A hook that raises sends the plugin to
    `failed` with its traceback; the manager and the other plugins carry on.
    """

    def __init__(self, *, node: str | None = None, persist: bool = True, data_root: Path | None = None,
                 configs: dict[str, dict[str, Any]] | None = None, publish_events: bool = True,
                 store: NullStore | None = None) -> None:
        from core.nodes import current_node_name

        self.node = node or current_node_name() or f"local@{socket.gethostname()}:{os.getpid()}"
        self.store = store or (DatabaseStore() if persist else NullStore())
        self.data_root = data_root or Path(settings.DATA_DIR) / "plugins"
        self.services = ServiceLocator()
        self.static_configs = configs or {}
        self.publish_events = publish_events
        self.entries: dict[str, PluginEntry] = {}
        self.discovery_errors: dict[str, str] = {}
        self._routes: dict[tuple[str, str], CallRoute] = {}
        self._retired_routes: list[CallRoute] = []
        self._lock = threading.RLock()
        self._problems: dict[str, str] | None = None

    # -- registration ------------------------------------------------------------------
    def load(self, discovery: Discovery) -> None:
        self.discovery_errors.update(discovery.errors)
        for cls, source in discovery.plugins.values():
            self.register(cls, source)

    def register(self, cls: type[Plugin], source: PluginSource | None = None) -> PluginEntry:
        cls.validate()
        with self._lock:
            if cls.name in self.entries:
                raise LifecycleError(cls.name, f"Plugin {cls.name!r} is already registered on this node")
            entry = self.entries[cls.name] = PluginEntry(cls, source)
            self._problems = None
        self.store.ensure_plugin(cls, source)
        self.store.transition(self.node, cls.name, S.REGISTERED, S.REGISTERED, version=cls.version,
                              reason="registered", error="", traceback="", restart_count=0,
                              code_digest=entry.digest)
        self._publish("plugin.registered", entry)
        metrics.plugin_count.set(len(self.entries))
        metrics.plugin_status.labels(name=cls.name, status=S.REGISTERED).set(1)
        metrics.plugin_circuit_state.labels(plugin=cls.name).set(CircuitState.GAUGE[CircuitState.CLOSED])
        return entry

    def get(self, name: str) -> PluginEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise PluginNotFound(name) from None

    def classes(self) -> dict[str, type[Plugin]]:
        return {name: entry.cls for name, entry in self.entries.items()}

    # -- the state machine -------------------------------------------------------------
    def _publish(self, topic: str, entry: PluginEntry, **data: Any) -> None:
        if not self.publish_events:
            return
        from plugins_app import events

        try:
            events.publish(topic, {"plugin": entry.name, "node": self.node, "version": entry.cls.version,
                                   "state": entry.state, **data}, source="system")
        except Exception:
            logger.exception("Could not publish %s for %s", topic, entry.name)

    def _transition(self, entry: PluginEntry, to_state: str, *, reason: str = "", error: str = "",
                    tb: str = "", event: str | None = None, **data: Any) -> None:
        from_state = entry.state
        if to_state not in TRANSITIONS[from_state]:
            raise InvalidTransition(entry.name, f"Plugin {entry.name!r} cannot go from {from_state} to {to_state}")
        entry.state = to_state
        entry.callable = to_state in (S.RUNNING, S.RELOADING)
        if to_state == S.FAILED:
            entry.error, entry.traceback = error, tb
        elif to_state in (S.INITIALIZED, S.RUNNING) and reason != "reload failed":
            entry.error, entry.traceback = "", ""
        self._retire_routes(entry.name)
        metrics.plugin_status.labels(name=entry.name, status=from_state).set(0)
        metrics.plugin_status.labels(name=entry.name, status=to_state).set(1)
        self.store.transition(
            self.node, entry.name, from_state, to_state, version=entry.cls.version, reason=reason,
            error=entry.error, traceback=entry.traceback, restart_count=entry.restart_count,
            config_version=entry.config_version, loaded_versions=entry.loaded_versions,
            circuit_state=entry.breaker.state, code_digest=entry.digest,
        )
        logger.info("Plugin %s on %s: %s -> %s %s", entry.name, self.node, from_state, to_state, reason,
                    extra={"plugin": entry.name})
        topic = event or EVENT_OF_STATE.get(to_state)
        if topic:
            self._publish(topic, entry, previous=from_state, reason=reason,
                          **({"error": error} if error else {}), **data)

    def _retire_routes(self, name: str) -> None:
        """Forget cached call routes of `name` (its instance changed), keeping their unflushed figures."""
        kept = {}
        for key, route in self._routes.items():
            if key[0] == name:
                self._retired_routes.append(route)
            else:
                kept[key] = route
        self._routes = kept

    def _fail(self, entry: PluginEntry, hook: str, exc: BaseException) -> None:
        error = f"{hook}: {type(exc).__name__}: {exc}"
        logger.error("Plugin %s failed in %s: %s", entry.name, hook, exc, exc_info=exc)
        self._transition(entry, S.FAILED, reason=f"{hook} raised", error=error,
                         tb="".join(traceback.format_exception(exc)))

    def _hook(self, entry: PluginEntry, hook: str, *args: Any, instance: Plugin | None = None) -> bool:
        token = plugin_var.set(entry.name)
        try:
            getattr(instance or entry.instance, hook)(*args)
            return True
        except Exception as exc:
            if instance is None:
                self._fail(entry, hook, exc)
            else:
                raise
            return False
        finally:
            plugin_var.reset(token)

    # -- config --------------------------------------------------------------------------
    def _config_for(self, entry: PluginEntry, cls: type[Plugin] | None = None) -> tuple[int, dict[str, Any]]:
        cls = cls or entry.cls
        stored = self.store.config(entry.name)
        version, data = stored if stored else (0, dict(self.static_configs.get(entry.name, {})))
        data = apply_defaults(cls.config_schema, data)
        fields = validate_config(cls.config_schema, data)
        if fields:
            raise ConfigInvalid(entry.name, fields)
        return version, data

    def _new_context(self, entry: PluginEntry, cls: type[Plugin], config: dict[str, Any]) -> PluginContext:
        return PluginContext(entry.name, tuple(cls.permissions), config=config, data_root=self.data_root,
                             services=self.services, node=self.node)

    # -- lifecycle operations ---------------------------------------------------------
    def dependency_problems(self) -> dict[str, str]:
        """check_dependencies over the loaded classes, cached until a class is added or replaced."""
        if self._problems is None:
            self._problems = check_dependencies(self.classes())
        return self._problems

    def _require_dependencies_running(self, entry: PluginEntry) -> None:
        problems = self.dependency_problems()
        if entry.name in problems:
            raise LifecycleError(entry.name, problems[entry.name], plugins=_names_in(problems[entry.name]))
        for requirement in entry.cls.requirements():
            dep = self.entries[requirement.name]
            if dep.state != S.RUNNING:
                raise LifecycleError(entry.name, f"Plugin {entry.name!r} needs {dep.name!r} running "
                                                 f"(it is {dep.state})", plugins=[entry.name, dep.name])

    def start(self, name: str) -> bool:
        """Initialize and start `name` (dependencies must be running); False when a hook failed."""
        entry = self.get(name)
        with self._lock:
            if entry.state == S.RUNNING:
                return True
            if entry.state == S.RELOADING:
                raise LifecycleError(name, f"Plugin {name!r} is reloading")
            self._require_dependencies_running(entry)
            started = time.perf_counter()
            try:
                entry.config_version, entry.config = self._config_for(entry)
            except ConfigInvalid as exc:
                self._transition(entry, S.FAILED, reason="invalid config", error=str(exc))
                return False
            entry.instance = entry.cls()
            entry.ctx = self._new_context(entry, entry.cls, entry.config)
            if not self._hook(entry, "initialize", entry.ctx, entry.config):
                return False
            self._transition(entry, S.INITIALIZED, reason="initialized")
            if not self._hook(entry, "start", entry.ctx):
                entry.ctx.release()
                return False
            entry.breaker.reset()
            entry.started_at = time.time()
            self._record_loaded(entry, "started")
            self._transition(entry, S.RUNNING, reason="started")
            metrics.plugin_startup_duration.labels(plugin=name).observe(time.perf_counter() - started)
            return True

    def start_with_dependencies(self, name: str) -> bool:
        """Start the plugins `name` needs (dependencies first), then `name`."""
        self.get(name)
        needed: list[str] = []

        def visit(current: str) -> None:
            for requirement in self.get(current).cls.requirements():
                if requirement.name in self.entries and requirement.name not in needed:
                    visit(requirement.name)
                    needed.append(requirement.name)

        visit(name)
        for dependency in needed:
            if self.entries[dependency].state != S.RUNNING and not self.start(dependency):
                return False
        return self.start(name)

    def stop(self, name: str, *, cascade: bool = False, reason: str = "stopped") -> list[str]:
        """Stop `name`; refused while running plugins depend on it unless `cascade` stops them first.

        Returns the names stopped, dependents first.
        """
        self.get(name)
        with self._lock:
            running_dependents = [d for d in dependents_of(name, self.classes())
                                  if self.entries[d].state in (S.RUNNING, S.RELOADING)]
            if running_dependents and not cascade:
                raise LifecycleError(
                    name, f"Cannot stop {name!r}: running plugin(s) {', '.join(running_dependents)} depend on it "
                          "(ask for cascade to stop them first)", plugins=[name, *running_dependents])
            order = [n for n in reversed(topological(self.classes())) if n in running_dependents] + [name]
            stopped = []
            for current in order:
                self._stop_one(self.entries[current], reason if current == name else f"cascade from {name}")
                stopped.append(current)
            return stopped

    def _stop_one(self, entry: PluginEntry, reason: str) -> None:
        if entry.state in (S.STOPPED, S.REGISTERED):
            return
        if entry.state in (S.RUNNING, S.INITIALIZED) and entry.instance is not None:
            ok = self._hook(entry, "stop", entry.ctx)
            if entry.ctx is not None:
                entry.ctx.release()
            if not ok:
                return
        elif entry.ctx is not None:
            entry.ctx.release()
        self._transition(entry, S.STOPPED, reason=reason)
        entry.instance = None

    def restart(self, name: str) -> bool:
        """stop + initialize + start; counts a restart. Dependents are not stopped."""
        entry = self.get(name)
        with self._lock:
            if entry.state in (S.RUNNING, S.INITIALIZED) and entry.instance is not None:
                if not self._hook(entry, "stop", entry.ctx):
                    entry.ctx.release()
                    return False
                entry.ctx.release()
                self._transition(entry, S.STOPPED, reason="restarting")
            entry.restart_count += 1
            ok = self.start(name)
            if ok:
                self._publish("plugin.restarted", entry, restart_count=entry.restart_count)
            else:
                self.store.update_instance(self.node, name, restart_count=entry.restart_count)
            return ok

    def start_all(self, only: set[str] | None = None) -> dict[str, str]:
        """Start every (or every `only`) plugin in dependency order; returns refusals and failures."""
        problems = self.dependency_problems()
        outcome: dict[str, str] = {}
        for name, message in problems.items():
            entry = self.entries[name]
            if entry.state != S.FAILED or entry.error != message:
                self._transition(entry, S.FAILED, reason="dependencies refused", error=message)
            outcome[name] = message
        for name in topological({n: c for n, c in self.classes().items() if n not in problems}):
            if only is not None and name not in only:
                continue
            try:
                if not self.start(name):
                    outcome[name] = self.entries[name].error
            except LifecycleError as exc:
                outcome[name] = str(exc)
        return outcome

    def stop_all(self) -> None:
        for name in reversed(topological(self.classes()) if not check_dependencies(self.classes())
                             else list(self.entries)):
            try:
                self._stop_one(self.entries[name], "host stopping")
            except Exception:
                logger.exception("Stopping %s failed", name)

    # -- config changes ----------------------------------------------------------------
    def apply_config(self, name: str) -> str:
        """Bring `name` to its current stored config: live via on_config_change, else restart."""
        entry = self.get(name)
        with self._lock:
            version, data = self._config_for(entry)
            if version == entry.config_version and data == entry.config:
                return "unchanged"
            if entry.state != S.RUNNING or entry.instance is None:
                entry.config_version, entry.config = version, data
                self.store.update_instance(self.node, name, config_version=version)
                return "stored"
            if getattr(entry.cls, "on_config_change", None) is not None:
                if not self._hook(entry, "on_config_change", data):
                    return "failed"
                entry.config_version, entry.config = version, data
                entry.ctx._set_config(data)
                self.store.update_instance(self.node, name, config_version=version)
                return "applied"
            return "restarted" if self.restart(name) else "failed"

    # -- health --------------------------------------------------------------------------
    def check_health(self) -> dict[str, HealthStatus]:
        results = {}
        for entry in list(self.entries.values()):
            if entry.state != S.RUNNING or entry.instance is None:
                continue
            try:
                status = entry.instance.health()
                if not isinstance(status, HealthStatus):
                    status = HealthStatus(bool(status))
            except Exception as exc:
                status = HealthStatus(False, f"health() raised {type(exc).__name__}: {exc}")
            previous = entry.health
            entry.health = status
            results[entry.name] = status
            if previous is None or previous.healthy != status.healthy:
                self.store.update_instance(self.node, entry.name, healthy=status.healthy, health=status.as_dict())
                self._publish("plugin.health_changed", entry, healthy=status.healthy, message=status.message)
        return results

    # -- hot reload ----------------------------------------------------------------------
    def _record_loaded(self, entry: PluginEntry, how: str) -> None:
        loaded = {"version": entry.cls.version, "how": how, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "digest": entry.digest}
        last = entry.loaded_versions[-1] if entry.loaded_versions else {}
        if (last.get("version"), last.get("digest", entry.digest)) != (entry.cls.version, entry.digest):
            entry.loaded_versions = [*entry.loaded_versions, loaded][-20:]

    def _retain(self, entry: PluginEntry, digest: str, cls: type[Plugin]) -> None:
        if not digest:
            return
        entry.retained.pop(digest, None)
        entry.retained[digest] = cls
        for old in list(entry.retained)[:-RETAINED_VERSIONS]:
            if old != entry.digest:
                del entry.retained[old]

    def reload(self, name: str, *, cls: type[Plugin] | None = None, digest: str = "", how: str = "reloaded",
               **event_data: Any) -> dict[str, Any]:
        """Import `name` afresh, start the new instance, then swap and stop the old one.

        With `cls` (a class this host loaded before, see `PluginEntry.retained`, with its
        `digest`) that class is started instead of importing the source: a rollback.
        On any failure the old instance keeps running and the error (attempted version,
        traceback) is reported in the result, on the instance row and as `plugin.reloaded`
        with `"ok": false`. `event_data` goes into the `plugin.reloaded` event.
        """
        entry = self.get(name)
        with self._lock:
            if cls is None and entry.source is None:
                raise LifecycleError(name, f"Plugin {name!r} has no source to reload from")
            was_running = entry.state == S.RUNNING
            old_version = entry.cls.version
            if was_running:
                self._transition(entry, S.RELOADING, reason="reloading")
            new_instance: Plugin | None = None
            new_ctx: PluginContext | None = None
            attempted = "?"
            try:
                if cls is None:
                    digest = source_digest(entry.source)
                    new_cls = reimport(entry.source, name)
                else:
                    new_cls = cls
                attempted = new_cls.version
                classes = {**self.classes(), name: new_cls}
                problems = check_dependencies(classes)
                if name in problems:
                    raise LifecycleError(name, problems[name])
                if was_running:
                    version, config = self._config_for(entry, new_cls)
                    new_instance = new_cls()
                    new_ctx = self._new_context(entry, new_cls, config)
                    self._hook(entry, "initialize", new_ctx, config, instance=new_instance)
                    self._hook(entry, "start", new_ctx, instance=new_instance)
            except Exception as exc:
                tb = "".join(traceback.format_exception(exc))
                if new_ctx is not None:
                    new_ctx.release()
                error = f"reload to {attempted} failed: {type(exc).__name__}: {exc}"
                logger.error("Reload of plugin %s on %s failed; version %s keeps running: %s", name, self.node,
                             old_version, error, exc_info=exc)
                entry.error, entry.traceback = error, tb
                if was_running:
                    self._transition(entry, S.RUNNING, reason="reload failed", event="plugin.reloaded",
                                     ok=False, attempted_version=attempted, traceback=tb, **event_data)
                else:
                    self.store.update_instance(self.node, name, error=error, traceback=tb)
                    self._publish("plugin.reloaded", entry, ok=False, error=error, attempted_version=attempted,
                                  **event_data)
                return {"ok": False, "plugin": name, "version": old_version, "attempted_version": attempted,
                        "error": error, "traceback": tb}
            old_instance, old_ctx = entry.instance, entry.ctx
            entry.cls = new_cls
            entry.digest = digest
            self._retain(entry, digest, new_cls)
            self._problems = None
            if new_cls.max_concurrency != entry.max_concurrency:
                entry.slots.extend([None] * (new_cls.max_concurrency - entry.max_concurrency))
                for _ in range(entry.max_concurrency - new_cls.max_concurrency):
                    try:
                        entry.slots.pop()
                    except IndexError:
                        break
            entry.max_concurrency, entry.call_timeout = new_cls.max_concurrency, new_cls.call_timeout
            self._retire_routes(name)
            entry.breaker.max_failures, entry.breaker.reset_interval = new_cls.max_failures, new_cls.reset_interval
            if was_running:
                entry.instance, entry.ctx = new_instance, new_ctx
                entry.config_version, entry.config = version, config
            self._record_loaded(entry, how)
            self.store.ensure_plugin(new_cls, entry.source)
            if was_running:
                self._transition(entry, S.RUNNING, reason=f"{how} {old_version} -> {new_cls.version}",
                                 event="plugin.reloaded", ok=True, previous_version=old_version, **event_data)
                if old_instance is not None:
                    try:
                        self._hook(entry, "stop", old_ctx, instance=old_instance)
                    except Exception:
                        logger.exception("Old instance of %s failed to stop after reload", name)
                    old_ctx.release()
            else:
                self.store.update_instance(self.node, name, version=new_cls.version, code_digest=entry.digest,
                                           loaded_versions=entry.loaded_versions, error="", traceback="")
                self._publish("plugin.reloaded", entry, ok=True, previous_version=old_version, **event_data)
                if entry.state == S.FAILED:
                    # New code for a broken plugin: try it at once.
                    try:
                        started = self.start(name)
                    except LifecycleError as exc:
                        started, entry.error = False, str(exc)
                    if not started:
                        return {"ok": False, "plugin": name, "version": new_cls.version,
                                "attempted_version": new_cls.version, "error": entry.error,
                                "traceback": entry.traceback}
            return {"ok": True, "plugin": name, "version": new_cls.version, "previous_version": old_version}

    # -- snapshot ------------------------------------------------------------------------
    def snapshot(self, name: str) -> dict[str, Any]:
        entry = self.get(name)
        return {
            "name": name, "state": entry.state, "version": entry.cls.version, "error": entry.error,
            "restart_count": entry.restart_count, "circuit_state": entry.breaker.state,
            "health": entry.health.as_dict() if entry.health else None, "config_version": entry.config_version,
            "metrics": self.call_metrics(name),
        }


def _names_in(message: str) -> list[str]:
    import re

    return sorted(set(re.findall(r"'([a-z][a-z0-9_-]*)'", message)))
