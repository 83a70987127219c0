"""`manage.py purge_events [--days N]`: remove stored events older than the retention."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from plugins_app.events.services import purge_expired_events


class Command(BaseCommand):
    help = "Delete stored events older than EVENT_RETENTION_DAYS (or --days), in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=float, help="Override the retention in days.")

    def handle(self, *args, days: float | None, **options) -> None:
        deleted = purge_expired_events(days=days)
        self.stdout.write(f"Deleted {deleted} events.")
