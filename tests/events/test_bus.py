"""The in-process bus: pattern semantics, ordering, isolation of failing and slow handlers, overflow."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from plugins_app.events import (
    Event,
    InvalidEvent,
    InvalidTopic,
    get_bus,
    publish,
    subscribe,
    unsubscribe,
)
from plugins_app.events.bus import EventBus
from plugins_app.events.registry import (
    all_event_types,
    get_event_type,
    register_event_type,
    validate_event_data,
)
from plugins_app.events.trie import TopicTrie
from tests.fixtures.services import wait_for

# (pattern, topic, matches)
PATTERN_TABLE = [
    ("plugin.started", "plugin.started", True),
    ("plugin.started", "plugin.stopped", False),
    ("plugin.started", "plugin.started.extra", False),
    ("plugin.*", "plugin.started", True),
    ("plugin.*", "plugin", False),
    ("plugin.*", "plugin.started.extra", False),
    ("*.started", "plugin.started", True),
    ("*.started", "started", False),
    ("*", "plugin", True),
    ("*", "plugin.started", False),
    ("#", "plugin", True),
    ("#", "plugin.started", True),
    ("#", "a.b.c.d", True),
    ("plugin.#", "plugin", True),
    ("plugin.#", "plugin.started", True),
    ("plugin.#", "plugin.a.b", True),
    ("plugin.#", "plugins.started", False),
    ("#.failed", "failed", True),
    ("#.failed", "scheduler.task.failed", True),
    ("#.failed", "scheduler.task.failed.not", False),
    ("scheduler.#.failed", "scheduler.failed", True),
    ("scheduler.#.failed", "scheduler.task.failed", True),
    ("scheduler.#.failed", "scheduler.task.x.failed", True),
    ("scheduler.#.failed", "scheduler.task.completed", False),
    ("scheduler.*.failed", "scheduler.failed", False),
    ("scheduler.*.failed", "scheduler.task.failed", True),
    ("*.*", "a.b", True),
    ("*.*", "a", False),
    ("*.#", "a", True),
    ("*.#", "a.b.c", True),
    ("#.*", "a", True),
    ("#.#", "a.b", True),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("a.*.#", "a.b.c", True),
]


@pytest.fixture
def bus():
    bus = EventBus(workers=2, queue_size=1000, handler_timeout=5.0)
    yield bus
    bus.clear()


@pytest.mark.parametrize(("pattern", "topic", "matches"), PATTERN_TABLE)
def test_pattern_semantics(bus, pattern, topic, matches):
    subscription = bus.subscribe(pattern, lambda event: None)
    assert (subscription in bus.match(topic)) is matches


def test_trie_returns_each_pattern_once_even_with_several_paths():
    trie = TopicTrie()
    trie.add("#.#", "x")
    trie.add("a.#", "y")
    assert sorted(trie.match("a.b.c")) == ["x", "y"]
    assert trie.remove("a.#", "y") and trie.match("a.b") == ["x"] and len(trie) == 1


@pytest.mark.parametrize("bad", ["", "a..b", ".a", "a.", "a b", "a.*", "a.#", "ü", "x" * 201, None, 3])
def test_invalid_topics_are_refused_with_a_clear_message(bad):
    with pytest.raises(InvalidTopic):
        publish(bad, {}, scope="local")


@pytest.mark.parametrize("bad", ["", "a..b", "a.**", "a#", "a.b*"])
def test_invalid_patterns_are_refused(bad):
    with pytest.raises(InvalidTopic):
        subscribe(bad, lambda event: None)


def test_data_must_be_an_object():
    with pytest.raises(InvalidEvent):
        publish("test.demo", ["not", "an", "object"], scope="local")


def test_registry_declares_builtin_topics_and_accepts_custom_ones():
    topics = {event_type.topic for event_type in all_event_types()}
    assert {"plugin.started", "scheduler.task.failed", "config.rolled_back", "node.lost", "alert.fired", "test.*"} <= topics
    assert get_event_type("test.anything").topic == "test.*"
    assert get_event_type("custom.thing") is None
    register_event_type("orders.created", "An order", schema={"type": "object", "required": ["order_id"]},
                        owner="tests", replace=True)
    with pytest.raises(InvalidEvent, match="order_id"):
        validate_event_data("orders.created", {})
    assert validate_event_data("orders.created", {"order_id": 1}) == {"order_id": 1}


def test_envelope_carries_id_topic_source_data_timestamp_node():
    received = []
    subscription = subscribe("test.envelope", received.append)
    try:
        event = publish("test.envelope", {"x": 1}, source="plugin:hello", scope="local")
        wait_for(lambda: received, 5, "the event to be delivered")
    finally:
        unsubscribe(subscription)
    envelope = received[0].as_dict()
    assert envelope == event.as_dict()
    assert set(envelope) == {"id", "topic", "source", "data", "timestamp", "node"}
    assert envelope["timestamp"].endswith("Z") and envelope["source"] == "plugin:hello"
    assert len({publish("test.ids", scope="local").id for _ in range(1000)}) == 1000


def test_each_subscriber_sees_events_in_publish_order(bus):
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    bus.subscribe("order.#", lambda event: seen["a"].append(event.data["n"]), max_queue=10_000)
    bus.subscribe("order.*", lambda event: seen["b"].append(event.data["n"]), max_queue=10_000)

    async def async_handler(event):
        seen["c"].append(event.data["n"])

    bus.subscribe("order.test", async_handler, max_queue=10_000)
    for n in range(5000):
        bus.dispatch(Event("order.test", {"n": n}, scope="local"))
    assert bus.flush(10)
    assert seen["a"] == seen["b"] == seen["c"] == list(range(5000))


def test_publish_returns_before_a_slow_subscriber_handles_anything(bus):
    release = threading.Event()
    bus.subscribe("slow.#", lambda event: release.wait(5))
    started = time.perf_counter()
    for _ in range(100):
        bus.dispatch(Event("slow.topic", scope="local"))
    assert time.perf_counter() - started < 0.5
    release.set()
    assert bus.flush(10)


def test_a_failing_handler_is_counted_logged_and_others_still_get_everything(bus, caplog):
    good = []

    def broken(event):
        raise RuntimeError("boom")

    failing = bus.subscribe("fail.#", broken)
    bus.subscribe("fail.#", good.append)
    for _ in range(50):
        bus.dispatch(Event("fail.now", scope="local"))
    assert bus.flush(10)
    assert len(good) == 50
    assert failing.errors == 50
    assert "boom" in caplog.text and "failed on fail.now" in caplog.text


def test_a_handler_past_its_timeout_is_counted_and_does_not_hold_up_others(bus, caplog):
    release = threading.Event()
    slow = bus.subscribe("t.#", lambda event: release.wait(10), timeout=0.1)
    fast_seen = []
    # More fast subscriptions than workers: they must all progress while `slow` is stuck.
    for index in range(4):
        bus.subscribe("t.#", lambda event, index=index: fast_seen.append(index))
    for _ in range(20):
        bus.dispatch(Event("t.x", scope="local"))
    wait_for(lambda: len(fast_seen) == 80, 5, "the fast handlers to get all events")
    wait_for(lambda: slow.timeouts >= 1, 5, "the slow handler to be counted as timed out")
    wait_for(lambda: "passed its 0.1s timeout" in caplog.text, 5, "the timeout to be logged")
    release.set()
    assert bus.flush(10)
    assert slow.delivered == 20  # the slow subscriber still got every event, in order


async def test_an_async_handler_past_its_timeout_is_cancelled_and_counted(bus):
    seen = []

    async def sometimes_slow(event):
        if event.data["n"] == 0:
            await asyncio.sleep(10)
        seen.append(event.data["n"])

    subscription = bus.subscribe("a.#", sometimes_slow, timeout=0.1)
    for n in range(3):
        bus.dispatch(Event("a.b", {"n": n}, scope="local"))
    for _ in range(100):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.02)
    assert seen == [1, 2] and subscription.timeouts == 1


def test_full_queue_drops_and_counts_never_silently(bus, caplog):
    release = threading.Event()
    subscription = bus.subscribe("q.#", lambda event: release.wait(5), max_queue=10)
    for _ in range(100):
        bus.dispatch(Event("q.x", scope="local"))
    release.set()
    assert bus.flush(10)
    assert subscription.dropped >= 89  # the one being handled may have left the queue first
    assert subscription.delivered + subscription.dropped == 100
    assert "is full" in caplog.text


def test_filter_predicate_narrows_delivery_and_a_raising_filter_is_counted(bus):
    seen = []
    bus.subscribe("f.#", seen.append, filter=lambda event: event.data.get("level") == "error")
    bad = bus.subscribe("f.#", lambda event: None, filter=lambda event: 1 / 0)
    for level in ("info", "error", "debug", "error"):
        bus.dispatch(Event("f.log", {"level": level}, scope="local"))
    assert bus.flush(5)
    assert [event.data["level"] for event in seen] == ["error", "error"]
    assert bad.errors == 4


def test_unsubscribed_handler_gets_nothing_more(bus):
    seen = []
    subscription = bus.subscribe("u.#", seen.append)
    bus.dispatch(Event("u.x", scope="local"))
    assert bus.flush(5)
    bus.unsubscribe(subscription)
    bus.dispatch(Event("u.x", scope="local"))
    assert bus.flush(5) and len(seen) == 1


def test_batch_subscription_receives_lists(bus):
    batches = []
    bus.subscribe("b.#", batches.append, batch=True)
    for n in range(1000):
        bus.dispatch(Event("b.x", {"n": n}, scope="local"))
    assert bus.flush(5)
    assert [event.data["n"] for batch in batches for event in batch] == list(range(1000))


def test_metrics_count_published_delivered_errors_and_drops():
    from core.metrics import REGISTRY

    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (value("event_bus_events_published_total"), value("event_bus_events_delivered_total"),
              value("event_bus_handler_errors_total", reason="error"))
    seen = []
    good = subscribe("m.#", seen.append)
    bad = subscribe("m.#", lambda event: 1 / 0)
    try:
        for _ in range(10):
            publish("m.x", scope="local")
        wait_for(lambda: len(seen) == 10 and bad.errors == 10, 5, "delivery")
        get_bus().report_metrics()
    finally:
        unsubscribe(good)
        unsubscribe(bad)
    assert value("event_bus_events_published_total") - before[0] == 10
    assert value("event_bus_events_delivered_total") - before[1] >= 10
    assert value("event_bus_handler_errors_total", reason="error") - before[2] == 10


@pytest.mark.django_db(transaction=True)
def test_events_published_inside_a_transaction_go_out_after_commit_and_not_on_rollback():
    from django.db import transaction

    seen = []
    subscription = subscribe("tx.#", seen.append)
    try:
        with transaction.atomic():
            publish("tx.committed", scope="local")
            time.sleep(0.1)
            assert seen == []  # not before the commit
        wait_for(lambda: seen, 5, "the event after commit")
        with pytest.raises(RuntimeError), transaction.atomic():
            publish("tx.rolled_back", scope="local")
            raise RuntimeError
        publish("tx.after", scope="local")
        wait_for(lambda: len(seen) == 2, 5, "the next event")
    finally:
        unsubscribe(subscription)
    assert [event.topic for event in seen] == ["tx.committed", "tx.after"]
