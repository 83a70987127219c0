"""`/ws/events/`: live events for signed-in users (SPEC §8 websocket protocol).

Server → client: `{"type": "event", "event": {...}}` (backlog events carry
`"backlog": true`, followed by `{"type": "backlog_end", "count": n}`),
`{"type": "subscribed", "topics": [...]}`, `{"type": "dropped", "count": n, "total": n}`
when this client was too slow and lost events, `{"type": "error", "message": ...}`.
Client → server: `{"action": "subscribe" | "unsubscribe", "topics": [...]}`, `{"action": "ping"}`.
Topics start as `?topics=a.*,b.#` (default `#`, everything).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.conf import chameleon_settings
from plugins_app.events import services
from plugins_app.events.envelope import InvalidTopic, validate_pattern
from plugins_app.events.hub import Connection, Hub, encode_event
from plugins_app.events.ws_frames import FrameWriter

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
MAX_TOPICS = 50


class TopicsError(ValueError):
    pass


def parse_topics(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part]
    if not isinstance(value, list) or not value or len(value) > MAX_TOPICS:
        raise TopicsError(f"topics must be a list of 1 to {MAX_TOPICS} topic patterns")
    try:
        return [validate_pattern(topic) for topic in value]
    except InvalidTopic as exc:
        raise TopicsError(str(exc)) from None


@database_sync_to_async
def may_view_events(user: Any) -> bool:
    return user.has_perm("events.view_event")


@database_sync_to_async
def load_backlog(patterns: list[str], limit: int) -> list[dict[str, Any]]:
    return services.recent_events(limit, patterns=patterns) if limit else []


class EventStreamConsumer(AsyncJsonWebsocketConsumer):
    # Events reach consumers through the in-process hub (every web process receives every
    # event from the transport), so no channel layer round trip per connection is needed.
    channel_layer_alias = "chameleon-events-no-channel-layer"
    connection: Connection | None = None
    sender: asyncio.Task | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await may_view_events(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        try:
            patterns = parse_topics((query.get("topics") or ["#"])[0])
        except TopicsError:
            patterns = ["#"]
        await self.accept()
        # Join the hub first (buffering), then read the backlog: nothing falls in between,
        # and what is in both is sent once.
        self.connection = Connection(patterns, chameleon_settings.EVENT_WS_BUFFER)
        Hub.current().add(self.connection)
        backlog = await load_backlog(patterns, chameleon_settings.EVENT_BACKLOG)
        for envelope in backlog:
            self.connection.skip.add(envelope["id"])
            await self.send(text_data=encode_event(envelope, backlog=True))
        await self.send_json({"type": "backlog_end", "count": len(backlog)})
        # Live from here: frames go straight to the socket where the server allows it.
        self.connection.writer = FrameWriter.for_send(self._asgi_send())
        self.sender = asyncio.create_task(self._send_loop())

    def _asgi_send(self) -> Any:
        # Channels' session middleware wraps `send` to save sessions on
        # `http.response.start`, but reads the lazy session on every message (~15 us a
        # frame); websocket frames never save a session, so go around it.
        wrapper = getattr(self.base_send, "__self__", None)
        return getattr(wrapper, "real_send", None) or self.base_send

    async def _send_loop(self) -> None:
        """Sends what the hub could not write itself: everything on the ASGI path, and on
        the fast path what waited while the client's socket was full."""
        connection = self.connection
        writer = connection.writer
        send = self._asgi_send()
        while True:
            await connection.wakeup.wait()
            connection.wakeup.clear()
            while connection.buffer or connection.unreported_drops:
                if writer is not None:
                    if not writer.is_open:
                        return
                    if writer.ready():
                        connection.write_frames(writer)
                    else:
                        await writer.wait_writable()
                    continue
                if connection.unreported_drops:
                    await self.send_json(connection.drop_notice())
                    continue
                event_id, text, _frame = connection.buffer.popleft()
                if not connection.skipped(event_id):
                    await send({"type": "websocket.send", "text": text})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            await self.send_json({"type": "error", "message": "Send a JSON object with an 'action'."})
            return
        action = content.get("action")
        if action == "ping":
            await self.send_json({"type": "pong"})
            return
        if action not in ("subscribe", "unsubscribe"):
            await self.send_json({"type": "error", "message": "action must be 'subscribe', 'unsubscribe' or 'ping'."})
            return
        try:
            topics = parse_topics(content.get("topics"))
        except TopicsError as exc:
            await self.send_json({"type": "error", "message": str(exc)})
            return
        current = self.connection.patterns
        if action == "subscribe":
            patterns = current + [topic for topic in topics if topic not in current]
        else:
            patterns = [topic for topic in current if topic not in topics]
        self.connection.set_patterns(patterns)
        await self.send_json({"type": "subscribed", "topics": self.connection.patterns})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
        except (ValueError, json.JSONDecodeError):
            await self.send_json({"type": "error", "message": "Messages must be JSON."})

    async def disconnect(self, code: int) -> None:
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.sender
        if self.connection is not None:
            Hub.current().remove(self.connection)
