"""`manage.py serve`: the ASGI web server (uvicorn) for HTTP and websockets."""

from __future__ import annotations

import signal
import sys

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Serve the ASGI application (admin, API, dashboard, websockets) with uvicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=settings.HTTP_PORT, help="Port (default HTTP_PORT).")

    def handle(self, *args, **options) -> None:
        # uvicorn shuts down on SIGTERM, then raises the signal again with the handler that
        # was there before it; a plain exit here (not death by signal) lets the atexit
        # hooks mark this node stopped and stop its plugins.
        signal.signal(signal.SIGTERM, _exit_cleanly)
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
            # of the one process that fans events out to every dashboard. Uncompressed
            # frames of this implementation are what the event hub writes to sockets
            # directly (plugins_app/events/ws_frames.py).
            ws="websockets-sansio",
            ws_per_message_deflate=False,
        )


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)
