"""The in-process event bus: subscriptions on a topic trie, one bounded mailbox each.

`EventBus.dispatch()` (the publisher's side) only matches the topic -- a dictionary hit
for topics seen before, the trie otherwise -- and appends the event to each matching
subscription's mailbox, so publishing never waits for a handler. A small pool of worker
threads drains mailboxes; a subscription is drained by one worker at a time, so each
subscriber sees events in publish order. Coroutine handlers run on the event loop that
was running when they subscribed (or on the bus's own loop). A handler that raises or
passes its timeout is counted and logged; a sync handler stuck past its timeout leaves
its worker behind and a fresh worker takes over the others. Full mailboxes drop and count.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from plugins_app.events import metrics
from plugins_app.events.envelope import Event, validate_pattern
from plugins_app.events.trie import TopicTrie

logger = logging.getLogger("chameleon.events")

#: Events a worker drains from one mailbox before letting other subscriptions run.
FAIRNESS_BATCH = 512
#: Topics whose matching subscriptions are remembered (the cache is cleared when full).
TOPIC_CACHE_SIZE = 10_000


class Subscription:
    """A handler for the events whose topic matches `pattern` (see `EventBus.subscribe`)."""

    __slots__ = (
        "id", "pattern", "handler", "group", "filter", "is_async", "loop", "timeout", "max_queue", "batch",
        "name", "mailbox", "scheduled", "running", "draining", "active", "delivered", "dropped", "errors",
        "timeouts",
    )

    _ids = itertools.count(1)

    def __init__(self, pattern: str, handler: Callable[..., Any], *, group: str | None, filter: Any,
                 timeout: float, max_queue: int, batch: bool, loop: asyncio.AbstractEventLoop | None,
                 name: str | None) -> None:
        self.id = next(self._ids)
        self.pattern = pattern
        self.handler = handler
        self.group = group
        self.filter = filter
        self.is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            type(handler).__call__ if not inspect.isfunction(handler) else None
        )
        self.loop = loop
        self.timeout = timeout
        self.max_queue = max_queue
        self.batch = batch
        self.name = name or getattr(handler, "__qualname__", repr(handler))
        self.mailbox: deque[Event] = deque()
        self.scheduled = False
        self.running = threading.Lock()
        self.draining = False
        self.active = True
        self.delivered = self.dropped = self.errors = self.timeouts = 0

    def __repr__(self) -> str:
        group = f", group={self.group!r}" if self.group else ""
        return f"<Subscription {self.id} {self.pattern!r} -> {self.name}{group}>"


class _Worker:
    __slots__ = ("thread", "busy", "abandoned", "flagged")

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.busy: tuple[Subscription, float] | None = None
        self.abandoned = False
        self.flagged: tuple[Subscription, float] | None = None


class EventBus:
    """Topic-pattern pub/sub inside one process. Thread-safe; survives fork (threads restart)."""

    def __init__(self, *, workers: int = 4, queue_size: int = 10_000, handler_timeout: float = 10.0) -> None:
        self.worker_count = workers
        self.queue_size = queue_size
        self.handler_timeout = handler_timeout
        self._trie = TopicTrie()
        self._subscriptions: dict[int, Subscription] = {}
        self._cache: dict[str, tuple[Subscription, ...]] = {}
        self._lock = threading.RLock()
        self._log_counts: dict[tuple[int, str], int] = {}
        #: Published events not yet added to the Prometheus counter (the watchdog adds them).
        self.published = 0
        self._published_reported = 0
        self._reset_runtime()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset_runtime)

    def _reset_runtime(self) -> None:
        """Fresh threads and locks (also in a forked child, where the parent's threads are gone)."""
        self._pid = os.getpid()
        self._ready: queue.SimpleQueue[Subscription | None] = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        self._started = False
        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        for subscription in getattr(self, "_subscriptions", {}).values():
            subscription.running = threading.Lock()
            subscription.scheduled = subscription.draining = False
            if subscription.mailbox:
                subscription.scheduled = True
                self._ready.put(subscription)

    # --- subscriptions -----------------------------------------------------------------
    def subscribe(
        self,
        pattern: str,
        handler: Callable[..., Any],
        *,
        group: str | None = None,
        filter: Callable[[Event], bool] | None = None,  # noqa: A002 - the public keyword
        timeout: float | None = None,
        max_queue: int | None = None,
        batch: bool = False,
        name: str | None = None,
    ) -> Subscription:
        validate_pattern(pattern)
        if not callable(handler):
            raise TypeError("An event handler must be callable.")
        if filter is not None and not callable(filter):
            raise TypeError("An event filter must be a callable returning a bool.")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        subscription = Subscription(
            pattern, handler, group=group or None, filter=filter,
            timeout=self.handler_timeout if timeout is None else timeout,
            max_queue=max_queue or self.queue_size, batch=batch, loop=loop, name=name,
        )
        if not subscription.is_async:
            subscription.loop = None
        elif subscription.loop is None:
            subscription.loop = self._own_loop()
        with self._lock:
            self._trie.add(pattern, subscription)
            self._subscriptions[subscription.id] = subscription
            self._cache = {}
        metrics.subscriptions.set(len(self._subscriptions))
        self._ensure_started()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if self._subscriptions.pop(subscription.id, None) is None:
                return
            subscription.active = False
            self._trie.remove(subscription.pattern, subscription)
            self._cache = {}
            subscription.mailbox.clear()
        metrics.subscriptions.set(len(self._subscriptions))

    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions.values())

    def groups(self) -> set[str]:
        return {s.group for s in self._subscriptions.values() if s.group}

    def match(self, topic: str) -> tuple[Subscription, ...]:
        """The subscriptions whose pattern matches `topic` (cached per topic)."""
        subscriptions = self._cache.get(topic)
        if subscriptions is None:
            with self._lock:
                subscriptions = tuple(self._trie.match(topic))
                if len(self._cache) >= TOPIC_CACHE_SIZE:
                    self._cache = {}
                self._cache[topic] = subscriptions
        return subscriptions

    # --- delivery ----------------------------------------------------------------------
    def dispatch(self, event: Event, *, groups: bool = True, plain: bool = True, group: str | None = None) -> int:
        """Queue `event` for matching subscriptions; never runs a handler. Returns how many.

        `plain` / `groups` select subscriptions without / with a group; `group` restricts
        delivery to that one group (the transport hands each group its share).
        """
        queued = 0
        for subscription in self.match(event.topic):
            if subscription.group is None:
                if not plain:
                    continue
            elif not groups or (group is not None and subscription.group != group):
                continue
            mailbox = subscription.mailbox
            if len(mailbox) >= subscription.max_queue:
                self._overflow(subscription, event)
                continue
            mailbox.append(event)
            queued += 1
            if not subscription.scheduled:
                subscription.scheduled = True
                self._schedule(subscription)
        return queued

    def _schedule(self, subscription: Subscription) -> None:
        if subscription.is_async:
            try:
                subscription.loop.call_soon_threadsafe(self._start_async_drain, subscription)
            except RuntimeError:  # its event loop is closed: the subscriber is gone
                self.unsubscribe(subscription)
        else:
            if not self._started:
                self._ensure_started()
            self._ready.put(subscription)

    def _overflow(self, subscription: Subscription, event: Event) -> None:
        subscription.dropped += 1
        metrics.dropped.labels(queue="subscription").inc()
        if self._should_log(subscription.id, "overflow"):
            logger.warning(
                "Event queue of %r is full (%d); dropped %s (%d dropped so far)",
                subscription, subscription.max_queue, event.topic, subscription.dropped,
            )

    def _should_log(self, key: int, kind: str) -> bool:
        """Log the first 10 occurrences, then every 1,000th: counted always, logged sparingly."""
        count = self._log_counts.get((key, kind), 0) + 1
        self._log_counts[(key, kind)] = count
        return count <= 10 or count % 1000 == 0

    def _handler_failed(self, subscription: Subscription, event: Event | None, reason: str) -> None:
        subscription.errors += 1
        metrics.handler_errors.labels(reason=reason).inc()
        if self._should_log(subscription.id, reason):
            logger.exception(
                "Event %s handler %r failed on %s (%d errors so far)",
                reason, subscription, event.topic if event else "a batch", subscription.errors,
            )

    # --- sync workers ------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._started and self._pid == os.getpid():
            return
        with self._start_lock:
            if self._started:
                return
            for _ in range(self.worker_count):
                self._spawn_worker()
            threading.Thread(target=self._watch, name="chameleon-events-watchdog", daemon=True).start()
            self._started = True

    def _spawn_worker(self) -> _Worker:
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._work, args=(worker,), name=f"chameleon-events-{len(self._workers)}", daemon=True
        )
        self._workers.append(worker)
        worker.thread.start()
        return worker

    def _work(self, worker: _Worker) -> None:
        ready = self._ready
        while not worker.abandoned:
            subscription = ready.get()
            if subscription is None:
                break
            if not subscription.running.acquire(blocking=False):
                continue  # another worker drains it and looks again when it is done
            try:
                if subscription.active:
                    self._drain(subscription, worker)
            finally:
                subscription.running.release()
            subscription.scheduled = False
            if subscription.mailbox and subscription.active:
                subscription.scheduled = True
                ready.put(subscription)
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)

    def _drain(self, subscription: Subscription, worker: _Worker) -> None:
        mailbox = subscription.mailbox
        handler = subscription.handler
        predicate = subscription.filter
        clock = time.monotonic
        count = 0
        if subscription.batch:
            events = [mailbox.popleft() for _ in range(min(len(mailbox), FAIRNESS_BATCH))]
            if predicate is not None:
                events = self._filtered(subscription, events)
            if events:
                started = clock()
                worker.busy = (subscription, started)
                try:
                    handler(events)
                    count = len(events)
                except Exception:
                    self._handler_failed(subscription, None, "error")
                worker.busy = None
                if clock() - started > subscription.timeout:
                    self._late(subscription, worker, started)
        else:
            timeout = subscription.timeout
            popleft = mailbox.popleft
            while mailbox and count < FAIRNESS_BATCH:
                event = popleft()
                if predicate is not None and not self._accepts(subscription, event):
                    continue
                started = clock()
                worker.busy = (subscription, started)
                try:
                    handler(event)
                    count += 1
                except Exception:
                    self._handler_failed(subscription, event, "error")
                worker.busy = None
                if clock() - started > timeout:
                    self._late(subscription, worker, started)
                if worker.abandoned:
                    break
        if count:
            subscription.delivered += count
            metrics.delivered.inc(count)

    def _filtered(self, subscription: Subscription, events: list[Event]) -> list[Event]:
        kept = []
        for event in events:
            try:
                if subscription.filter(event):
                    kept.append(event)
            except Exception:
                self._handler_failed(subscription, event, "filter")
        return kept

    def _accepts(self, subscription: Subscription, event: Event) -> bool:
        try:
            return bool(subscription.filter(event))
        except Exception:
            self._handler_failed(subscription, event, "filter")
            return False

    def _late(self, subscription: Subscription, worker: _Worker, started: float) -> None:
        """A handler returned after its timeout: count it unless the watchdog already did."""
        flagged = worker.flagged
        if flagged is None or flagged[0] is not subscription or flagged[1] != started:
            self._timed_out(subscription, started)

    def _timed_out(self, subscription: Subscription, started: float) -> None:
        subscription.timeouts += 1
        metrics.handler_errors.labels(reason="timeout").inc()
        if self._should_log(subscription.id, "timeout"):
            logger.error(
                "Event handler %r passed its %.3gs timeout (running %.3gs; %d timeouts so far)",
                subscription, subscription.timeout, time.monotonic() - started, subscription.timeouts,
            )

    def _watch(self) -> None:
        """Flag handlers past their timeout, replace their workers, publish the queue gauge."""
        while not self._stopping.wait(0.05):
            now = time.monotonic()
            for worker in list(self._workers):
                busy = worker.busy
                if busy is None or worker.flagged is busy or worker.abandoned:
                    continue
                subscription, started = busy
                if now - started > subscription.timeout:
                    worker.flagged = busy
                    self._timed_out(subscription, started)
                    # The stuck handler keeps its subscription (and so its order); the
                    # other subscriptions get a fresh worker in its place.
                    worker.abandoned = True
                    active = sum(1 for w in self._workers if not w.abandoned)
                    if active < self.worker_count:
                        self._spawn_worker()
            self.report_metrics()

    def report_metrics(self) -> None:
        with self._lock:
            published = self.published
            if published != self._published_reported:
                metrics.published.inc(published - self._published_reported)
                self._published_reported = published
        metrics.queue_size.set(sum(len(s.mailbox) for s in list(self._subscriptions.values())))

    # --- async handlers ----------------------------------------------------------------
    def _own_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="chameleon-events-loop", daemon=True).start()
                self._loop = loop
            return self._loop

    def _start_async_drain(self, subscription: Subscription) -> None:
        if subscription.draining:
            return
        subscription.draining = True
        subscription.loop.create_task(self._drain_async(subscription))

    async def _drain_async(self, subscription: Subscription) -> None:
        mailbox = subscription.mailbox
        count = 0
        try:
            while mailbox and subscription.active:
                if subscription.batch:
                    events = [mailbox.popleft() for _ in range(min(len(mailbox), FAIRNESS_BATCH))]
                    if subscription.filter is not None:
                        events = self._filtered(subscription, events)
                    if events and await self._await_handler(subscription, events, None):
                        count += len(events)
                    continue
                event = mailbox.popleft()
                if subscription.filter is not None:
                    try:
                        if not subscription.filter(event):
                            continue
                    except Exception:
                        self._handler_failed(subscription, event, "filter")
                        continue
                if await self._await_handler(subscription, event, event):
                    count += 1
        finally:
            if count:
                subscription.delivered += count
                metrics.delivered.inc(count)
            subscription.draining = False
            subscription.scheduled = False
            if mailbox and subscription.active:
                subscription.scheduled = True
                self._start_async_drain(subscription)

    async def _await_handler(self, subscription: Subscription, argument: Any, event: Event | None) -> bool:
        started = time.monotonic()
        try:
            await asyncio.wait_for(subscription.handler(argument), subscription.timeout)
            return True
        except TimeoutError:
            self._timed_out(subscription, started)
        except Exception:
            self._handler_failed(subscription, event, "error")
        return False

    # --- tests and shutdown ------------------------------------------------------------
    def idle(self) -> bool:
        return not any(
            s.mailbox or s.draining or s.running.locked() for s in list(self._subscriptions.values())
        )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event has been handled (or `timeout`); True when idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.001)
        return self.idle()

    def clear(self) -> None:
        """Drop every subscription (tests)."""
        for subscription in self.subscriptions():
            self.unsubscribe(subscription)
