"""Cross-process delivery: the outbound sender (with its outbox) and the inbound receivers.

The transport is chosen by `CHAMELEON["EVENT_TRANSPORT"]`: `auto` picks Redis when
`REDIS_URL` is set, else Kafka when `KAFKA_BROKERS` is, else the database (the stored rows
are the messages; every node polls them). A transport implements `send(messages)`,
`receive_node(stop, on_message, ready)` (every event, once per node) and
`receive_group(group, consumer, stop, on_message, ready)` (once per cluster per group).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from plugins_app.events import metrics
from plugins_app.events.envelope import Event

logger = logging.getLogger("chameleon.events")

#: Events kept in memory while the transport is down (they are in the database too).
PENDING_LIMIT = 100_000
SEND_BATCH = 500


def transport_name() -> str:
    from core.conf import chameleon_settings

    mode = chameleon_settings.EVENT_TRANSPORT
    if mode == "auto":
        if chameleon_settings.REDIS_URL:
            return "redis"
        return "kafka" if chameleon_settings.KAFKA_BROKERS else "database"
    return mode


def make_transport() -> Any:
    """The configured transport object, or None for the embedded database transport."""
    from core.conf import chameleon_settings

    name = transport_name()
    if name == "redis":
        from plugins_app.events.transports.redis import RedisTransport

        return RedisTransport(chameleon_settings.REDIS_URL, chameleon_settings.EVENT_STREAM)
    if name == "kafka":
        from plugins_app.events.transports.kafka import KafkaTransport

        return KafkaTransport(chameleon_settings.KAFKA_BROKERS, chameleon_settings.EVENT_STREAM)
    return None


def encode(event: Event, origin: str) -> str:
    return json.dumps({**event.as_dict(), "origin": origin}, separators=(",", ":"), default=str)


def _origin() -> str:
    from plugins_app.events.delivery import process_origin

    return process_origin()


class Outbound:
    """Stores cluster events and sends them; what the transport refuses waits in the outbox."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.pid = os.getpid()
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._store_queue: queue.SimpleQueue[tuple[list[Event], bool]] = queue.SimpleQueue()
        self._pending: deque[Event] = deque()
        self._unsent = 0
        self._count_lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._start_lock = threading.Lock()
        self.transport_up = True
        self._warned_storage = False
        self._closed = False

    def pid_changed(self) -> bool:
        return self.pid != os.getpid()

    def submit(self, event: Event) -> None:
        from plugins_app.events.delivery import running_in_event_loop

        with self._count_lock:
            self._unsent += 1
        if self.transport is not None:
            # The sender sends first and stores after, so neither the publisher nor the
            # latency to other nodes waits on the database.
            self._thread("send", self._send_loop)
            self._queue.put(event)
        elif running_in_event_loop():
            # No database calls on an event loop: a thread stores it.
            self._thread("store", self._store_loop)
            self._store_queue.put(([event], True))
        else:
            self._store([event], dispatched=True)
            self._done(1)

    def _store(self, events: list[Event], *, dispatched: bool) -> None:
        from plugins_app.events import services

        try:
            services.store_events(events, origin=_origin(), dispatched=dispatched)
        except Exception:  # noqa: BLE001 - no database must not stop the event
            if not self._warned_storage:
                self._warned_storage = True
                logger.warning("Could not store events (%s, ...); they are delivered but not kept",
                               events[0].topic, exc_info=True)

    def _thread(self, name: str, target: Callable[[], None]) -> None:
        if name in self._threads:
            return
        with self._start_lock:
            if name not in self._threads:
                thread = threading.Thread(target=target, name=f"chameleon-events-{name}", daemon=True)
                self._threads[name] = thread
                thread.start()

    def _store_loop(self) -> None:
        from django.db import connection

        while True:
            batches = [self._store_queue.get()]
            while len(batches) < SEND_BATCH:
                try:
                    batches.append(self._store_queue.get_nowait())
                except queue.Empty:
                    break
            for dispatched in (True, False):
                events = [event for batch, sent in batches if sent is dispatched for event in batch]
                if events:
                    self._store(events, dispatched=dispatched)
            self._done(sum(len(batch) for batch, _sent in batches))
            if self._store_queue.empty():
                # Idle: give the connection back rather than hold it open between bursts.
                try:
                    connection.close()
                except Exception:  # noqa: BLE001 - this thread must never die
                    logger.debug("Closing the event store connection failed", exc_info=True)

    def close(self) -> None:
        self._closed = True
        self.transport.close()

    def _send_loop(self) -> None:
        backoff = 0.1
        while not self._closed:
            batch: list[Event] = []
            try:
                batch.append(self._queue.get(timeout=backoff if self._pending else None))
                while len(batch) < SEND_BATCH:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            if batch:
                self._pending.extend(batch)
                overflow = len(self._pending) - PENDING_LIMIT
                for _ in range(max(0, overflow)):
                    self._pending.popleft()  # still stored, marked not dispatched
                    metrics.dropped.labels(queue="outbox").inc()
            metrics.outbox_pending.set(len(self._pending))
            sent = self._relay()
            backoff = 0.1 if sent else min(backoff * 2, 5.0)
            if batch:
                # Stored after sending, by the store thread: what the transport refused is
                # kept as the outbox (dispatched=False).
                self._thread("store", self._store_loop)
                self._store_queue.put((batch, sent))

    def _relay(self) -> bool:
        """Send pending events oldest first; False when the transport refused them."""
        from plugins_app.events import services

        origin = _origin()
        while self._pending:
            chunk = [self._pending[i] for i in range(min(len(self._pending), SEND_BATCH))]
            try:
                self.transport.send([encode(event, origin) for event in chunk])
            except Exception as exc:  # noqa: BLE001 - every client error means "down"
                metrics.transport_errors.labels(transport=self.transport.name).inc()
                if self.transport_up:
                    self.transport_up = False
                    logger.warning("Event transport %s is down (%s); %d events wait in the outbox",
                                   self.transport.name, exc, len(self._pending))
                return False
            for _ in chunk:
                self._pending.popleft()
            if not self.transport_up:
                logger.warning("Event transport %s is back; sent %d events from the outbox",
                               self.transport.name, len(chunk))
                self._mark(services, chunk, dispatched=True)
                if not self._pending:
                    self.transport_up = True
        metrics.outbox_pending.set(0)
        return True

    def _mark(self, services: Any, events: list[Event], *, dispatched: bool) -> None:
        from django.db import connection

        try:
            services.mark_dispatched([event.id for event in events], dispatched=dispatched)
        except Exception:  # noqa: BLE001 - the sent flag is bookkeeping
            logger.debug("Could not mark events dispatched=%s", dispatched, exc_info=True)
        finally:
            # Only during and after an outage: do not keep a connection in the sender thread.
            try:
                connection.close()
            except Exception:  # noqa: BLE001
                pass

    def _done(self, count: int) -> None:
        with self._count_lock:
            self._unsent -= count

    def flush(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._unsent <= 0 and not self._pending:
                return True
            time.sleep(0.002)
        return False


class Inbound:
    """Receivers that bring other processes' events (and groups' shares) into a bus."""

    def __init__(self, transport: Any, bus: Any, *, origin: str | None = None, consumer: str | None = None) -> None:
        from core.nodes import current_node_name

        self.transport = transport
        self.bus = bus
        self.pid = os.getpid()
        self.origin = origin or _origin()
        self.consumer = consumer or current_node_name() or f"process-{self.origin}"
        self.name = transport.name if transport is not None else "database"
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.group_ready: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def pid_changed(self) -> bool:
        return self.pid != os.getpid()

    def start(self) -> None:
        if self.transport is None:
            from plugins_app.events.transports.database import receive_node
        else:
            receive_node = self.transport.receive_node
        self._spawn("chameleon-events-inbound", receive_node, self._stop, self._on_node_message, self.ready)

    def ensure_group(self, group: str) -> threading.Event:
        with self._lock:
            if group in self.group_ready:
                return self.group_ready[group]
            ready = self.group_ready[group] = threading.Event()
        if self.transport is None:
            from plugins_app.events.transports.database import receive_group
        else:
            receive_group = self.transport.receive_group

        def run(stop: threading.Event, on_message: Any, ready: threading.Event) -> None:
            receive_group(group, self.consumer, stop, on_message, ready)

        self._spawn(f"chameleon-events-group-{group}", run, self._stop,
                    lambda message: self._on_group_message(group, message), ready)
        return ready

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=self._guard, args=(target, *args), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guard(self, target: Callable[..., None], *args: Any) -> None:
        while not self._stop.is_set():
            try:
                target(*args)
                return
            except Exception:  # noqa: BLE001 - a receiver must outlive any error
                if self._stop.is_set():
                    return  # its connection was closed under it on purpose
                metrics.transport_errors.labels(transport=self.name).inc()
                logger.exception("Event receiver (%s) failed; restarting it", self.name)
                self._stop.wait(1.0)

    def _decode(self, message: Any) -> dict[str, Any]:
        if isinstance(message, dict):
            return message
        return json.loads(message)

    def _on_node_message(self, message: Any) -> None:
        value = self._decode(message)
        if value.get("origin") == self.origin:
            return  # our own event: already delivered locally when it was published
        metrics.remote_received.labels(transport=self.name).inc()
        self.bus.dispatch(Event.from_dict(value), groups=False)

    def _on_group_message(self, group: str, message: Any) -> None:
        self.bus.dispatch(Event.from_dict(self._decode(message)), plain=False, group=group)

    def stop(self, timeout: float = 3.0) -> None:
        """Stop receiving; waits a little for receivers to close their connections."""
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        if self.transport is not None:
            self.transport.close()
