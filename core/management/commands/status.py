"""`manage.py status`: health, nodes, plugins and tasks at a glance, for operators without a browser."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count

from core.health import health_report
from core.models import Node


class Command(BaseCommand):
    help = "Show the health of every component, the nodes, plugin states and task counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON document instead of text.")

    def handle(self, *args, **options) -> None:
        from plugins_app.models import PluginInstance
        from scheduler_app.services import scheduler_status

        report, _ = health_report()
        nodes = list(Node.objects.filter(stopped_at__isnull=True).order_by("kind", "name"))  # stopped ones are history
        alive = {node.name for node in Node.objects.alive()}
        plugin_states = dict(
            PluginInstance.objects.filter(node__in=alive).values_list("state").annotate(n=Count("pk")).values_list(
                "state", "n"
            )
        )
        scheduler = scheduler_status()
        if options["json"]:
            document = {
                "health": report,
                "nodes": [{"name": node.name, "kind": node.kind, "status": node.status} for node in nodes],
                "plugin_instances": plugin_states,
                "scheduler": scheduler,
            }
            self.stdout.write(json.dumps(document, indent=2, default=str))
            return
        self.stdout.write(f"{report['service']} {report['version']}: {report['status']}")
        for name, state in report["components"].items():
            self.stdout.write(f"  {name:<9} {state}")
        self.stdout.write(f"Nodes ({len(alive)} alive):")
        for node in nodes:
            self.stdout.write(f"  {node.name:<40} {node.kind:<7} {node.status}")
        states = ", ".join(f"{count} {state}" for state, count in sorted(plugin_states.items())) or "none"
        self.stdout.write(f"Plugin instances on live nodes: {states}")
        counts = ", ".join(f"{count} {status}" for status, count in scheduler["status_counts"].items() if count)
        self.stdout.write(f"Tasks: {scheduler['total_tasks']} ({counts or 'none'}); beat active: "
                          f"{scheduler['active_beat'] or 'none'}; workers: {scheduler['workers']}")

