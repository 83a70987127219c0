"""Storage and cross-node delivery: database, Redis (with outbox recovery) and Kafka transports."""

from __future__ import annotations

import pytest
from django.utils import timezone

from plugins_app.events import delivery, flush, publish, subscribe, unsubscribe
from plugins_app.events.models import Event as EventRow
from plugins_app.events.services import purge_expired_events
from tests.fixtures.services import wait_for


def topics(events) -> list[str]:
    return [event.topic for event in events]


@pytest.mark.django_db
def test_cluster_events_are_stored_and_local_ones_stay_in_the_process(event_transport):
    event_transport("database")
    cluster = publish("test.stored", {"n": 1}, source="plugin:hello")
    publish("test.local_only", {"n": 2}, scope="local")
    row = EventRow.objects.get(event_id=cluster.id)
    assert (row.topic, row.source, row.data, row.dispatched) == ("test.stored", "plugin:hello", {"n": 1}, True)
    assert row.as_envelope() == cluster.as_dict()
    assert not EventRow.objects.filter(topic="test.local_only").exists()


@pytest.mark.django_db
def test_retention_removes_old_events_in_batches(event_transport, settings):
    event_transport("database")
    for n in range(25):
        publish("test.old", {"n": n})
    publish("test.new")
    EventRow.objects.filter(topic="test.old").update(timestamp=timezone.now() - timezone.timedelta(days=8))
    assert purge_expired_events(batch_size=10) == 25
    assert list(EventRow.objects.filter(topic__in=["test.old", "test.new"]).values_list("topic", flat=True)) == [
        "test.new"]
    settings.CHAMELEON = {**settings.CHAMELEON, "EVENT_RETENTION_DAYS": 0}
    assert purge_expired_events() == 0  # 0 keeps events forever


@pytest.mark.django_db(transaction=True)
def test_database_transport_carries_events_to_other_nodes_once_per_node_and_once_per_group(
    event_transport, other_nodes
):
    event_transport("database")
    delivery.start_inbound()
    node_a, node_b = other_nodes("a"), other_nodes("b")
    a_all, b_all = node_a.collect("test.#"), node_b.collect("test.#")
    a_group, b_group = node_a.collect("test.cross", group="workers"), node_b.collect("test.cross", group="workers")
    mine_group: list = []
    mine = subscribe("test.cross", mine_group.append, group="workers")
    try:
        published = [publish("test.cross", {"n": n}) for n in range(30)]
        publish("test.not_crossing", scope="local")
        wait_for(lambda: len(a_all) == len(b_all) == 30, 10, "every node to get every event")
        wait_for(lambda: len(a_group) + len(b_group) + len(mine_group) == 30, 10, "the group to get each event")
        flush()
    finally:
        unsubscribe(mine)
    assert [event.id for event in a_all] == [event.id for event in published]  # in order
    assert a_all[0].as_dict() == published[0].as_dict()
    group_ids = [event.id for event in a_group + b_group + mine_group]
    assert sorted(group_ids) == sorted(event.id for event in published)  # each exactly once


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_redis_transport_once_per_node_and_once_per_group(redis_url, event_transport, other_nodes):
    event_transport("redis", REDIS_URL=redis_url)
    node_a, node_b = other_nodes("a"), other_nodes("b")
    a_all, b_all = node_a.collect(), node_b.collect()
    a_group, b_group = node_a.collect(group="workers"), node_b.collect(group="workers")
    published = [publish("test.redis", {"n": n}) for n in range(50)]
    wait_for(lambda: len(a_all) == len(b_all) == 50, 10, "every node to get every event")
    wait_for(lambda: len(a_group) + len(b_group) == 50, 10, "the group to get each event")
    assert [event.id for event in b_all] == [event.id for event in published]
    assert sorted(event.id for event in a_group + b_group) == sorted(event.id for event in published)
    assert flush(5)
    assert not EventRow.objects.filter(topic="test.redis", dispatched=False).exists()


@pytest.mark.django_db(transaction=True)
def test_outbox_delivers_events_published_while_redis_was_down(private_redis, event_transport, other_nodes):
    event_transport("redis", REDIS_URL=private_redis.url)
    node = other_nodes("a")
    received = node.collect("test.#")
    before = [publish("test.outbox", {"n": n}) for n in range(5)]
    wait_for(lambda: len(received) == 5, 10, "events while Redis is up")

    private_redis.stop()
    during = [publish("test.outbox", {"n": n}) for n in range(5, 15)]
    wait_for(lambda: EventRow.objects.filter(topic="test.outbox", dispatched=False).count() == 10, 10,
             "the events to wait in the outbox")
    assert len(received) == 5

    private_redis.start()
    wait_for(lambda: len(received) == 15, 30, "the outbox to be delivered once Redis is back")
    assert [event.id for event in received] == [event.id for event in before + during]  # in order, none twice
    wait_for(lambda: not EventRow.objects.filter(topic="test.outbox", dispatched=False).exists(), 10,
             "the outbox to be marked sent")


def test_kafka_transport_against_librdkafka_mock_cluster(kafka_mock_brokers, settings, event_transport):
    from plugins_app.events.bus import EventBus
    from plugins_app.events.envelope import Event
    from plugins_app.events.transports import encode
    from plugins_app.events.transports.inbound import Inbound
    from plugins_app.events.transports.kafka import KafkaTransport

    transport = KafkaTransport(kafka_mock_brokers, "chameleon-test:kafka")
    nodes = []
    for name in ("a", "b"):
        bus = EventBus(workers=1)
        inbound = Inbound(KafkaTransport(kafka_mock_brokers, "chameleon-test:kafka"), bus, origin=name, consumer=name)
        all_events: list = []
        group_events: list = []
        bus.subscribe("#", all_events.append)
        bus.subscribe("#", group_events.append, group="workers")
        inbound.start()
        ready = inbound.ensure_group("workers")
        nodes.append((inbound, all_events, group_events, ready))
    try:
        for inbound, _all, _group, ready in nodes:
            assert inbound.ready.wait(30) and ready.wait(30), "kafka consumers were not assigned"
        events = [Event("test.kafka", {"n": n}) for n in range(20)]
        transport.send([encode(event, "publisher") for event in events])
        wait_for(lambda: all(len(all_events) == 20 for _i, all_events, _g, _r in nodes), 30,
                 "both nodes to get every Kafka event")
        wait_for(lambda: sum(len(group) for _i, _a, group, _r in nodes) == 20, 30,
                 "the group to get each Kafka event once")
        assert [event.id for event in nodes[0][1]] == [event.id for event in events]
    finally:
        for inbound, *_ in nodes:
            inbound.stop()
        transport.close()


@pytest.mark.processes
def test_an_event_published_in_a_worker_reaches_this_process(shared_stream, live_worker, event_transport):
    from plugins_app.events.tasks import publish_event

    event_transport("auto", EVENT_STREAM=shared_stream)
    delivery.start_inbound()
    assert delivery.inbound().ready.wait(15)
    seen: list = []
    subscription = subscribe("test.from_worker", seen.append)
    try:
        event_id = publish_event.delay("test.from_worker", {"hello": "web"}).get(timeout=30)
        wait_for(lambda: seen, 15, "the worker's event to arrive here")
    finally:
        unsubscribe(subscription)
    assert seen[0].id == event_id and seen[0].data == {"hello": "web"}
    assert seen[0].node == live_worker.node_name
