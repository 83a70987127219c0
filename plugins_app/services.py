"""Plugin operations for every door (API, seed routes, admin, CLI): commands, desired state, calls."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.http import HttpRequest

from core.models import AuditEntry, Node
from core.services import record_audit
from plugins_app.errors import LifecycleError, PluginError, PluginNotFound, RolloutConflict
from plugins_app.models import Plugin, PluginCommand, PluginInstance, PluginRollout, PluginState

User = AbstractBaseUser | AnonymousUser | None
HOSTING_KINDS = (Node.Kind.WEB, Node.Kind.WORKER)


def get_plugin(name: str) -> Plugin:
    try:
        return Plugin.objects.get(name=name)
    except Plugin.DoesNotExist:
        raise PluginNotFound(name) from None


def _username(user: User) -> str:
    return user.get_username() if user is not None and user.is_authenticated else ""


def dependents(plugin: Plugin) -> list[str]:
    """Names of known plugins that depend (directly or not) on `plugin`."""
    from packaging.requirements import Requirement

    graph = {name: [Requirement(spec).name for spec in deps]
             for name, deps in Plugin.objects.values_list("name", "dependencies")}
    found: list[str] = []
    frontier = [plugin.name]
    while frontier:
        current = frontier.pop()
        for name, deps in sorted(graph.items()):
            if current in deps and name not in found:
                found.append(name)
                frontier.append(name)
    return found


def dependencies_of(plugin: Plugin) -> list[str]:
    """Names of known plugins `plugin` needs, directly or not."""
    from packaging.requirements import Requirement

    graph = {name: [Requirement(spec).name for spec in deps]
             for name, deps in Plugin.objects.values_list("name", "dependencies")}
    found: list[str] = []
    frontier = [plugin.name]
    while frontier:
        for dep in graph.get(frontier.pop(), []):
            if dep not in found:
                found.append(dep)
                frontier.append(dep)
    return found


def request_command(name: str, action: str, *, user: User = None, cascade: bool = False,
                    nodes: list[str] | None = None, source: str = AuditEntry.Source.SYSTEM,
                    request: HttpRequest | None = None) -> PluginCommand:
    """Record `action` on plugin `name`, update its desired state and fan it out to the nodes.

    Stopping a plugin that enabled plugins depend on is refused unless `cascade`, which
    disables (and on each node stops) those dependents first. `nodes` (names or kinds)
    limits a restart or reload to some nodes. A reload is refused while a canary rollout
    of the plugin is active (plugins_app.rollouts decides its code then); a reload on
    every node after a rollback lifts the rollback's pin: the nodes load the source again.
    """
    nodes = list(nodes or [])
    audit = {"action": f"plugin.{action}", "target_type": "plugin", "target": name, "user": user,
             "source": source, "request": request}
    if action not in PluginCommand.OPERATOR_ACTIONS:
        raise PluginError(name, f"Unknown action {action!r}")
    if nodes and action not in (PluginCommand.Action.RESTART, PluginCommand.Action.RELOAD):
        raise PluginError(name, "Only restart and reload can target some nodes; start and stop change the "
                                "desired state of every node")
    try:
        plugin = get_plugin(name)
        with transaction.atomic():
            if action == PluginCommand.Action.STOP:
                enabled_dependents = list(Plugin.objects.filter(name__in=dependents(plugin), enabled=True)
                                          .values_list("name", flat=True))
                if enabled_dependents and not cascade:
                    raise LifecycleError(name, f"Cannot stop {name!r}: {', '.join(enabled_dependents)} "
                                               "depend on it (ask for cascade to stop them too)",
                                         plugins=[name, *enabled_dependents])
                Plugin.objects.filter(name__in=[name, *enabled_dependents]).update(enabled=False)
            elif action == PluginCommand.Action.RELOAD and plugin.pinned_code:
                active = plugin.rollouts.filter(status__in=PluginRollout.ACTIVE).order_by("-id").first()
                if active is not None:
                    raise RolloutConflict(name, f"Rollout #{active.pk} of {name!r} is {active.status}: promote or "
                                                "roll it back instead of reloading")
                if not nodes:
                    Plugin.objects.filter(pk=plugin.pk).update(pinned_code={})
            if action != PluginCommand.Action.STOP:
                # Whatever it needs must run too: enable its dependencies, transitively.
                Plugin.objects.filter(name__in=[plugin.name, *dependencies_of(plugin)]).update(enabled=True)
            alive = Node.objects.alive().filter(kind__in=HOSTING_KINDS).values_list("name", "kind")
            command = PluginCommand(
                plugin=plugin, action=action, cascade=cascade, nodes=nodes,
                requested_by=user if user is not None and user.is_authenticated else None,
                requested_by_name=_username(user) or "system", source=source,
            )
            command.target_nodes = [node for node, kind in alive if command.targets(node, kind)]
            if nodes and not command.target_nodes:
                raise PluginError(name, f"No live node matches {', '.join(nodes)}")
            command.save()
            record_audit(**audit, detail={"command": command.pk, "cascade": cascade, "selector": nodes,
                                          "nodes": command.target_nodes})
            transaction.on_commit(lambda: _announce(command))
    except PluginError as exc:
        outcome = AuditEntry.Outcome.FAILURE
        record_audit(**audit, outcome=outcome, detail={"error": str(exc), "cascade": cascade})
        raise
    return command


def _announce(command: PluginCommand) -> None:
    from plugins_app import events

    events.publish("plugin.command", {"command": command.pk, "plugin": command.plugin.name,
                                      "action": command.action}, source="system")


def command_outcome(command: PluginCommand) -> dict[str, Any]:
    """Per node: the result, or `pending` (alive, not answered yet) / `lost` (stopped heartbeating)."""
    results = {r.node: r for r in command.results.all()}
    nodes = {node.name: node for node in Node.objects.filter(name__in=[*command.target_nodes, *results])}
    outcome: dict[str, Any] = {}
    for node_name in sorted(set(command.target_nodes) | set(results)):
        result = results.get(node_name)
        node = nodes.get(node_name)
        if result is not None:
            outcome[node_name] = {"outcome": result.outcome, "state": result.state, "message": result.message,
                                  "finished_at": result.finished_at}
        else:
            status = node.status if node is not None else Node.Status.LOST
            outcome[node_name] = {"outcome": "pending" if status == Node.Status.ALIVE else status,
                                  "state": "", "message": "", "finished_at": None}
    return outcome


def states_by_node(plugin: Plugin) -> dict[str, dict[str, Any]]:
    instances = list(plugin.instances.all())
    nodes = {n.name: n for n in Node.objects.filter(name__in=[i.node for i in instances])}
    result = {}
    for instance in instances:
        node = nodes.get(instance.node)
        result[instance.node] = {"state": instance.state, "node_status": node.status if node else "unknown"}
    return result


def cluster_state(plugin: Plugin, instances: list[PluginInstance] | None = None,
                  alive: set[str] | None = None) -> str:
    """One word for the seed's /plugins/status: the state on live nodes (worst first when they differ)."""
    instances = instances if instances is not None else list(plugin.instances.all())
    alive = alive if alive is not None else set(Node.objects.alive().values_list("name", flat=True))
    states = {i.state for i in instances if i.node in alive}
    for state in (PluginState.FAILED, PluginState.RELOADING, PluginState.STOPPED, PluginState.INITIALIZED,
                  PluginState.RUNNING):
        if state in states:
            return state
    return PluginState.REGISTERED if plugin.enabled else PluginState.STOPPED


class CallArgumentsInvalid(PluginError):
    code = "invalid_arguments"


def _check_arguments(manager: Any, name: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Refuse arguments that do not fit the method's signature before calling (a 400, not a plugin error)."""
    import inspect

    entry = manager.entries.get(name)
    if entry is None or entry.instance is None or method.startswith("_"):
        return  # manager.call raises the precise error
    func = getattr(entry.instance, method, None)
    if func is None or method not in entry.cls.public_methods():
        return
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError as exc:
        raise CallArgumentsInvalid(name, f"Arguments do not fit {name}.{method}: {exc}") from None
    except ValueError:
        return  # no signature to check against (a builtin): let the call decide


def call_plugin(name: str, method: str, args: list[Any], kwargs: dict[str, Any], *, timeout: float | None = None,
                user: User = None, source: str = AuditEntry.Source.SYSTEM,
                request: HttpRequest | None = None) -> Any:
    """Call a plugin's method on this node's host; audited with its outcome."""
    from plugins_app.node import get_manager

    audit = {"action": "plugin.call", "target_type": "plugin", "target": name, "user": user, "source": source,
             "request": request}
    manager = get_manager()
    try:
        _check_arguments(manager, name, method, args, kwargs)
        result = manager.call(name, method, *args, timeout=timeout, **kwargs)
    except PluginError as exc:
        record_audit(**audit, outcome=AuditEntry.Outcome.FAILURE, detail={"method": method, "error": str(exc)})
        raise
    record_audit(**audit, detail={"method": method})
    return result
