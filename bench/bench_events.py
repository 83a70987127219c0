"""In-process event bus benchmarks (SPEC §10), with baselines measured in the same run.

1. publish -> deliver throughput to one subscriber: Chameleon's bus (asynchronous: a
   bounded mailbox and a worker thread) against Django signals and blinker (both call the
   receiver synchronously in the publisher's thread). Target: >= 200,000 events/s per core.
2. wildcard matching with 1 vs 10,000 subscriptions (target: within 2x), both the raw trie
   walk (no cache) and end-to-end publishing with 10,000 non-matching subscriptions.

Run: .venv/bin/python bench/bench_events.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chameleon_site.settings")
os.environ.setdefault("CHAMELEON_DATA_DIR", "/tmp/chameleon-bench")

import django  # noqa: E402

django.setup()

import blinker  # noqa: E402
from django.dispatch import Signal  # noqa: E402

from plugins_app.events import get_bus, publish, subscribe, unsubscribe  # noqa: E402
from plugins_app.events.trie import TopicTrie  # noqa: E402

N = 500_000
ROUNDS = 3


def best(run) -> tuple[float, float]:
    """Best of ROUNDS: (wall seconds, CPU seconds of this process)."""
    results = []
    for _ in range(ROUNDS):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        results.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(results)


def bench_bus() -> tuple[float, float]:
    received = [0]

    def handler(event) -> None:
        received[0] += 1

    subscription = subscribe("bench.#", handler, max_queue=N)
    bus = get_bus()

    def run() -> None:
        received[0] = 0
        for _ in range(N):
            publish("bench.event", {"n": 1}, source="bench", scope="local")
        assert bus.flush(120)
        assert received[0] == N, received[0]

    try:
        return best(run)
    finally:
        unsubscribe(subscription)


def bench_django_signal() -> tuple[float, float]:
    signal = Signal()
    received = [0]

    def receiver(sender, **kwargs) -> None:
        received[0] += 1

    signal.connect(receiver, weak=False)

    def run() -> None:
        for _ in range(N):
            signal.send(sender="bench", topic="bench.event", data={"n": 1})

    return best(run)


def bench_blinker() -> tuple[float, float]:
    signal = blinker.Signal()
    received = [0]

    def receiver(sender, **kwargs) -> None:
        received[0] += 1

    signal.connect(receiver, weak=False)

    def run() -> None:
        for _ in range(N):
            signal.send("bench", topic="bench.event", data={"n": 1})

    return best(run)


def patterns(count: int) -> list[str]:
    """`count` distinct patterns in the shapes people write; none match `svc.orders.created`."""
    shapes = ["svc{i}.orders.*", "svc.orders{i}.#", "*.svc{i}.created", "svc.#.orders{i}", "svc{i}.#",
              "alpha{i}.beta.gamma", "svc.*.created{i}"]
    return [shapes[i % len(shapes)].format(i=i) for i in range(count)]


def build_trie(count: int) -> TopicTrie:
    trie = TopicTrie()
    for pattern in patterns(count - 1):
        trie.add(pattern, pattern)
    trie.add("svc.orders.*", "match")
    return trie


def bench_tries(counts: tuple[int, ...], topic: str = "svc.orders.created", loops: int = 100_000) -> list[float]:
    """Seconds per uncached match for each trie; rounds alternate so machine noise hits both."""
    tries = [build_trie(count) for count in counts]
    for trie in tries:
        assert trie.match(topic) == ["match"]
    timings: list[list[float]] = [[] for _ in tries]
    for _ in range(5):
        for index, trie in enumerate(tries):
            match = trie.match
            start = time.perf_counter()
            for _ in range(loops):
                match(topic)
            timings[index].append((time.perf_counter() - start) / loops)
    return [min(values) for values in timings]


def bench_publish_with_subscriptions(count: int, events: int = 200_000) -> float:
    received = [0]
    bus = get_bus()
    subscriptions = [subscribe(pattern, lambda event: None) for pattern in patterns(count - 1)]
    subscriptions.append(subscribe("svc.orders.*", lambda event: received.__setitem__(0, received[0] + 1),
                                   max_queue=events))
    # Distinct topics, so every publish walks the trie (the per-topic cache cannot help).
    topics = [f"svc.orders.t{i}" for i in range(events)]
    try:
        start = time.perf_counter()
        for topic in topics:
            publish(topic, scope="local")
        assert bus.flush(120) and received[0] == events
        return events / (time.perf_counter() - start)
    finally:
        for subscription in subscriptions:
            unsubscribe(subscription)


def main() -> None:
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {N:,} events, best of {ROUNDS}")
    rows = [("chameleon bus (publish -> worker thread -> handler)", bench_bus()),
            ("django.dispatch.Signal.send (synchronous)", bench_django_signal()),
            ("blinker.Signal.send (synchronous)", bench_blinker())]
    bus_rate = N / rows[0][1][0]
    print(f"{'':55} {'events/s (wall)':>16} {'events/s per CPU-s':>19} {'vs bus':>7}")
    for name, (wall, cpu) in rows:
        print(f"{name:55} {N / wall:16,.0f} {N / cpu:19,.0f} {(N / wall) / bus_rate:6.2f}x")
    print(f"target >= 200,000 events/s per core: {'MET' if N / rows[0][1][1] >= 200_000 else 'NOT MET'}")

    one, thousand, many = bench_tries((1, 1_000, 10_000))
    print(f"\ntrie match (uncached): 1 subscription {one * 1e6:.2f} us; 1,000: {thousand * 1e6:.2f} us; "
          f"10,000: {many * 1e6:.2f} us; 10,000 vs 1 = {many / one:.2f}x "
          f"(target <= 2x: {'MET' if many / one <= 2 else 'NOT MET'})")
    rate_one, rate_many = bench_publish_with_subscriptions(1), bench_publish_with_subscriptions(10_000)
    print(f"publish+deliver, new topic each time: 1 subscription {rate_one:,.0f}/s; "
          f"10,000 subscriptions {rate_many:,.0f}/s; ratio {rate_one / rate_many:.2f}x")


if __name__ == "__main__":
    main()
