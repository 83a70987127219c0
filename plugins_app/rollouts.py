"""Canary rollouts of new plugin code: some nodes first (by node label), then promote or roll back.

The operator side (`start_canary`, `promote_rollout`, `rollback_rollout`; the API, admin
and CLI call these) records the rollout, sets the desired code (`Plugin.pinned_code`),
audits and fans a command out to the nodes like any plugin command (actions `canary`,
`promote`, `rollback`). The node side (`execute_rollout_command`, and `reconcile_code`
when a node boots) switches the local instance with the hot reload: the new code comes
from the plugin's source, the old from the classes the host kept in memory -- never from
the files on disk, which hold the new code by then. A node that does not have the code it
should run says so in the rollout instead of quietly running something else.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.labels import format_selector, parse_selector, selector_matches
from core.models import AuditEntry, Node
from core.services import record_audit
from plugins_app.errors import LifecycleError, PluginError, RolloutConflict, RolloutInvalid
from plugins_app.models import (
    Plugin,
    PluginCommand,
    PluginInstance,
    PluginRollout,
    PluginRolloutNode,
)
from plugins_app.registry import PluginSource, source_digest
from plugins_app.services import HOSTING_KINDS, User, _announce, _username, get_plugin

logger = logging.getLogger("chameleon.plugins.rollouts")

A = PluginCommand.Action
ROLLOUT_ACTIONS = (A.CANARY, A.PROMOTE, A.ROLLBACK)
#: How each phase names the switch in the instance history and the `plugin.reloaded` event.
HOW = {A.CANARY: "canary", A.PROMOTE: "promoted", A.ROLLBACK: "rolled back", "boot": "reconciled"}


# -- selecting nodes ---------------------------------------------------------------------
def check_selector(name: str, selector: str | dict[str, Any] | None) -> str:
    """The canonical text of a selector; RolloutInvalid says what is wrong with it."""
    try:
        text = format_selector(parse_selector(selector))
    except ValueError as exc:
        raise RolloutInvalid(name, f"Invalid label selector: {exc}") from None
    if len(text) > PluginRollout._meta.get_field("selector").max_length:
        raise RolloutInvalid(name, "The label selector is too long")
    return text


def node_selected(selector: str, nodes: list[str], node: str, kind: str, labels: dict[str, str] | None) -> bool:
    """Does a canary with this selector and node list (names or kinds; both must hold) pick this node?"""
    requirements = parse_selector(selector)
    if not requirements and not nodes:
        return False
    if requirements and not selector_matches(requirements, labels):
        return False
    return not nodes or node in nodes or kind in nodes


def _describe(selector: str, nodes: list[str]) -> str:
    parts = [f"selector {selector!r}"] if selector else []
    if nodes:
        parts.append(f"nodes {', '.join(nodes)}")
    return " and ".join(parts)


def active_rollout(plugin: Plugin) -> PluginRollout | None:
    """The rollout that still decides what the plugin's nodes run (canary or failed), if any."""
    return plugin.rollouts.filter(status__in=PluginRollout.ACTIVE).order_by("-id").first()


# -- the operator side ---------------------------------------------------------------------
def _live_instances(plugin: Plugin) -> tuple[dict[str, Node], list[PluginInstance]]:
    alive = {node.name: node for node in Node.objects.alive().filter(kind__in=HOSTING_KINDS)}
    return alive, list(plugin.instances.filter(node__in=list(alive)).order_by("node"))


def _fan_out(rollout: PluginRollout, action: str, nodes: list[str], *, user: User, source: str) -> PluginCommand:
    """One command of the rollout to these (live) nodes, announced to them after commit."""
    command = PluginCommand.objects.create(
        plugin=rollout.plugin, action=action, rollout=rollout, nodes=nodes, target_nodes=nodes,
        requested_by=user if user is not None and user.is_authenticated else None,
        requested_by_name=_username(user) or "system", source=source,
    )
    transaction.on_commit(lambda: _announce(command))
    return command


def _audited(action: str, name: str, user: User, source: str, request: HttpRequest | None,
             operation: Callable[[], tuple[PluginRollout, dict[str, Any]]]) -> PluginRollout:
    audit = {"action": action, "target_type": "plugin", "target": name, "user": user, "source": source,
             "request": request}
    try:
        with transaction.atomic():
            rollout, detail = operation()
            record_audit(**audit, detail={"rollout": rollout.pk, **detail})
    except PluginError as exc:
        record_audit(**audit, outcome=AuditEntry.Outcome.FAILURE, detail={"error": str(exc)})
        raise
    return rollout


def _locked(name: str) -> Plugin:
    plugin = get_plugin(name)
    # Serializes rollout operations on one plugin (a no-op on SQLite, whose writers queue anyway).
    return Plugin.objects.select_for_update().get(pk=plugin.pk)


def start_canary(name: str, *, selector: str | dict[str, Any] | None = "", nodes: list[str] | None = None,
                 user: User = None, source: str = AuditEntry.Source.SYSTEM,
                 request: HttpRequest | None = None) -> PluginRollout:
    """Send the plugin's new code (what its source has now) to the nodes the selector picks.

    The selector (labels, e.g. `canary=true`) and `nodes` (names or kinds) must both hold
    for a node when both are given. Refused when neither is given, no live node hosting the
    plugin matches, the picked nodes already run the code on disk, or a rollout of the
    plugin is still active.
    """
    nodes = [str(node) for node in nodes or []]

    def operation() -> tuple[PluginRollout, dict[str, Any]]:
        text = check_selector(name, selector)
        plugin = _locked(name)
        if not text and not nodes:
            raise RolloutInvalid(name, "Give a label selector (e.g. canary=true) and/or nodes (names or kinds) "
                                       "for the canary")
        active = active_rollout(plugin)
        if active is not None:
            raise RolloutConflict(name, f"Rollout #{active.pk} of {name!r} is still {active.status}: promote or "
                                        "roll it back first")
        to_digest = source_digest(PluginSource(**plugin.source)) if plugin.source else ""
        if not to_digest:
            raise RolloutInvalid(name, f"Cannot read the source of {name!r} here, so there is no new code to canary")
        alive, instances = _live_instances(plugin)
        if not instances:
            raise RolloutConflict(name, f"No live node hosts {name!r}")
        targets = [i for i in instances
                   if node_selected(text, nodes, i.node, alive[i.node].kind, alive[i.node].labels)]
        if not targets:
            raise RolloutInvalid(name, f"No live node hosting {name!r} matches {_describe(text, nodes)}")
        if all(i.code_digest == to_digest for i in targets):
            raise RolloutInvalid(name, f"No new version of {name!r} to canary: the selected nodes already run "
                                       f"{targets[0].version} ({to_digest[:8]}), the code on disk")
        # The old code: what most live nodes outside the canary run (the canary's own when it picks them all).
        old = [i for i in instances if i not in targets and i.code_digest != to_digest] or \
            [i for i in targets if i.code_digest != to_digest]
        from_version, from_digest = Counter((i.version, i.code_digest) for i in old).most_common(1)[0][0]
        canary_nodes = [i.node for i in targets]
        rollout = PluginRollout.objects.create(
            plugin=plugin, from_version=from_version, from_digest=from_digest, to_digest=to_digest, selector=text,
            nodes=nodes, canary_nodes=canary_nodes, requested_by=user if user is not None and user.is_authenticated
            else None, requested_by_name=_username(user) or "system", source=source,
        )
        plugin.pinned_code = {"version": from_version, "digest": from_digest, "rollout": rollout.pk}
        plugin.save(update_fields=["pinned_code", "updated_at"])
        command = _fan_out(rollout, A.CANARY, canary_nodes, user=user, source=source)
        return rollout, {"command": command.pk, "selector": text, "nodes": canary_nodes,
                         "from": f"{from_version} ({from_digest[:8]})", "to_digest": to_digest}

    return _audited("plugin.canary", name, user, source, request, operation)


def promote_rollout(name: str, *, user: User = None, source: str = AuditEntry.Source.SYSTEM,
                    request: HttpRequest | None = None) -> PluginRollout:
    """Every node loads the canary's code; refused when no canary is active or it failed."""

    def operation() -> tuple[PluginRollout, dict[str, Any]]:
        plugin = _locked(name)
        rollout = active_rollout(plugin)
        if rollout is None:
            raise RolloutConflict(name, f"No canary of {name!r} to promote")
        if rollout.status == PluginRollout.Status.FAILED:
            raise RolloutConflict(name, f"The canary #{rollout.pk} of {name!r} failed ({rollout.message}); roll it "
                                        "back, fix the code and start a new canary")
        on_disk = source_digest(PluginSource(**plugin.source)) if plugin.source else ""
        if on_disk and on_disk != rollout.to_digest:
            raise RolloutConflict(name, f"The code of {name!r} on disk changed since the canary ({on_disk[:8]}, "
                                        f"not {rollout.to_digest[:8]}): roll back and canary the new code")
        rollout.status, rollout.finished_at = PluginRollout.Status.PROMOTED, timezone.now()
        rollout.finished_by_name = _username(user) or "system"
        rollout.save(update_fields=["status", "finished_at", "finished_by_name", "updated_at"])
        # From now on every node runs what the source has: nothing to pin.
        plugin.pinned_code = {}
        plugin.save(update_fields=["pinned_code", "updated_at"])
        _, instances = _live_instances(plugin)
        command = _fan_out(rollout, A.PROMOTE, [i.node for i in instances], user=user, source=source)
        return rollout, {"command": command.pk, "nodes": command.target_nodes}

    return _audited("plugin.promote", name, user, source, request, operation)


def rollback_rollout(name: str, *, user: User = None, source: str = AuditEntry.Source.SYSTEM,
                     request: HttpRequest | None = None) -> PluginRollout:
    """Every node goes back to the code it ran before the canary; refused when none is active."""

    def operation() -> tuple[PluginRollout, dict[str, Any]]:
        plugin = _locked(name)
        rollout = active_rollout(plugin)
        if rollout is None:
            raise RolloutConflict(name, f"No active canary of {name!r} to roll back")
        rollout.status, rollout.finished_at = PluginRollout.Status.ROLLED_BACK, timezone.now()
        rollout.finished_by_name = _username(user) or "system"
        rollout.save(update_fields=["status", "finished_at", "finished_by_name", "updated_at"])
        # The files on disk hold the rejected code: nodes keep the old one until an operator reloads.
        plugin.pinned_code = {"version": rollout.from_version, "digest": rollout.from_digest, "rollout": rollout.pk}
        plugin.save(update_fields=["pinned_code", "updated_at"])
        _, instances = _live_instances(plugin)
        command = _fan_out(rollout, A.ROLLBACK, [i.node for i in instances], user=user, source=source)
        return rollout, {"command": command.pk, "nodes": command.target_nodes}

    return _audited("plugin.rollback", name, user, source, request, operation)


def rollout_outcome(rollout: PluginRollout, status_of: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Per node: where it stands (canary or not, phase, outcome, version), `pending`/`lost` while it owes an answer.

    Reads `rollout.node_results`, `rollout.commands` and their `results` through `.all()`,
    so a prefetching caller pays no query per rollout; `status_of(node)` gives a node's status.
    """
    rows = {row.node: row for row in rollout.node_results.all()}
    outcome: dict[str, Any] = {
        node: {"canary": row.canary, "phase": row.phase, "outcome": row.outcome, "wanted_version": row.wanted_version,
               "version": row.version, "digest": row.digest, "message": row.message, "updated_at": row.updated_at}
        for node, row in rows.items()
    }
    commands = sorted(rollout.commands.all(), key=lambda command: command.pk)
    if commands:
        latest = commands[-1]
        answered = {result.node for result in latest.results.all()}
        owing = [node for node in latest.target_nodes
                 if node not in answered and not (node in rows and rows[node].phase == latest.action)]
        if owing and status_of is None:
            statuses = {n.name: n.status for n in Node.objects.filter(name__in=owing)}
            status_of = lambda node: statuses.get(node, Node.Status.LOST)  # noqa: E731
        for node in owing:
            status = status_of(node)
            previous = outcome.get(node, {})
            outcome[node] = {"canary": node in rollout.canary_nodes, "phase": latest.action,
                             "outcome": "pending" if status == Node.Status.ALIVE else status,
                             "wanted_version": "", "version": previous.get("version", ""),
                             "digest": previous.get("digest", ""), "message": "", "updated_at": None}
    return dict(sorted(outcome.items()))


# -- the node side -----------------------------------------------------------------------
def switch_code(manager: Any, name: str, version: str, digest: str, *, phase: str,
                rollout: int | None) -> tuple[str, str]:
    """Make this host run the code `digest` of `name`: (rollout outcome, message).

    The code comes from the classes this host kept (`PluginEntry.retained`), else from the
    source when the files there are that code; otherwise it is unavailable here and the
    running instance stays.
    """
    entry = manager.get(name)
    wanted = f"{version or '?'} ({digest[:8]})"
    if not digest:
        return PluginRolloutNode.Outcome.UNAVAILABLE, f"The code {version or '?'} has no known fingerprint"
    if entry.digest == digest:
        return PluginRolloutNode.Outcome.SUCCEEDED, f"Runs {entry.cls.version} already"
    how = HOW.get(phase, phase)
    retained = entry.retained.get(digest)
    try:
        if retained is not None:
            result = manager.reload(name, cls=retained, digest=digest, how=how, rollout=rollout, phase=phase)
        elif entry.source is not None and source_digest(entry.source) == digest:
            result = manager.reload(name, how=how, rollout=rollout, phase=phase)
        else:
            where = ("the node has not loaded it since it started, and the files on disk hold other code"
                     if phase in (A.ROLLBACK, "boot") else "the files on disk no longer hold it")
            return (PluginRolloutNode.Outcome.UNAVAILABLE,
                    f"{wanted} is not available on this node ({where}); it keeps running "
                    f"{entry.cls.version} ({entry.digest[:8]})")
    except LifecycleError as exc:
        return PluginRolloutNode.Outcome.FAILED, str(exc)
    if not result["ok"]:
        return PluginRolloutNode.Outcome.FAILED, f"{result['error']}; {entry.cls.version} keeps running"
    if entry.digest != digest:
        return (PluginRolloutNode.Outcome.FAILED,
                f"Loaded {entry.cls.version} ({entry.digest[:8]}), not {wanted}: the files changed meanwhile")
    return PluginRolloutNode.Outcome.SUCCEEDED, f"{how} {result['previous_version']} -> {result['version']}"


def _record(rollout: PluginRollout, node: str, *, canary: bool, phase: str, outcome: str, wanted_version: str,
            entry: Any, message: str) -> None:
    PluginRolloutNode.objects.update_or_create(rollout=rollout, node=node, defaults={
        "canary": canary, "phase": phase, "outcome": outcome, "wanted_version": wanted_version,
        "version": entry.cls.version if entry is not None else "", "digest": entry.digest if entry is not None else "",
        "message": message, "updated_at": timezone.now(),
    })


def execute_rollout_command(manager: Any, command: PluginCommand) -> tuple[bool, str]:
    """Carry out a rollout phase on this node; records where the node stands. Returns (ok, message)."""
    rollout = command.rollout
    name = command.plugin.name
    if command.action == A.ROLLBACK:
        version, digest = rollout.from_version, rollout.from_digest
    else:
        version, digest = rollout.to_version, rollout.to_digest
    entry = manager.entries.get(name)
    if entry is None:
        outcome, message = PluginRolloutNode.Outcome.FAILED, f"Plugin {name!r} is not loaded on this node"
    else:
        outcome, message = switch_code(manager, name, version, digest, phase=command.action, rollout=rollout.pk)
    ok = outcome == PluginRolloutNode.Outcome.SUCCEEDED
    loaded = entry.cls.version if entry is not None and entry.digest == digest else ""
    if command.action == A.CANARY:
        if ok and loaded and not rollout.to_version:
            PluginRollout.objects.filter(pk=rollout.pk, to_version="").update(to_version=loaded)
        elif not ok:
            PluginRollout.objects.filter(pk=rollout.pk, status=PluginRollout.Status.CANARY).update(
                status=PluginRollout.Status.FAILED, message=f"{manager.node}: {message}", updated_at=timezone.now())
    _record(rollout, manager.node, canary=manager.node in rollout.canary_nodes, phase=command.action, outcome=outcome,
            wanted_version=version or loaded, entry=entry, message=message)
    return ok, message


def desired_code(plugin: Plugin, rollout: PluginRollout | None, node: str, kind: str,
                 labels: dict[str, str] | None) -> tuple[str, str, int | None, bool] | None:
    """(version, digest, rollout id, canary?) this node should run, or None when the source decides."""
    if rollout is not None and node_selected(rollout.selector, rollout.nodes, node, kind, labels):
        return rollout.to_version, rollout.to_digest, rollout.pk, True
    pin = plugin.pinned_code or {}
    if pin.get("digest"):
        return pin.get("version", ""), pin["digest"], pin.get("rollout"), False
    return None


def reconcile_code(manager: Any, kind: str, labels: dict[str, str] | None) -> dict[str, str]:
    """On boot: bring each plugin to the code its rollout (or rollback) wants for this node.

    A node that restarted mid-canary loaded the files on disk (the new code). On a canary
    node that is right; elsewhere the old code is wanted, which a fresh process does not
    have: that is reported per node in the rollout (`unavailable`) and as a failed
    `plugin.reloaded`, and the instance keeps running. Returns {plugin: outcome}.
    """
    done: dict[str, str] = {}
    plugins = Plugin.objects.filter(name__in=list(manager.entries))
    active = {r.plugin_id: r for r in PluginRollout.objects.filter(plugin__in=plugins, status__in=PluginRollout.ACTIVE)
              .order_by("id")}
    for plugin in plugins:
        rollout = active.get(plugin.pk)
        wanted = desired_code(plugin, rollout, manager.node, kind, labels)
        if wanted is None:
            continue
        version, digest, rollout_id, canary = wanted
        record_on = rollout if rollout is not None else PluginRollout.objects.filter(pk=rollout_id).first()
        outcome, message = switch_code(manager, plugin.name, version, digest, phase="boot", rollout=rollout_id)
        entry = manager.entries[plugin.name]
        if outcome != PluginRolloutNode.Outcome.SUCCEEDED:
            logger.warning("Plugin %s on %s: %s", plugin.name, manager.node, message)
            manager._publish("plugin.reloaded", entry, ok=False, error=message, attempted_version=version,
                             rollout=rollout_id, phase="boot")
        if record_on is not None:
            _record(record_on, manager.node, canary=canary, phase="boot", outcome=outcome, wanted_version=version,
                    entry=entry, message=message)
        done[plugin.name] = outcome
    return done


def pinned_plugins(names: set[str]) -> set[str]:
    """Those of `names` whose code a rollout decides (the hot reload watcher leaves them alone)."""
    if not names:
        return set()
    return {name for name, pin in Plugin.objects.filter(name__in=names).values_list("name", "pinned_code") if pin}
