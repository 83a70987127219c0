"""`manage.py plugins list|show|start|stop|restart|reload|canary|promote|rollback|rollouts`: plugins without a browser."""

from __future__ import annotations

import getpass
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import AuditEntry, Node
from plugins_app import rollouts, services
from plugins_app.errors import PluginError
from plugins_app.models import Plugin, PluginCommand, PluginRollout


class Command(BaseCommand):
    help = "List plugins with their state per node, or start/stop/restart/reload one on every node."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        sub.add_parser("list", help="Plugins with their state on each node.")
        show = sub.add_parser("show", help="One plugin in detail.")
        show.add_argument("name")
        for verb in PluginCommand.OPERATOR_ACTIONS:
            operate = sub.add_parser(verb, help=f"{verb.title()} a plugin on every node.")
            operate.add_argument("name")
            operate.add_argument("--wait", type=float, default=15.0,
                                 help="Seconds to wait for the nodes' outcome (0: do not wait).")
            operate.add_argument("--as-user", dest="as_user", help="Django user recorded as who asked.")
            if verb in ("restart", "reload"):
                operate.add_argument("--nodes", nargs="+", default=[],
                                     help="Only these nodes (names, or kinds web/worker): a canary.")
            if verb == "stop":
                operate.add_argument("--cascade", action="store_true", help="Also stop plugins that depend on it.")
        for verb, text in (("canary", "Send the plugin's new code (on disk) to the nodes a label selector picks."),
                           ("promote", "Every node loads the active canary's code."),
                           ("rollback", "Every node returns to the code it ran before the active canary.")):
            rollout = sub.add_parser(verb, help=text)
            rollout.add_argument("name")
            rollout.add_argument("--wait", type=float, default=15.0,
                                 help="Seconds to wait for the nodes' outcome (0: do not wait).")
            rollout.add_argument("--as-user", dest="as_user", help="Django user recorded as who asked.")
            if verb == "canary":
                rollout.add_argument("--selector", default="", help="Node labels, e.g. canary=true,zone!=b.")
                rollout.add_argument("--nodes", nargs="+", default=[], help="Node names or kinds (web/worker).")
        listing = sub.add_parser("rollouts", help="Recent canary rollouts and where each node stands.")
        listing.add_argument("name", nargs="?", help="Only this plugin's.")

    def handle(self, *args, verb: str, **options) -> None:
        if verb == "list":
            return self.list()
        if verb == "show":
            return self.show(options["name"])
        if verb == "rollouts":
            return self.rollouts(options.get("name"))
        if verb in ("canary", "promote", "rollback"):
            return self.rollout(verb, options)
        return self.operate(verb, options)

    def list(self) -> None:
        alive = set(Node.objects.alive().values_list("name", flat=True))
        plugins = list(Plugin.objects.prefetch_related("instances"))
        if not plugins:
            self.stdout.write("No plugins known yet (no node has started).")
        for plugin in plugins:
            instances = list(plugin.instances.all())
            state = services.cluster_state(plugin, instances, alive)
            nodes = ", ".join(f"{i.node}={i.state}" for i in instances if i.node in alive) or "no live node"
            flag = "" if plugin.enabled else " (disabled)"
            self.stdout.write(f"{plugin.name:<20} {plugin.version:<10} {state:<12}{flag} {nodes}")

    def show(self, name: str) -> None:
        try:
            plugin = services.get_plugin(name)
        except PluginError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{plugin.name} {plugin.version} ({plugin.kind}) enabled={plugin.enabled} "
                          f"config v{plugin.config_version}")
        self.stdout.write(f"  {plugin.description}")
        self.stdout.write(f"  depends on: {', '.join(plugin.dependencies) or '-'}; "
                          f"dependents: {', '.join(services.dependents(plugin)) or '-'}")
        for instance in plugin.instances.all():
            self.stdout.write(f"  {instance.node}: {instance.state} v{instance.version} "
                              f"restarts={instance.restart_count} {instance.error}")

    def _user(self, options: dict):
        if not options.get("as_user"):
            return None
        user = get_user_model().objects.filter(username=options["as_user"]).first()
        if user is None:
            raise CommandError(f"No user named {options['as_user']!r}")
        return user

    def rollouts(self, name: str | None) -> None:
        queryset = PluginRollout.objects.select_related("plugin").order_by("-id")
        if name:
            queryset = queryset.filter(plugin__name=name)
        rows = list(queryset[:20])
        if not rows:
            self.stdout.write("No rollouts.")
        for rollout in rows:
            self._show_rollout(rollout)

    def _show_rollout(self, rollout: PluginRollout) -> None:
        where = ", ".join(filter(None, [rollout.selector, " ".join(rollout.nodes)]))
        self.stdout.write(f"#{rollout.pk} {rollout.plugin.name} {rollout.from_version or '?'} -> "
                          f"{rollout.to_version or '?'} ({rollout.to_digest[:8]}) {rollout.status} [{where}] "
                          f"by {rollout.requested_by_name} {rollout.message}".rstrip())
        for node, row in rollouts.rollout_outcome(rollout).items():
            flag = " canary" if row["canary"] else ""
            self.stdout.write(f"  {node}{flag}: {row['phase']} {row['outcome']} {row['version']} "
                              f"{row['message']}".rstrip())

    def rollout(self, verb: str, options: dict) -> None:
        user = self._user(options)
        kwargs = {"user": user, "source": AuditEntry.Source.CLI}
        try:
            if verb == "canary":
                rollout = rollouts.start_canary(options["name"], selector=options["selector"], nodes=options["nodes"],
                                                **kwargs)
            elif verb == "promote":
                rollout = rollouts.promote_rollout(options["name"], **kwargs)
            else:
                rollout = rollouts.rollback_rollout(options["name"], **kwargs)
        except PluginError as exc:
            raise CommandError(str(exc)) from None
        command = rollout.commands.order_by("-id").first()
        self.stdout.write(f"{verb} {options['name']}: rollout #{rollout.pk}, command #{command.pk}, sent to "
                          f"{len(command.target_nodes)} node(s).")
        deadline = time.monotonic() + options["wait"]
        outcome = services.command_outcome(command)
        while time.monotonic() < deadline and any(row["outcome"] == "pending" for row in outcome.values()):
            time.sleep(0.2)
            outcome = services.command_outcome(command)
        rollout.refresh_from_db()
        self._show_rollout(rollout)
        if any(row["outcome"] in ("failed", "refused") for row in outcome.values()):
            raise CommandError(f"{verb} {options['name']} did not succeed on every node")

    def operate(self, verb: str, options: dict) -> None:
        user = self._user(options)
        try:
            command = services.request_command(options["name"], verb, user=user, cascade=options.get("cascade", False),
                                               nodes=options.get("nodes") or [], source=AuditEntry.Source.CLI)
        except PluginError as exc:
            raise CommandError(str(exc)) from None
        who = user.get_username() if user else getpass.getuser()
        self.stdout.write(f"{verb} {options['name']}: command #{command.pk} by {who}, "
                          f"sent to {len(command.target_nodes)} node(s).")
        deadline = time.monotonic() + options["wait"]
        outcome = services.command_outcome(command)
        while time.monotonic() < deadline and any(row["outcome"] == "pending" for row in outcome.values()):
            time.sleep(0.2)
            outcome = services.command_outcome(command)
        for node, row in outcome.items():
            self.stdout.write(f"  {node}: {row['outcome']} {row['state']} {row['message']}".rstrip())
        if any(row["outcome"] in ("failed", "refused") for row in outcome.values()):
            raise CommandError(f"{verb} {options['name']} did not succeed on every node")
