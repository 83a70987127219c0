"""The sender of cluster events: sends first, stores after; what the transport refuses is the outbox."""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from plugins_app.events import metrics
from plugins_app.events.envelope import Event
from plugins_app.events.transports import _origin, encode, encode_row

logger = logging.getLogger("chameleon.events")

#: Events kept in memory while the transport is down (they are in the database too).
PENDING_LIMIT = 100_000
SEND_BATCH = 500
#: How long the store thread waits for more events before writing a batch.
STORE_LINGER = 0.02
#: Idle seconds after which the store thread closes its database connection.
STORE_IDLE_CLOSE = 1.0
#: Chunks (of SEND_BATCH) one sweep re-sends before the sender looks at new events again.
SWEEP_CHUNKS = 20
#: The first outbox sweep, this long after the sender starts (then every sweep interval).
FIRST_SWEEP_DELAY = 1.0
#: How long a recovering sender waits for its refused events to be stored before claiming.
STORE_BARRIER_TIMEOUT = 10.0


class Outbound:
    """Sends cluster events, then stores them; what the transport refuses waits in the outbox.

    Transport up (the hot path): the sender thread sends each batch, then the store thread
    writes its rows `dispatched=True`; nothing else touches the database. Transport down:
    refused events wait in order in memory (`_pending`) and are stored `dispatched=False`.
    Once the transport answers again the sender claims each chunk's rows
    (`services.claim_events`), sends what it holds and marks it sent through the store
    queue, after the rows' own store. While the transport is up, the sender also sweeps the
    outbox every `EVENT_OUTBOX_SWEEP_INTERVAL`: rows older than `EVENT_OUTBOX_GRACE` whose
    publisher did not send them (it died during an outage) are claimed and re-sent
    (`sweep()`). Claims give each row one sender at a time; receivers drop the rare copy.
    """

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.pid = os.getpid()
        #: Who holds this sender's claims on outbox rows.
        self.owner = f"{_origin()}:{uuid.uuid4().hex[:8]}"
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        # Store operations, run in order: ("store", events, dispatched), ("mark", event ids)
        # and ("barrier", threading.Event).
        self._store_queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._pending: deque[Event] = deque()
        self._unsent = 0
        self._count_lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._start_lock = threading.Lock()
        self.transport_up = True
        self._warned_storage = False
        self._warned_claims = False
        self._closed = False
        self._sweep_more = False

    def pid_changed(self) -> bool:
        return self.pid != os.getpid()

    def start(self) -> None:
        """Start the sender (so the outbox sweeper runs) before anything is published."""
        if self.transport is not None and not self._closed:
            self._thread("send", self._send_loop)

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
            self._store_queue.put(("store", [event], True))
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

    # --- the store thread --------------------------------------------------------------
    def _store_loop(self) -> None:
        from django.db import connection

        connected = False
        while True:
            try:
                operations = [self._store_queue.get(timeout=STORE_IDLE_CLOSE if connected else None)]
            except queue.Empty:
                # Idle: give the connection back rather than hold it open between bursts.
                try:
                    connection.close()
                except Exception:  # noqa: BLE001 - this thread must never die
                    logger.debug("Closing the event store connection failed", exc_info=True)
                connected = False
                continue
            # Linger a moment so a steady trickle is written in batches (one insert and
            # commit for many events), not one transaction per event.
            deadline = time.monotonic() + STORE_LINGER
            while len(operations) < SEND_BATCH:
                remaining = deadline - time.monotonic()
                try:
                    operations.append(self._store_queue.get(timeout=remaining) if remaining > 0
                                      else self._store_queue.get_nowait())
                except queue.Empty:
                    break
            self._apply(operations)
            connected = True

    def _apply(self, operations: list[tuple[Any, ...]]) -> None:
        """Run store operations in queue order: a mark never runs before its rows' store."""
        stores: list[tuple[list[Event], bool]] = []
        for operation in operations:
            kind = operation[0]
            if kind == "store":
                stores.append((operation[1], operation[2]))
                continue
            self._write(stores)
            stores = []
            if kind == "mark":
                self._mark_sent(operation[1])
            else:
                operation[1].set()
        self._write(stores)

    def _write(self, stores: list[tuple[list[Event], bool]]) -> None:
        for dispatched in (True, False):
            events = [event for batch, sent in stores if sent is dispatched for event in batch]
            if events:
                self._store(events, dispatched=dispatched)
        count = sum(len(batch) for batch, _sent in stores)
        if count:
            self._done(count)

    def _mark_sent(self, event_ids: list[str]) -> None:
        from plugins_app.events import services

        if not event_ids:
            return
        try:
            services.mark_events_sent(event_ids)
        except Exception:  # noqa: BLE001 - unmarked rows are re-sent once their claim expires
            logger.warning("Could not mark %d outbox events sent", len(event_ids), exc_info=True)

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)  # wake the sender so it ends
        self.transport.close()

    # --- the sender thread -------------------------------------------------------------
    def _send_loop(self) -> None:
        backoff = 0.1
        retry_at = 0.0
        next_sweep = time.monotonic() + FIRST_SWEEP_DELAY
        while not self._closed:
            wake_at = retry_at if self._pending else next_sweep
            batch = self._take(max(0.0, wake_at - time.monotonic()))
            if self._closed:
                break
            if batch:
                if self._pending:
                    self._hold(batch)  # behind what already waits, in publish order
                elif not self._send_now(batch):
                    backoff, retry_at = 0.2, time.monotonic() + 0.1
            metrics.outbox_pending.set(len(self._pending))
            now = time.monotonic()
            if self._pending:
                if now >= retry_at:
                    if self._recover():
                        backoff = 0.1
                    else:
                        retry_at = time.monotonic() + backoff
                        backoff = min(backoff * 2, 5.0)
            elif now >= next_sweep:
                self.sweep()
                next_sweep = time.monotonic() + self._sweep_interval()

    def _take(self, timeout: float) -> list[Event]:
        """The next batch of submitted events, waiting up to `timeout` for the first."""
        batch: list[Event] = []
        try:
            event = self._queue.get(timeout=timeout)
            while True:
                if event is not None:
                    batch.append(event)
                if len(batch) >= SEND_BATCH:
                    break
                event = self._queue.get_nowait()
        except queue.Empty:
            pass
        return batch

    def _send_now(self, batch: list[Event]) -> bool:
        """The hot path: send, then have the store thread keep the rows as sent."""
        origin = _origin()
        try:
            self.transport.send([encode(event, origin) for event in batch])
        except Exception as exc:  # noqa: BLE001 - every client error means "down"
            self._refused(exc, len(batch))
            self._hold(batch)
            return False
        self._thread("store", self._store_loop)
        self._store_queue.put(("store", batch, True))
        return True

    def _refused(self, exc: Exception, waiting: int) -> None:
        metrics.transport_errors.labels(transport=self.transport.name).inc()
        if self.transport_up:
            self.transport_up = False
            logger.warning("Event transport %s is down (%s); %d events wait in the outbox",
                           self.transport.name, exc, waiting)

    def _hold(self, batch: list[Event]) -> None:
        """Keep refused events: in memory to retry, in the database as the outbox."""
        self._thread("store", self._store_loop)
        self._store_queue.put(("store", batch, False))
        self._pending.extend(batch)
        overflow = len(self._pending) - PENDING_LIMIT
        for _ in range(max(0, overflow)):
            # Still stored as not dispatched: a sweeper sends it once it passes the grace period.
            self._pending.popleft()
            metrics.dropped.labels(queue="outbox").inc()

    def _recover(self) -> bool:
        """Send what waits in `_pending`, oldest first; False while the transport is down.

        Each chunk's rows are claimed before sending: a sweeper on another node may already
        have sent (or be sending) those past the grace period. The claim needs the rows
        written, so first the store thread catches up.
        """
        if not self._answers():
            return False
        self._wait_for_store()
        origin = _origin()
        sent = skipped = 0
        try:
            while self._pending:
                chunk = [self._pending[i] for i in range(min(len(self._pending), SEND_BATCH))]
                ids = [event.id for event in chunk]
                taken = self._claim(ids)
                mine = [event for event in chunk if event.id not in taken]
                try:
                    if mine:
                        self.transport.send([encode(event, origin) for event in mine])
                except Exception as exc:  # noqa: BLE001 - every client error means "down"
                    self._refused(exc, len(self._pending))
                    self._release(ids)
                    return False
                for _ in chunk:
                    self._pending.popleft()
                # Through the store queue: it runs after the store of these rows, even one
                # the barrier above did not wait for.
                self._store_queue.put(("mark", [event.id for event in mine]))
                sent += len(mine)
                skipped += len(chunk) - len(mine)
        finally:
            _close_connection()
        logger.warning("Event transport %s is back; sent %d events from the outbox%s", self.transport.name, sent,
                       f" ({skipped} sent by another sender)" if skipped else "")
        self.transport_up = True
        metrics.outbox_pending.set(0)
        return True

    def _answers(self) -> bool:
        ping = getattr(self.transport, "ping", None)
        if ping is None:
            return True  # the send itself tells
        try:
            ping()
        except Exception:  # noqa: BLE001 - still down
            metrics.transport_errors.labels(transport=self.transport.name).inc()
            return False
        return True

    def _wait_for_store(self) -> None:
        written = threading.Event()
        self._thread("store", self._store_loop)
        self._store_queue.put(("barrier", written))
        if not written.wait(STORE_BARRIER_TIMEOUT):
            logger.warning("Storing events takes over %gs; sending the outbox without waiting", STORE_BARRIER_TIMEOUT)

    def _claim(self, event_ids: list[str]) -> set[str]:
        from plugins_app.events import services

        try:
            return services.claim_events(event_ids, owner=self.owner)
        except Exception:  # noqa: BLE001
            # No database, so no claims: send anyway (at least once); receivers drop a copy.
            if not self._warned_claims:
                self._warned_claims = True
                logger.warning("Could not claim outbox events; sending them unclaimed", exc_info=True)
            return set()

    def _release(self, event_ids: list[str]) -> None:
        from plugins_app.events import services

        try:
            services.release_claims(event_ids, owner=self.owner)
        except Exception:  # noqa: BLE001 - the claims expire by themselves
            logger.debug("Could not release outbox claims", exc_info=True)

    # --- the outbox sweeper ------------------------------------------------------------
    def _sweep_interval(self) -> float:
        from core.conf import chameleon_settings

        if self._sweep_more:
            return 0.05  # a large backlog: more after a look at new events
        # Jittered, so nodes started together do not sweep in step.
        return chameleon_settings.EVENT_OUTBOX_SWEEP_INTERVAL * random.uniform(0.8, 1.2)

    def sweep(self, *, limit: int = SEND_BATCH, chunks: int = SWEEP_CHUNKS) -> int:
        """Re-send outbox events nobody sent (their publisher died); returns how many.

        Claims up to `chunks` chunks of `limit` rows older than `EVENT_OUTBOX_GRACE`,
        oldest first, sends each chunk and marks it sent. Safe on every node at once.
        """
        from core.conf import chameleon_settings
        from plugins_app.events import services

        if self.transport is None:
            return 0  # the database transport: rows are the messages, there is no outbox
        total = 0
        self._sweep_more = False
        try:
            for _ in range(chunks):
                rows = services.claim_orphaned_events(
                    owner=self.owner, older_than=chameleon_settings.EVENT_OUTBOX_GRACE, limit=limit
                )
                if not rows:
                    break
                ids = [row.event_id for row in rows]
                try:
                    self.transport.send([encode_row(row) for row in rows])
                except Exception as exc:  # noqa: BLE001 - down: give the rows back, try next time
                    metrics.transport_errors.labels(transport=self.transport.name).inc()
                    services.release_claims(ids, owner=self.owner)
                    logger.info("Outbox sweep could not send %d events (%s)", len(rows), exc)
                    break
                services.mark_events_sent(ids)
                total += len(rows)
                metrics.outbox_resent.labels(transport=self.transport.name).inc(len(rows))
                if len(rows) < limit:
                    break
            else:
                self._sweep_more = True
        except Exception:  # noqa: BLE001 - database trouble: the next sweep tries again
            logger.warning("Outbox sweep failed", exc_info=True)
        finally:
            _close_connection()
        if total:
            logger.warning("Outbox sweep re-sent %d events their publisher did not send (%s)", total,
                           self.transport.name)
        return total

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


def _close_connection() -> None:
    """Sender-side database work is rare (outages, sweeps): hold no connection between."""
    from django.db import connection

    try:
        if not connection.in_atomic_block:
            connection.close()
    except Exception:  # noqa: BLE001
        pass
