"""`manage.py publish_event <topic> [--data JSON] [--user NAME]`: publish a cluster event (audited)."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import AuditEntry
from plugins_app.events import flush
from plugins_app.events.envelope import InvalidEvent
from plugins_app.events.services import publish_event_as


class Command(BaseCommand):
    help = "Publish an event on the bus (stored and sent to every node), as a user for the audit log."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("topic", help="Dot-separated topic, e.g. test.demo")
        parser.add_argument("--data", default="{}", help="A JSON object (default {}).")
        parser.add_argument("--user", help="Username recorded as the publisher (default: none, 'system').")

    def handle(self, *args, topic: str, data: str, user: str | None, **options) -> None:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--data is not valid JSON: {exc}") from None
        account = None
        if user:
            account = get_user_model().objects.filter(username=user).first()
            if account is None:
                raise CommandError(f"No user named {user!r}.")
        try:
            event = publish_event_as(topic=topic, data=payload, user=account, source_kind=AuditEntry.Source.CLI)
        except InvalidEvent as exc:
            raise CommandError(str(exc)) from None
        flush(10)
        self.stdout.write(json.dumps(event.as_dict()))
