"""The web process's fan-out from the bus to websocket connections.

One bus subscription per event loop (not one per connection) receives events in
batches; each event is encoded to JSON and to a websocket frame once and offered to every
connection whose topic patterns match; at the end of the batch each connection gets what
it was offered in one socket write (`ws_frames`). A connection's buffer is bounded: a slow client loses the oldest events
it has not been sent yet (counted, and told to that client), never slowing the others.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from plugins_app.events import metrics, subscribe, unsubscribe
from plugins_app.events.envelope import Event
from plugins_app.events.trie import TopicTrie
from plugins_app.events.ws_frames import FrameWriter, text_frame


class Connection:
    """What the hub needs from a websocket consumer: its patterns and its bounded buffer.

    Entries are `(event id, message text, websocket frame)`. With a `writer` (the fast path,
    see `ws_frames`) the hub writes what it offered at the end of each batch itself; without
    one, or while the client's socket is full, the consumer's sender task is woken instead.
    """

    def __init__(self, patterns: list[str], limit: int) -> None:
        self.limit = limit
        self.buffer: deque[tuple[str, str, bytes]] = deque()
        self.dropped = 0
        self.unreported_drops = 0
        self.wakeup = asyncio.Event()
        self.writer: FrameWriter | None = None
        #: Ids already sent with the backlog; the live copies are skipped once.
        self.skip: set[str] = set()
        self.set_patterns(patterns)

    def set_patterns(self, patterns: list[str]) -> None:
        self.patterns = list(dict.fromkeys(patterns))
        self._trie = TopicTrie()
        for pattern in self.patterns:
            self._trie.add(pattern, pattern)
        self._matches: dict[str, bool] = {}

    def wants(self, topic: str) -> bool:
        wanted = self._matches.get(topic)
        if wanted is None:
            if len(self._matches) > 10_000:
                self._matches = {}
            wanted = self._matches[topic] = bool(self._trie.match(topic))
        return wanted

    def offer(self, event_id: str, text: str, frame: bytes) -> None:
        if len(self.buffer) >= self.limit:
            self.buffer.popleft()
            self.dropped += 1
            self.unreported_drops += 1
            metrics.dropped.labels(queue="websocket").inc()
        self.buffer.append((event_id, text, frame))

    def flush(self) -> None:
        """After a batch was offered: write it now on the fast path, else wake the sender."""
        writer = self.writer
        if writer is not None and writer.ready():
            self.write_frames(writer)
        else:
            self.wakeup.set()

    def write_frames(self, writer: FrameWriter) -> None:
        """Everything waiting (a drop notice first), in one write."""
        frames = []
        if self.unreported_drops:
            frames.append(text_frame(json.dumps(self.drop_notice(), separators=(",", ":"))))
        buffer = self.buffer
        while buffer:
            event_id, _text, frame = buffer.popleft()
            if not self.skipped(event_id):
                frames.append(frame)
        if frames:
            writer.write(frames)

    def skipped(self, event_id: str) -> bool:
        skip = self.skip
        if skip:
            if event_id in skip:
                skip.discard(event_id)
                return True
            if len(skip) > 10_000:
                skip.clear()
        return False

    def drop_notice(self) -> dict[str, Any]:
        """`{"type": "dropped", ...}` for the events lost since the last notice."""
        count, self.unreported_drops = self.unreported_drops, 0
        return {"type": "dropped", "count": count, "total": self.dropped}


class Hub:
    """The connections of one event loop and the single bus subscription feeding them."""

    _hubs: dict[asyncio.AbstractEventLoop, Hub] = {}

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.subscription: Any = None

    @classmethod
    def current(cls) -> Hub:
        loop = asyncio.get_running_loop()
        hub = cls._hubs.get(loop)
        if hub is None:
            hub = cls._hubs[loop] = cls()
        return hub

    def add(self, connection: Connection) -> None:
        self.connections.add(connection)
        if self.subscription is None:
            self.subscription = subscribe("#", self._deliver, batch=True, max_queue=100_000, timeout=60,
                                          name="websocket hub")

    def remove(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self.connections and self.subscription is not None:
            unsubscribe(self.subscription)
            self.subscription = None
            self._hubs.pop(asyncio.get_running_loop(), None)

    async def _deliver(self, events: list[Event]) -> None:
        touched: dict[Connection, None] = {}
        for event in events:
            text = frame = None
            for connection in self.connections:
                if connection.wants(event.topic):
                    if text is None:
                        text = encode_event(event.as_dict())
                        frame = text_frame(text)
                    connection.offer(event.id, text, frame)
                    touched[connection] = None
        for connection in touched:
            connection.flush()


def encode_event(envelope: dict[str, Any], *, backlog: bool = False) -> str:
    message: dict[str, Any] = {"type": "event", "event": envelope}
    if backlog:
        message["backlog"] = True
    return json.dumps(message, separators=(",", ":"), default=str)
