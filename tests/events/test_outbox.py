"""The outbox across process deaths: sweepers re-send orphaned events, claims keep one sender, receivers dedup."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid

import pytest
import redis
from django.utils import timezone

from core.metrics import REGISTRY
from plugins_app.events import delivery, publish
from plugins_app.events.bus import EventBus
from plugins_app.events.envelope import Event
from plugins_app.events.models import Event as EventRow
from plugins_app.events.services import claim_events, claim_orphaned_events, store_events
from plugins_app.events.transports import encode
from plugins_app.events.transports.inbound import Inbound, RecentIds
from plugins_app.events.transports.outbound import Outbound
from plugins_app.events.transports.redis import RedisTransport
from tests.fixtures.services import wait_for

#: Run in a child process: publish while Redis is down, then wait to be killed.
PUBLISH_AND_WAIT = """
import sys, time, django
django.setup()
from plugins_app.events import publish
topic, count = sys.argv[1], int(sys.argv[2])
for n in range(count):
    publish(topic, {"n": n})
time.sleep(600)
"""


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def stream_ids(url: str, stream: str) -> list[str]:
    """Every event id in the Redis stream, in stream order: what was actually sent."""
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(fields[b"e"])["id"] for _entry, fields in client.xrange(stream)]
    finally:
        client.close()


def store_orphans(topic: str, count: int, *, age: float = 120.0) -> list[Event]:
    """Outbox rows left by a publisher that is gone: stored, never sent, `age` seconds old."""
    created = time.time() - age
    events = [Event(topic, {"n": n}, ts=created + n / 1000) for n in range(count)]
    store_events(events, origin="0000dead0000beef", dispatched=False)
    return events


def undispatched(topic: str) -> int:
    return EventRow.objects.filter(topic=topic, dispatched=False).count()


def delivered_through(receiver: list) -> Event:
    """Publish a marker from this process and wait for it: everything sent before it has arrived."""
    marker = publish("test.marker")
    wait_for(lambda: marker in receiver, 30, "the marker to arrive")
    return marker


@pytest.fixture
def redis_outbox(private_redis, event_transport):
    """This process's bus on a private Redis with its own stream; returns that stream's name."""

    def use(**overrides) -> str:
        stream = f"chameleon-test:{uuid.uuid4().hex}"
        event_transport("redis", REDIS_URL=private_redis.url, EVENT_STREAM=stream, **overrides)
        return stream

    return use


@pytest.mark.django_db(transaction=True)
def test_events_of_a_publisher_killed_during_an_outage_are_sent_once_by_a_sweeper(
    private_redis, redis_outbox, other_nodes, start_process
):
    stream = redis_outbox(EVENT_OUTBOX_GRACE=1.0, EVENT_OUTBOX_SWEEP_INTERVAL=0.2)
    received = other_nodes("a").collect("test.#")
    private_redis.stop()

    publisher = start_process(
        "publisher", [sys.executable, "-c", PUBLISH_AND_WAIT, "test.orphaned", "40"],
        REDIS_URL=private_redis.url, CHAMELEON_EVENT_TRANSPORT="redis", CHAMELEON_EVENT_STREAM=stream,
    )

    def refused_and_stored() -> bool:
        if not publisher.running():
            pytest.fail(f"the publisher exited early:\n{publisher.output()[-4000:]}", pytrace=False)
        return undispatched("test.orphaned") == 40

    wait_for(refused_and_stored, 60, "the publisher's events to wait in the outbox")
    publisher.kill()  # SIGKILL: its in-memory retry queue dies with it
    publisher.process.wait(10)
    orphans = set(EventRow.objects.filter(topic="test.orphaned").values_list("event_id", flat=True))
    resent_before = metric("event_bus_outbox_resent_total", transport="redis")

    private_redis.start()
    delivery.outbound().start()  # this live process's sender sweeps the outbox
    wait_for(lambda: undispatched("test.orphaned") == 0, 30, "a sweeper to send the orphaned events")
    marker = delivered_through(received)

    assert sorted(stream_ids(private_redis.url, stream)) == sorted([*orphans, marker.id])  # each sent once
    got = [event.id for event in received if event.topic == "test.orphaned"]
    assert sorted(got) == sorted(orphans)  # each received once
    assert [event.data["n"] for event in received if event.topic == "test.orphaned"] == list(range(40))  # oldest first
    assert metric("event_bus_outbox_resent_total", transport="redis") - resent_before == 40
    assert not EventRow.objects.filter(topic="test.orphaned").exclude(claimed_by="").exists()


@pytest.mark.django_db(transaction=True)
def test_sweepers_racing_over_the_same_orphans_send_each_event_once(private_redis, redis_outbox):
    stream = redis_outbox(EVENT_OUTBOX_GRACE=5.0)
    orphans = store_orphans("test.raced", 600)
    sweepers = [Outbound(RedisTransport(private_redis.url, stream)) for _ in range(4)]
    start = threading.Barrier(len(sweepers))
    sent = [0] * len(sweepers)
    errors: list[BaseException] = []

    def sweep(index: int) -> None:
        try:
            start.wait()
            while count := sweepers[index].sweep(limit=20, chunks=1):
                sent[index] += count
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(index,)) for index in range(len(sweepers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for sweeper in sweepers:
        sweeper.close()

    assert not errors
    ids = stream_ids(private_redis.url, stream)
    assert len(ids) == len(set(ids)) == 600  # none twice
    assert set(ids) == {event.id for event in orphans}
    assert sum(sent) == 600
    assert undispatched("test.raced") == 0


@pytest.mark.django_db(transaction=True)
def test_a_publisher_recovering_while_a_sweeper_runs_sends_nothing_twice(private_redis, redis_outbox, other_nodes):
    # Grace 0: the sweeper may take the live publisher's outbox as soon as the rows exist.
    stream = redis_outbox(EVENT_OUTBOX_GRACE=0.0, EVENT_OUTBOX_SWEEP_INTERVAL=0.1)
    received = other_nodes("a").collect("test.#")
    private_redis.stop()
    published = [publish("test.recovering", {"n": n}) for n in range(2000)]
    wait_for(lambda: undispatched("test.recovering") == 2000, 30, "the events to wait in the outbox")
    assert delivery.outbound()._pending  # the publisher still holds them, to retry

    sweeper = Outbound(RedisTransport(private_redis.url, stream))
    stop = threading.Event()
    swept: list[int] = []

    def sweep() -> None:
        while not stop.is_set():
            swept.append(sweeper.sweep(limit=50, chunks=1))
            stop.wait(0.005)

    thread = threading.Thread(target=sweep)
    thread.start()
    try:
        private_redis.start()
        wait_for(lambda: not delivery.outbound()._pending and undispatched("test.recovering") == 0, 60,
                 "the publisher and the sweeper to empty the outbox")
    finally:
        stop.set()
        thread.join(30)
        sweeper.close()
    marker = delivered_through(received)

    ids = [event_id for event_id in stream_ids(private_redis.url, stream) if event_id != marker.id]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} events were sent twice"
    assert set(ids) == {event.id for event in published}
    got = [event.id for event in received if event.topic == "test.recovering"]
    assert sorted(got) == sorted(event.id for event in published)


@pytest.mark.django_db(transaction=True)
def test_the_mark_of_a_resent_batch_waits_for_its_store():
    # The store thread may write a refused batch after the sender re-sent it: the mark
    # goes through the same queue, after that store, so the rows do not stay in the outbox.
    outbound = Outbound(None)
    events = [Event("test.order", {"n": n}) for n in range(3)]
    outbound._apply([("store", events, False), ("mark", [event.id for event in events])])
    assert EventRow.objects.filter(topic="test.order").count() == 3
    assert undispatched("test.order") == 0


@pytest.mark.django_db
def test_claims_keep_one_sender_and_expire_when_their_holder_is_gone():
    now = timezone.now()
    expired, held, young, old, sent = (f"{name:0>32}" for name in ("expired", "held", "young", "old", "sent"))
    for event_id, age, dispatched in ((expired, 90, False), (held, 80, False), (young, 1, False), (old, 70, False),
                                      (sent, 60, True)):
        store_events([Event("test.claims", {}, id=event_id, ts=time.time() - age)], dispatched=dispatched)
    EventRow.objects.filter(event_id=expired).update(claimed_by="gone", claimed_until=now - timezone.timedelta(seconds=1))
    EventRow.objects.filter(event_id=held).update(claimed_by="other", claimed_until=now + timezone.timedelta(seconds=60))

    rows = claim_orphaned_events(owner="me", older_than=30)
    assert [row.event_id for row in rows] == [expired, old]  # oldest first; a held claim and a young row stay
    assert claim_orphaned_events(owner="someone", older_than=30) == []  # claimed now
    assert set(EventRow.objects.filter(claimed_by="me").values_list("event_id", flat=True)) == {expired, old}

    # The live publisher's claim: what another sender holds or sent is not its to send.
    assert claim_events([held, young, sent, old, "f" * 32], owner="me") == {held, sent}
    assert EventRow.objects.get(event_id=young).claimed_by == "me"


def test_a_receiver_drops_an_event_it_has_already_received(private_redis):
    stream = f"chameleon-test:{uuid.uuid4().hex}"
    sender = RedisTransport(private_redis.url, stream)
    bus = EventBus(workers=1)
    inbound = Inbound(RedisTransport(private_redis.url, stream), bus, origin="receiver", consumer="receiver")
    seen: list = []
    grouped: list = []
    bus.subscribe("#", seen.append)
    bus.subscribe("#", grouped.append, group="workers")
    inbound.start()
    try:
        assert inbound.ready.wait(15) and inbound.ensure_group("workers").wait(15)
        events = [Event("test.twice", {"n": n}) for n in range(3)]
        marker = Event("test.marker")
        before = metric("event_bus_events_duplicate_total", transport="redis")
        messages = [encode(event, "publisher") for event in events]
        sender.send(messages)
        sender.send(messages[:2])  # re-sent, as by a sweeper whose claim expired
        sender.send([encode(marker, "publisher")])
        wait_for(lambda: marker in seen and marker in grouped, 15, "the marker to arrive")
    finally:
        inbound.stop()
        sender.close()
    assert [event.id for event in seen] == [event.id for event in [*events, marker]]
    assert [event.id for event in grouped] == [event.id for event in [*events, marker]]
    assert metric("event_bus_events_duplicate_total", transport="redis") - before == 4  # 2 per path


def test_the_dedup_memory_is_bounded():
    recent = RecentIds(size=3)
    assert [recent.seen(event_id) for event_id in "abca"] == [False, False, False, True]
    assert recent.seen("d") is False  # "a" is forgotten now
    assert recent.seen("a") is False and recent.seen("d") is True
    assert len(recent._order) == len(recent._seen) == 3
