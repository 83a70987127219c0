"""This process as a plugin node: the host thread that starts plugins, runs commands and reconciles.

`start_plugin_host(kind)` is called once by each hosting process (the web server from
asgi.py, a Celery worker from `worker_ready`). The host thread discovers plugins, starts
the enabled ones, then every `PLUGIN_RECONCILE_INTERVAL` (or at once when a
`plugin.command` event arrives) runs new commands from the database, reconciles local
instances to the desired state, checks health on its interval, heartbeats the instance
rows and, with `HOT_RELOAD`, reloads plugins whose files changed (unless a rollout pins
their code). On boot it also brings plugins to the code their rollout wants for this node
(see plugins_app.rollouts).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from django.db import close_old_connections, connection

from core.conf import chameleon_settings
from plugins_app.errors import LifecycleError, PluginError
from plugins_app.host import PluginManager
from plugins_app.models import PluginCommand, PluginCommandResult, PluginInstance, PluginState
from plugins_app.registry import discover

logger = logging.getLogger("chameleon.plugins.node")

_manager: PluginManager | None = None
_host: NodeHost | None = None
_manager_lock = threading.Lock()
#: Set in Celery pool children: the first get_manager() boots a private (non-node) host.
_private_host_wanted = False


def get_manager() -> PluginManager:
    """This process's plugin manager (a node's host manager, or an idle one in other processes).

    In a Celery pool child (where task code such as the scheduler's `plugins.call` runs,
    while the node's host lives in the worker's main process) the first call boots a
    private host: the enabled plugins with their current configs, reporting nothing.
    """
    global _manager
    with _manager_lock:
        if _manager is None:
            if _private_host_wanted:
                _manager = _boot_private_host()
            else:
                _manager = PluginManager()
        return _manager


def want_private_host() -> None:
    global _private_host_wanted, _manager
    _private_host_wanted = True
    _manager = None  # a manager inherited through fork belongs to the parent


def _boot_private_host() -> PluginManager:
    import os

    from core.nodes import current_node_name
    from plugins_app.store import ReadOnlyStore

    manager = PluginManager(node=f"{current_node_name() or 'worker'}/pool-{os.getpid()}", store=ReadOnlyStore(),
                            publish_events=False)
    manager.load(discover())
    desired = manager.store.desired()
    manager.start_all(only={name for name in manager.entries if desired.get(name, (True, 0))[0]})
    return manager


def set_manager(manager: PluginManager | None) -> None:
    global _manager
    _manager = manager


def execute_command(manager: PluginManager, command: PluginCommand) -> PluginCommandResult:
    """Carry out one command on this node and record the outcome."""
    name = command.plugin.name
    outcome, message = PluginCommandResult.Outcome.SUCCEEDED, ""
    try:
        if name not in manager.entries:
            raise PluginError(name, f"Plugin {name!r} is not loaded on this node")
        if command.action == PluginCommand.Action.START:
            ok = manager.start_with_dependencies(name)
        elif command.action == PluginCommand.Action.STOP:
            manager.stop(name, cascade=command.cascade)
            ok = True
        elif command.action == PluginCommand.Action.RESTART:
            ok = manager.restart(name)
        elif command.rollout_id is not None:
            from plugins_app.rollouts import execute_rollout_command

            ok, message = execute_rollout_command(manager, command)
        else:
            result = manager.reload(name)
            ok = result["ok"]
            message = result.get("error", f"reloaded {result.get('previous_version')} -> {result['version']}")
        if not ok:
            outcome = PluginCommandResult.Outcome.FAILED
            message = message or manager.entries[name].error
    except LifecycleError as exc:
        outcome, message = PluginCommandResult.Outcome.REFUSED, str(exc)
    except PluginError as exc:
        outcome, message = PluginCommandResult.Outcome.FAILED, str(exc)
    state = manager.entries[name].state if name in manager.entries else ""
    result, _ = PluginCommandResult.objects.update_or_create(
        command=command, node=manager.node, defaults={"outcome": outcome, "state": state, "message": message},
    )
    logger.info("Command %s %s on %s: %s %s", command.action, name, manager.node, outcome, message)
    return result


def prune_gone_nodes(days: float = 1.0) -> int:
    """Forget instance rows of nodes that stopped more than `days` ago (their history stays)."""
    from datetime import timedelta

    from django.utils import timezone

    from core.models import Node

    gone = Node.objects.filter(stopped_at__lt=timezone.now() - timedelta(days=days)).values("name")
    deleted, _ = PluginInstance.objects.filter(node__in=gone).delete()
    return deleted


class NodeHost(threading.Thread):
    """The loop that keeps this node's plugins where the database says they should be."""

    def __init__(self, kind: str, labels: dict[str, str] | None = None) -> None:
        super().__init__(name=f"chameleon-plugin-host-{kind}", daemon=True)
        self.kind = kind
        #: This node's labels (CHAMELEON_NODE_LABELS): a canary's selector matches them.
        self.labels = dict(chameleon_settings.NODE_LABELS if labels is None else labels)
        self.manager: PluginManager | None = None
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._last_command = 0
        self._last_health = 0.0
        self._last_heartbeat = 0.0
        self._mtimes: dict[str, float] = {}
        #: Auto-restart backoff per plugin: (next attempt at, current delay).
        self._backoff: dict[str, tuple[float, float]] = {}

    # -- setup ---------------------------------------------------------------------------
    def boot(self) -> None:
        from plugins_app import events

        manager = PluginManager()
        set_manager(manager)
        self.manager = manager
        # Commands given before this node existed are not replayed: desired state covers them.
        self._last_command = PluginCommand.objects.order_by("-id").values_list("id", flat=True).first() or 0
        prune_gone_nodes()
        manager.load(discover())
        desired = manager.store.desired()
        manager.start_all(only={name for name in manager.entries if desired.get(name, (True, 0))[0]})
        for name in list(manager.entries):
            if not desired.get(name, (True, 0))[0]:
                manager.stop(name, cascade=True, reason="disabled")
        self.reconcile_code()
        events.subscribe("plugin.command", lambda event: self._wake.set())
        self._snapshot_mtimes()
        logger.info("Plugin host on %s started %d plugins", manager.node,
                    sum(e.state == PluginState.RUNNING for e in manager.entries.values()))

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.boot()
        except Exception:
            logger.exception("Plugin host failed to boot")
        finally:
            self.ready.set()
            close_old_connections()
        while not self._stopping.is_set():
            self._wake.wait(chameleon_settings.PLUGIN_RECONCILE_INTERVAL)
            self._wake.clear()
            if self._stopping.is_set() or self.manager is None:
                break
            try:
                self.tick()
            except Exception:
                logger.exception("Plugin host tick failed")
            finally:
                close_old_connections()
        connection.close()

    def tick(self) -> None:
        self.run_commands()
        self.reconcile()
        self.manager.flush_call_metrics()
        now = time.monotonic()
        if now - self._last_health >= chameleon_settings.PLUGIN_HEALTH_INTERVAL:
            self._last_health = now
            self.manager.check_health()
        self.auto_restart()
        if now - self._last_heartbeat >= chameleon_settings.HEARTBEAT_INTERVAL:
            self._last_heartbeat = now
            self.heartbeat()
        if chameleon_settings.HOT_RELOAD:
            self.watch()

    def run_commands(self) -> None:
        commands = list(PluginCommand.objects.filter(id__gt=self._last_command).select_related("plugin", "rollout")
                        .order_by("id"))
        for command in commands:
            self._last_command = command.pk
            if command.rollout_id is not None and command.plugin.name not in self.manager.entries:
                continue  # a rollout goes to the nodes that host the plugin
            if command.targets(self.manager.node, self.kind):
                execute_command(self.manager, command)

    def reconcile_code(self) -> dict[str, str]:
        """Run the code each plugin's rollout wants on this node (a node that restarted mid-canary)."""
        from plugins_app.rollouts import reconcile_code

        try:
            return reconcile_code(self.manager, self.kind, self.labels)
        except Exception:
            logger.exception("Reconciling plugin code to rollouts failed")
            return {}

    def reconcile(self) -> None:
        manager = self.manager
        desired = manager.store.desired()
        for name, entry in list(manager.entries.items()):
            enabled, config_version = desired.get(name, (True, 0))
            try:
                if enabled and entry.state in (PluginState.REGISTERED, PluginState.STOPPED):
                    deps_running = all(manager.entries.get(r.name) is not None
                                       and manager.entries[r.name].state == PluginState.RUNNING
                                       for r in entry.cls.requirements())
                    if deps_running:
                        manager.start(name)
                elif not enabled and entry.state in (PluginState.RUNNING, PluginState.INITIALIZED):
                    manager.stop(name, cascade=True, reason="disabled")
                elif enabled and entry.state == PluginState.RUNNING and config_version != entry.config_version:
                    manager.apply_config(name)
            except PluginError as exc:
                logger.warning("Reconciling %s: %s", name, exc)

    def auto_restart(self, now: float | None = None) -> list[str]:
        """Restart failed or unhealthy enabled plugins, backing off 1 s, 2 s, 4 s ... up to 5 min.

        Off unless `PLUGIN_AUTO_RESTART` (or the plugin's own `auto_restart`) says so.
        """
        manager = self.manager
        now = time.monotonic() if now is None else now
        desired = manager.store.desired()
        restarted = []
        for name, entry in list(manager.entries.items()):
            wanted = entry.cls.auto_restart if entry.cls.auto_restart is not None else \
                chameleon_settings.PLUGIN_AUTO_RESTART
            broken = entry.state == PluginState.FAILED or (
                entry.state == PluginState.RUNNING and entry.health is not None and not entry.health.healthy)
            if not wanted or not desired.get(name, (True, 0))[0]:
                continue
            if not broken:
                if entry.state == PluginState.RUNNING:
                    self._backoff.pop(name, None)
                continue
            next_at, delay = self._backoff.get(name, (0.0, 0.5))
            if now < next_at:
                continue
            delay = min(delay * 2, 300.0)
            self._backoff[name] = (now + delay, delay)
            logger.warning("Auto-restarting plugin %s (next attempt in %.0fs if it stays broken)", name, delay)
            try:
                manager.restart(name)
                restarted.append(name)
            except PluginError as exc:
                logger.warning("Auto-restart of %s refused: %s", name, exc)
        return restarted

    def heartbeat(self) -> None:
        from plugins_app.logs import handler

        manager = self.manager
        manager.store.heartbeat(manager.node)
        for name in handler.take_changed() & set(manager.entries):
            manager.store.update_instance(manager.node, name, recent_logs=handler.recent(name))
        for name, entry in manager.entries.items():
            stats = manager.call_metrics(name)
            if stats:
                PluginInstance.objects.filter(plugin__name=name, node=manager.node).update(
                    metrics=stats, circuit_state=entry.breaker.state)

    # -- hot reload watch --------------------------------------------------------------
    def _watched_files(self) -> dict[str, tuple[str, float]]:
        files: dict[str, tuple[str, float]] = {}
        for name, entry in self.manager.entries.items():
            if entry.source is None or entry.source.kind != "directory":
                continue
            root = Path(entry.source.path)
            paths = root.rglob("*.py") if root.is_dir() else [root]
            for path in paths:
                try:
                    files[str(path)] = (name, path.stat().st_mtime)
                except OSError:
                    pass
        return files

    def _snapshot_mtimes(self) -> None:
        if self.manager is not None:
            self._mtimes = {path: mtime for path, (_, mtime) in self._watched_files().items()}

    def watch(self) -> None:
        changed: set[str] = set()
        for path, (name, mtime) in self._watched_files().items():
            if self._mtimes.get(path) != mtime:
                self._mtimes[path] = mtime
                changed.add(name)
        if not changed:
            return
        from plugins_app.rollouts import pinned_plugins

        pinned = pinned_plugins(changed)
        for name in sorted(changed):
            if name in pinned:
                logger.info("Plugin %s changed on disk; a rollout decides its code, not reloading", name)
                continue
            logger.info("Plugin %s changed on disk; reloading", name)
            self.manager.reload(name)

    # -- shutdown -------------------------------------------------------------------------
    def shutdown(self, timeout: float = 10.0) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)
        if self.manager is not None:
            self.manager.stop_all()
        connection.close()


def start_plugin_host(kind: str) -> NodeHost:
    """Start hosting plugins in this process (idempotent)."""
    global _host
    if _host is None:
        import atexit

        _host = NodeHost(kind)
        _host.start()
        atexit.register(_host.shutdown)
    return _host


def stop_plugin_host() -> None:
    if _host is not None:
        _host.shutdown()


def current_host() -> NodeHost | None:
    return _host


def host_info() -> dict[str, Any]:
    manager = _manager
    return {"node": manager.node if manager else "", "plugins": sorted(manager.entries) if manager else []}
