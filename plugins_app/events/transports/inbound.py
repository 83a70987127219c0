"""The receivers that bring other processes' events (and groups' shares) into a bus."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from plugins_app.events import metrics
from plugins_app.events.envelope import Event
from plugins_app.events.transports import _origin

logger = logging.getLogger("chameleon.events")

#: Event ids each receiver remembers to drop duplicates (an outbox row sent twice).
DEDUP_WINDOW = 65_536


class RecentIds:
    """The last `size` event ids a receiver saw, to drop an event sent twice."""

    __slots__ = ("size", "_order", "_seen")

    def __init__(self, size: int = DEDUP_WINDOW) -> None:
        self.size = size
        self._order: deque[str] = deque()
        self._seen: set[str] = set()

    def seen(self, event_id: str | None) -> bool:
        """True when `event_id` was seen already; remembers it otherwise."""
        if event_id is None:
            return False  # nothing to recognise it by
        if event_id in self._seen:
            return True
        self._seen.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
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
        # One per receiving thread (the node receiver, each group's): no lock needed.
        self._recent = RecentIds()
        self._group_recent: dict[str, RecentIds] = {}

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
            self._group_recent[group] = RecentIds()
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
        if self._recent.seen(value.get("id")):
            metrics.duplicates.labels(transport=self.name).inc()
            return  # sent twice (an outbox row re-sent by a sweeper and its publisher)
        metrics.remote_received.labels(transport=self.name).inc()
        self.bus.dispatch(Event.from_dict(value), groups=False)

    def _on_group_message(self, group: str, message: Any) -> None:
        value = self._decode(message)
        if self._group_recent[group].seen(value.get("id")):
            metrics.duplicates.labels(transport=self.name).inc()
            return
        self.bus.dispatch(Event.from_dict(value), plain=False, group=group)

    def stop(self, timeout: float = 3.0) -> None:
        """Stop receiving; waits a little for receivers to close their connections."""
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        if self.transport is not None:
            self.transport.close()
