"""Fixtures of the service management tests: each registry back end, captured events, listeners."""

from __future__ import annotations

import http.server
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

from plugins_app import events
from plugins_app.discovery import services
from plugins_app.discovery.registry import DatabaseRegistry, EtcdRegistry, RegistryBackend


@pytest.fixture(params=["database", "etcd"])
def registry(request, transactional_db) -> Iterator[RegistryBackend]:
    """Each back end in turn installed as the active registry; etcd under a prefix of its own."""
    if request.param == "database":
        backend: RegistryBackend = DatabaseRegistry()
    else:
        endpoints = request.getfixturevalue("etcd_endpoints")
        backend = EtcdRegistry(endpoints, prefix=f"/chameleon-test/{uuid.uuid4().hex}")
    previous = services.set_registry(backend)
    try:
        yield backend
    finally:
        services.set_registry(previous)
        if isinstance(backend, EtcdRegistry):
            backend.client.delete_prefix(backend.prefix + "/")
        backend.close()


@pytest.fixture
def service_events() -> Iterator[list[events.Event]]:
    """Every `service.*` event published during the test, in order."""
    captured: list[events.Event] = []
    subscription = events.subscribe("service.#", captured.append)
    yield captured
    events.unsubscribe(subscription)


def topics_for(captured: list[events.Event], instance_id: str) -> list[tuple[str, str]]:
    """(topic, reason or new health) of the captured events about one instance."""
    return [
        (event.topic, event.data.get("reason") or event.data.get("health"))
        for event in list(captured)
        if event.data.get("id") == instance_id
    ]


class SwitchableHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET with the status its server currently holds."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        status = self.server.status  # type: ignore[attr-defined]
        self.server.requests += 1  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_listener() -> Iterator[http.server.ThreadingHTTPServer]:
    """A real HTTP server on loopback; set `.status` to change what it answers."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SwitchableHandler)
    server.status = 200  # type: ignore[attr-defined]
    server.requests = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    """A listening TCP socket on loopback (the kernel accepts connections into its backlog)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()
