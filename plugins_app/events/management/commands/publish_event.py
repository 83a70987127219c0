"""`manage.py publish_event <topic> [--data JSON] [--user NAME] [--wait SECONDS]`: publish a cluster event (audited)."""

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
        parser.add_argument("--wait", type=float, default=10.0,
                            help="Seconds to wait for the transport to take the event (default 10).")

    def handle(self, *args, topic: str, data: str, user: str | None, wait: float, **options) -> None:
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
        if not flush(max(0.0, wait)):
            self.stderr.write(f"The event transport did not take the event within {wait:g} s; it is stored in the "
                              "outbox and any node sends it once the transport is back.")
        self.stdout.write(json.dumps(event.as_dict()))
