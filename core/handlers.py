"""ASGI pieces of the web process: Django's HTTP handler with one thread hop per request,
and the lifespan protocol that stops the web node when the server shuts down."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.http import HttpRequest, HttpResponseBase

logger = logging.getLogger("chameleon.web")
PR_SET_PDEATHSIG = 1


class ASGIHandler(DjangoASGIHandler):
    """Django's `ASGIHandler` that runs the middleware chain and the view in one thread call.

    In async mode Django runs every hook of a sync middleware and then the sync view
    through a `sync_to_async` call each: for this project's middleware that is ~15
    switches between the event loop and the request's thread, about 1.3 ms of CPU per
    request, more than the view of a small API list costs. Every middleware and view here
    is synchronous, so this handler builds the chain as the WSGI handler does and calls it
    once in the request's thread (the same thread Django would use: thread-sensitive, one
    per request). Async views still work (the sync chain runs them through async_to_sync,
    as under WSGI). Reading the body, sending and streaming the response, client
    disconnects and the request_started / request_finished signals are Django's own code.
    """

    def __init__(self) -> None:
        # Not super().__init__(): that builds the async chain (middleware instantiated twice).
        self.load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_asgi_application() -> ASGIHandler:
    """`django.core.asgi.get_asgi_application()` with the handler above."""
    django.setup(set_prefix=False)
    return ASGIHandler()


class Lifespan:
    """The ASGI lifespan protocol: `on_shutdown` runs when the server shuts down.

    The web node stops its plugins and marks itself stopped there. It matters most in the
    worker processes of `serve --workers N`: uvicorn ends each by raising SIGTERM again
    after its shutdown, so no atexit hook runs in them. A worker of a supervisor also
    asks Linux to send it SIGTERM should the supervisor die first (nothing is orphaned).
    """

    def __init__(self, on_shutdown: Callable[[], None]) -> None:
        self.on_shutdown = on_shutdown

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _terminate_with_supervisor()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await sync_to_async(self.on_shutdown, thread_sensitive=False)()
                except Exception:  # the server still shuts down; say why the node did not
                    logger.exception("Stopping the web node failed")
                await send({"type": "lifespan.shutdown.complete"})
                return


def _terminate_with_supervisor() -> None:
    supervisor = multiprocessing.parent_process()  # set in processes multiprocessing started
    if supervisor is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor.pid:  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)
