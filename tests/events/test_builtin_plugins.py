"""The built-in `redis` (client, Redis Cluster capable) and `kafka` (producer/consumer, the
event transport) plugins, run by a real plugin manager."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
import redis

from plugins_app.builtin.kafka_plugin import KafkaPlugin
from plugins_app.builtin.redis_plugin import RedisPlugin
from plugins_app.contract import Plugin
from plugins_app.events import delivery, publish
from plugins_app.host import PluginManager
from tests.fixtures.services import free_port, port_open, wait_for


class CounterPlugin(Plugin):
    """Another plugin that uses the `redis` service."""

    name = "counter"
    version = "1.0.0"
    dependencies = ("redis>=1,<2",)
    permissions = ("services:get",)

    def start(self, ctx: Any) -> None:
        self.redis = ctx.get_service("redis")

    def bump(self) -> int:
        return self.redis.incr("chameleon-test:counter")


def manager_with(tmp_path, configs: dict[str, dict[str, Any]], *classes: type[Plugin]) -> PluginManager:
    manager = PluginManager(node="test-node", persist=False, publish_events=False, data_root=tmp_path,
                            configs=configs)
    for cls in classes:
        manager.register(cls)
    return manager


def test_redis_plugin_is_idle_without_a_url(tmp_path, settings):
    settings.CHAMELEON = {**settings.CHAMELEON, "REDIS_URL": ""}
    manager = manager_with(tmp_path, {}, RedisPlugin)
    assert manager.start("redis")
    status = manager.entries["redis"].instance.health()
    assert status.healthy and "not configured" in status.message
    manager.stop_all()


def test_redis_plugin_shares_a_client_and_fails_when_unreachable(tmp_path, private_redis):
    manager = manager_with(tmp_path, {"redis": {"url": private_redis.url}}, RedisPlugin, CounterPlugin)
    assert manager.start("redis") and manager.start("counter")
    plugin = manager.entries["redis"].instance
    assert plugin.set("greeting", "hi") and plugin.get("greeting") == "hi"
    assert manager.entries["counter"].instance.bump() == 1
    assert plugin.health().healthy
    private_redis.stop()
    assert not plugin.health().healthy
    manager.stop_all()

    refused = manager_with(tmp_path, {"redis": {"url": private_redis.url, "timeout": 1}}, RedisPlugin)
    assert refused.start("redis") is False and refused.entries["redis"].state == "failed"


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is valid and free too."""
    while True:
        port = free_port()
        if port + 10000 <= 65535 and not port_open("127.0.0.1", port + 10000):
            return port


@pytest.fixture
def redis_cluster(tmp_path, private_redis) -> str:
    """A one-node Redis Cluster (all 16384 slots on one private redis-server)."""
    port = cluster_port()
    cluster = subprocess.Popen(
        [private_redis.path, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", str(tmp_path / "nodes.conf"), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        wait_for(lambda: _answers(client), 10, "the cluster node to start")
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_for(lambda: client.cluster("info")["cluster_state"] == "ok", 10, "the cluster to be ok")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        cluster.terminate()
        cluster.wait(10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        time.sleep(0.05)
        return False


def test_redis_plugin_speaks_to_a_redis_cluster(tmp_path, redis_cluster):
    manager = manager_with(tmp_path, {"redis": {"url": redis_cluster, "cluster": True}}, RedisPlugin)
    assert manager.start("redis"), manager.entries["redis"].error
    plugin = manager.entries["redis"].instance
    for key in ("a", "b", "{user}:1", "{user}:2"):
        assert plugin.set(key, key.upper())
    assert [plugin.get(key) for key in ("a", "{user}:2")] == ["A", "{USER}:2"]
    status = plugin.health()
    assert status.healthy and status.details == {"cluster": True, "nodes": 1}
    manager.stop_all()


@pytest.mark.django_db(transaction=True)
def test_kafka_plugin_produces_consumes_and_carries_the_event_bus(tmp_path, kafka_mock_brokers, event_transport,
                                                                  other_nodes, settings):
    event_transport("database")
    manager = manager_with(tmp_path, {"kafka": {"brokers": kafka_mock_brokers.split(","), "event_transport": True,
                                                "stream": "chameleon-test.plugin"}}, KafkaPlugin)
    assert manager.start("kafka"), manager.entries["kafka"].error
    plugin = manager.entries["kafka"].instance
    try:
        assert plugin.health().healthy and plugin.health().details["event_transport"] is True
        # Producer/consumer for other plugins.
        consumer = plugin.consumer("tests", ["chameleon-test.orders"])
        plugin.produce("chameleon-test.orders", {"id": 1})
        plugin.flush()
        message = None
        deadline = time.monotonic() + 30
        while message is None and time.monotonic() < deadline:
            candidate = consumer.poll(0.5)
            if candidate is not None and candidate.error() is None:
                message = candidate
        consumer.close()
        assert message is not None and message.value() == b'{"id": 1}'

        # The bus now sends cluster events through Kafka: another node receives them.
        node = other_nodes("b")
        assert node.inbound.name == "kafka"
        received = node.collect("test.#")
        event = publish("test.via_kafka", {"n": 1})
        wait_for(lambda: received, 30, "the event to arrive through Kafka")
        assert received[0].id == event.id
    finally:
        manager.stop_all()
    assert delivery.outbound().transport is None  # back to the configured (database) transport
