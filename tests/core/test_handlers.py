"""The web process's ASGI pieces (core/handlers.py): Django's handler run in one thread hop per
request, with Django's behaviour for sync and async views, bodies and streams; and the lifespan."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from core.handlers import ASGIHandler, Lifespan

seen_threads: list[int] = []


def sync_view(request):
    seen_threads.append(threading.get_ident())
    return JsonResponse({"view": "sync", "query": request.GET.get("q", "")})


async def async_view(request):
    await asyncio.sleep(0)
    return JsonResponse({"view": "async"})


@csrf_exempt
def echo_view(request):
    return HttpResponse(request.body[::-1], content_type="text/plain")


def stream_view(request):
    return StreamingHttpResponse((f"part{n};".encode() for n in range(3)), content_type="text/plain")


urlpatterns = [
    path("sync", sync_view),
    path("async", async_view),
    path("echo", echo_view),
    path("stream", stream_view),
]


@pytest.fixture
def handler(settings) -> ASGIHandler:
    settings.ROOT_URLCONF = __name__
    return ASGIHandler()


def call(app, path: str, *, method: str = "GET", body: bytes = b"", query: str = "") -> tuple[int, dict, bytes]:
    async def run() -> tuple[int, dict, bytes]:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
            "root_path": "", "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        }
        messages: list[dict] = [{"type": "http.request", "body": body, "more_body": False}]
        finished = asyncio.Event()
        sent: list[dict] = []

        async def receive() -> dict:
            if messages:
                return messages.pop(0)
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)
        finished.set()
        start = sent[0]
        return (start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]},
                b"".join(message.get("body", b"") for message in sent[1:]))

    return asyncio.run(run())


def test_a_sync_view_runs_behind_the_whole_middleware_chain(handler):
    status, headers, body = call(handler, "/sync", query="q=yes")
    assert status == 200
    assert json.loads(body) == {"view": "sync", "query": "yes"}
    assert headers["x-request-id"]  # core.middleware.RequestIdMiddleware ran
    assert headers["x-frame-options"] == "DENY"  # so did Django's


def test_async_views_still_work(handler):
    status, _, body = call(handler, "/async")
    assert (status, json.loads(body)) == (200, {"view": "async"})


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
def test_request_bodies_and_streamed_responses_pass_through(handler):
    assert call(handler, "/echo", method="POST", body=b"abc")[2] == b"cba"
    assert call(handler, "/stream")[2] == b"part0;part1;part2;"


def test_unknown_paths_are_djangos_404(handler):
    assert call(handler, "/nowhere")[0] == 404


def test_each_request_gets_a_thread_of_its_own_off_the_event_loop(handler):
    seen_threads.clear()
    call(handler, "/sync")
    call(handler, "/sync")
    assert threading.get_ident() not in seen_threads
    assert len(seen_threads) == 2


def test_lifespan_runs_the_shutdown_hook_once_the_server_stops():
    stopped: list[str] = []

    async def run() -> list[dict]:
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[dict] = []

        async def receive() -> dict:
            return inbox.pop(0)

        async def send(message: dict) -> None:
            sent.append(message)

        await Lifespan(on_shutdown=lambda: stopped.append("node"))({"type": "lifespan"}, receive, send)
        return sent

    sent = asyncio.run(run())
    assert [message["type"] for message in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert stopped == ["node"]


def test_a_failing_shutdown_hook_still_lets_the_server_stop():
    async def run() -> list[dict]:
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[dict] = []

        async def receive() -> dict:
            return inbox.pop(0)

        async def send(message: dict) -> None:
            sent.append(message)

        def broken() -> None:
            raise RuntimeError("database gone")

        await Lifespan(on_shutdown=broken)({"type": "lifespan"}, receive, send)
        return sent

    assert asyncio.run(run())[-1] == {"type": "lifespan.shutdown.complete"}
