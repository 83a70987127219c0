"""`manage.py ensure_admin`: create the first superuser when there is none, printing its login once."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandParser

from core import services


class Command(BaseCommand):
    help = "Create a superuser when none exists (password from CHAMELEON_ADMIN_PASSWORD, else generated)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin", help="Name of the user to create (default admin).")

    def handle(self, *args, **options) -> None:
        created = services.ensure_admin_user(
            password=os.environ.get("CHAMELEON_ADMIN_PASSWORD") or None, username=options["username"]
        )
        if created is None:
            self.stdout.write("A superuser exists already; nothing to do.")
            return
        username, password = created
        self.stdout.write(self.style.SUCCESS(
            f"Created admin user — log in at /admin/ as {username!r} with password {password!r} "
            "(shown only this once)."
        ))
