"""`manage.py serve`: the ASGI web server (uvicorn) for HTTP and websockets.

With `--workers N` (default `WEB_WORKERS`) uvicorn's supervisor process binds the port and
runs N worker processes that share it; each worker imports the ASGI application and so is
a web node of its own (plugins, heartbeat, event delivery to its websocket clients). On
SIGTERM the supervisor stops the workers, each of which stops its plugins and marks its
node stopped on the way out (the application's lifespan shutdown, core/handlers.py).
"""

from __future__ import annotations

import signal
import sys

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Serve the ASGI application (admin, API, dashboard, websockets) with uvicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=settings.HTTP_PORT, help="Port (default HTTP_PORT).")
        parser.add_argument("--workers", type=int, default=settings.WEB_WORKERS,
                            help="Worker processes (default WEB_WORKERS).")

    def handle(self, *args, **options) -> None:
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        # uvicorn shuts down on SIGTERM, then raises the signal again with the handler that
        # was there before it; a plain exit here (not death by signal) lets the atexit
        # hooks run. (With several workers the supervisor handles signals itself.)
        signal.signal(signal.SIGTERM, _exit_cleanly)
        uvicorn.run(
            "chameleon_site.asgi:application",
            host=options["host"],
            port=options["port"],
            workers=options["workers"],
            log_config=None,  # keep Django's LOGGING: one format for every process
            access_log=False,  # core.middleware.RequestIdMiddleware logs each request
            lifespan="on",  # its shutdown stops this node's plugins and marks the node stopped
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
