"""`manage.py serve`: the ASGI web server (uvicorn) for HTTP and websockets."""

from __future__ import annotations

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Serve the ASGI application (admin, API, dashboard, websockets) with uvicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=settings.HTTP_PORT, help="Port (default HTTP_PORT).")

    def handle(self, *args, **options) -> None:
        uvicorn.run(
            "chameleon_site.asgi:application",
            host=options["host"],
            port=options["port"],
            log_config=None,  # keep Django's LOGGING: one format for every process
            access_log=False,  # core.middleware.RequestIdMiddleware logs each request
            lifespan="off",
            proxy_headers=True,
            timeout_graceful_shutdown=5,
            # Browsers ask for compressed frames; deflating each event frame costs ~50 µs
            # of the one process that fans events out to every dashboard.
            ws_per_message_deflate=False,
        )
