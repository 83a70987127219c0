"""Against the real ASGI server: a client that stops reading never stalls the others."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token

from plugins_app.events import flush, publish
from tests.fixtures.services import wait_for

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

EVENTS = 2000
BURST = 200


@pytest.fixture
def ws_buffer(monkeypatch) -> int:
    # Above one receiver batch (500), so a reading client keeps up with bursts.
    monkeypatch.setenv("CHAMELEON_EVENT_WS_BUFFER", "600")
    return 600


def stalled_client(url: str, token: str) -> socket.socket:
    """Open /ws/events/ by hand and never read again (a tiny receive buffer, so it backs up)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /ws/events/?topics=test.flood HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {url}\r\nAuthorization: Token {token}\r\n\r\n".encode()
    )
    assert b" 101 " in sock.recv(1024).split(b"\r\n", 1)[0]
    return sock


def dropped_for_websockets(url: str, token: str) -> float:
    request = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Token {token}"})
    body = urllib.request.urlopen(request, timeout=10).read().decode()
    return sum(float(value) for value in re.findall(
        r'^event_bus_events_dropped_total\{[^}]*queue="websocket"[^}]*\} (\S+)$', body, re.M))


def test_a_client_that_stops_reading_never_stalls_the_others(ws_buffer, shared_stream, event_transport, live_web):
    from websockets.sync.client import connect

    event_transport("auto", EVENT_STREAM=shared_stream)
    user = User.objects.create_user("watcher", password="x")
    user.groups.add(Group.objects.get(name="viewer"))
    token = Token.objects.create(user=user).key
    stalled = stalled_client(live_web.url, token)
    host = live_web.url.removeprefix("http://")
    received: list[int] = []
    with connect(f"ws://{host}/ws/events/?topics=test.flood", origin=live_web.url, ping_interval=None,
                 additional_headers={"Authorization": f"Token {token}"}, max_size=None) as reader:
        while json.loads(reader.recv(timeout=10))["type"] != "backlog_end":
            pass

        def read() -> None:
            while len(received) < EVENTS:
                message = json.loads(reader.recv(timeout=60))
                if message["type"] == "event":
                    received.append(message["event"]["data"]["n"])

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        padding = "x" * 8000  # enough bytes to fill the stalled client's socket buffers
        # In bursts the reading client's own buffer (600) always holds, however slow this
        # machine is; the stalled client never reads, so its buffer overflows all the same.
        for start in range(0, EVENTS, BURST):
            for n in range(start, start + BURST):
                publish("test.flood", {"n": n, "padding": padding})
            wait_for(lambda end=start + BURST: len(received) >= end, 60,
                     f"the reading client to get events up to {start + BURST}")
        flush(30)
    assert received == list(range(EVENTS))  # all of them, in order, despite the stalled one
    wait_for(lambda: dropped_for_websockets(live_web.url, token) > 0, 20,
             "the stalled client's drops to be counted on /metrics")
    # Once the stalled client reads again, it is told how many events it lost.
    assert read_until(stalled, b'{"type":"dropped","count":', deadline=30)
    stalled.close()


def read_until(sock: socket.socket, marker: bytes, deadline: float) -> bool:
    sock.settimeout(deadline)
    tail = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return False
        if marker in tail + chunk:
            return True
        tail = chunk[-len(marker):]
    return False
