"""The event hub's pre-encoded websocket frames, read back by a real websocket client parser."""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from plugins_app.events.ws_frames import FrameWriter, text_frame


def received_texts(data: bytes) -> list[str]:
    client = ClientProtocol(parse_uri("ws://127.0.0.1/ws/events/"), state=State.OPEN, max_size=None)
    client.receive_data(data)
    frames = client.events_received()
    assert all(frame.opcode is Opcode.TEXT and frame.fin for frame in frames)
    return [frame.data.decode() for frame in frames]


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_a_frame_of_any_length_reads_back_as_the_same_text(length):
    text = ("é" if length % 2 else "x") * length  # multi-byte UTF-8 too: lengths are in bytes
    assert received_texts(text_frame(text)) == [text]


def test_frames_joined_into_one_write_read_back_as_separate_messages():
    texts = ['{"type":"event","n":1}', "y" * 300, '{"type":"event","n":3}']
    assert received_texts(b"".join(text_frame(text) for text in texts)) == texts


def test_only_uvicorns_sansio_protocol_gets_direct_writes():
    async def send(message):  # a plain ASGI send (Channels' test communicator, other servers)
        pass

    assert FrameWriter.for_send(send) is None
    assert FrameWriter.for_send(object()) is None
