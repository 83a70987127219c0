"""Fixtures of the event bus tests: a transport chosen per test, a second "node" bus."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugins_app.events import delivery, get_bus
from plugins_app.events.bus import EventBus
from plugins_app.events.transports.inbound import Inbound
from tests.fixtures.services import free_port, port_open, service_missing, wait_for


@pytest.fixture
def event_transport(settings) -> Iterator:
    """`event_transport(name, **overrides)` switches this process's bus to a transport."""

    def use(name: str, **overrides) -> None:
        delivery.reset()
        settings.CHAMELEON = {
            **settings.CHAMELEON, "EVENT_TRANSPORT": name, "EVENT_STREAM": f"chameleon-test:{uuid.uuid4().hex}",
            "EVENT_POLL_INTERVAL": 0.05, **overrides,
        }

    # Subscriptions other apps made at start-up (AppConfig.ready) must survive the test.
    existing = {subscription.id for subscription in get_bus().subscriptions()}
    yield use
    delivery.reset()
    for subscription in get_bus().subscriptions():
        if subscription.id not in existing:
            get_bus().unsubscribe(subscription)


@pytest.fixture
def shared_stream(monkeypatch) -> str:
    """A stream name for this test that processes started after it inherit."""
    stream = f"chameleon-test:{uuid.uuid4().hex}"
    monkeypatch.setenv("CHAMELEON_EVENT_STREAM", stream)
    return stream


class Node:
    """Another node in this process: its own bus and receivers, as a second process would have."""

    def __init__(self, transport, name: str) -> None:
        self.bus = EventBus(workers=1, queue_size=100_000)
        self.inbound = Inbound(transport, self.bus, origin=f"origin-{name}", consumer=name)
        self.inbound.start()
        assert self.inbound.ready.wait(15), f"node {name} receiver did not start"

    def collect(self, pattern: str = "#", *, group: str | None = None) -> list:
        seen: list = []
        self.bus.subscribe(pattern, seen.append, group=group)
        if group:
            assert self.inbound.ensure_group(group).wait(15)
        return seen

    def stop(self) -> None:
        self.inbound.stop()
        self.bus.clear()


@pytest.fixture
def other_nodes() -> Iterator:
    started: list[Node] = []

    def make(name: str = "other"):
        node = Node(delivery._make_transport(), name)
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


class PrivateRedis:
    """A redis-server of our own on a free port, which a test may stop and start again."""

    def __init__(self, path: str, data_dir: Path) -> None:
        self.path = path
        self.port = free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.path, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open("127.0.0.1", self.port), 10, "the private redis-server to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        wait_for(lambda: not port_open("127.0.0.1", self.port), 10, "the private redis-server to stop")


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if not path:
        service_missing("redis-server is not installed")
    server = PrivateRedis(path, tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def kafka_mock_brokers() -> Iterator[str]:
    """librdkafka's mock cluster (in this process): a real Kafka protocol endpoint."""
    from confluent_kafka import Producer

    holder = Producer({"test.mock.num.brokers": 1})
    metadata = holder.list_topics(timeout=10)
    brokers = ",".join(f"{broker.host}:{broker.port}" for broker in metadata.brokers.values())
    yield brokers
    holder.flush(1)


