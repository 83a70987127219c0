"""Pre-encoded websocket frames written straight to a connection's socket (the hub's fast path).

A server's websocket frames are not masked, so one event's frame is the same bytes for
every client that has not negotiated an extension (`serve` turns permessage-deflate off).
The hub builds each event's frame once and, for connections served by uvicorn's
websockets-sansio protocol, writes every frame a connection has waiting in one
`transport.write` -- instead of one ASGI `send` per event and connection (framing, an
await and a syscall each: ~9 µs, the fan-out's whole budget at 100,000 frames/s).

Anything else (another ASGI server, Channels' test communicator, a client with
compression) goes through the ordinary ASGI `send`: `FrameWriter.for_send` returns None.
"""

from __future__ import annotations

from typing import Any


def text_frame(text: str) -> bytes:
    """One final, unmasked text frame (RFC 6455 §5.2) carrying `text`."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 65536:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return header + payload


class FrameWriter:
    """Direct frame writes for one connection of uvicorn's websockets-sansio protocol."""

    __slots__ = ("protocol", "transport", "_open")

    def __init__(self, protocol: Any) -> None:
        from websockets.protocol import State

        self.protocol = protocol
        self.transport = protocol.transport
        self._open = State.OPEN

    @classmethod
    def for_send(cls, send: Any) -> FrameWriter | None:
        """The writer behind an ASGI `send` callable, or None when frames cannot go direct."""
        try:
            from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
        except ImportError:  # pragma: no cover - uvicorn is a dependency
            return None
        protocol = getattr(send, "__self__", None)
        if not isinstance(protocol, WebSocketsSansIOProtocol) or protocol.conn.extensions:
            return None
        if not protocol.handshake_complete or protocol.initial_response is not None:
            return None
        return cls(protocol)

    @property
    def is_open(self) -> bool:
        protocol = self.protocol
        return not (protocol.close_sent or protocol.disconnected or self.transport.is_closing()) and (
            protocol.conn.state is self._open
        )

    def ready(self) -> bool:
        """Open, and the client keeps up: the transport has not paused writing (its buffer
        is under the high-water mark). Past it, events wait in the connection's bounded
        buffer, where the oldest are dropped and counted."""
        return self.is_open and self.protocol.writable.is_set()

    async def wait_writable(self) -> None:
        """Until the transport has room again (also set when the connection is lost)."""
        await self.protocol.writable.wait()

    def write(self, frames: list[bytes]) -> None:
        self.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
