"""`/ws/events/` with Channels' WebsocketCommunicator: auth, protocol, backlog, bounded buffers."""

from __future__ import annotations

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework.authtoken.models import Token

from chameleon_site.routing import websocket_urlpatterns
from plugins_app.events import publish

pytestmark = pytest.mark.django_db(transaction=True)

APPLICATION = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
ORIGIN = (b"origin", b"http://testserver")


def communicator(path: str = "/ws/events/", headers: list | None = None) -> WebsocketCommunicator:
    return WebsocketCommunicator(APPLICATION, path, headers=[ORIGIN, *(headers or [])])


@database_sync_to_async
def token_header(user) -> tuple[bytes, bytes]:
    return (b"authorization", f"Token {Token.objects.get_or_create(user=user)[0].key}".encode())


@database_sync_to_async
def session_header(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def no_header(user) -> tuple[bytes, bytes]:
    return (b"x-nothing", b"")


async def receive_until(ws: WebsocketCommunicator, kind: str, timeout: float = 5) -> dict:
    while True:
        message = await ws.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message


async def connected(user, path: str = "/ws/events/", auth=token_header) -> WebsocketCommunicator:
    ws = communicator(path, [await auth(user)])
    ok, _ = await ws.connect()
    assert ok
    await receive_until(ws, "backlog_end")
    return ws


async def test_anonymous_is_refused():
    ws = communicator()
    ok, code = await ws.connect()
    assert not ok and code == 4401


async def test_a_bad_token_is_refused():
    ws = communicator(headers=[(b"authorization", b"Token not-a-real-token")])
    ok, code = await ws.connect()
    assert not ok and code == 4401


async def test_a_user_without_view_permission_is_refused():
    from django.contrib.auth.models import User

    nobody = await database_sync_to_async(User.objects.create_user)("nobody", password="x")
    ws = communicator(headers=[await token_header(nobody)])
    ok, code = await ws.connect()
    assert not ok and code == 4403


@pytest.mark.parametrize("auth", [token_header, session_header], ids=["token", "session"])
async def test_signed_in_viewer_receives_events_as_they_are_published(viewer, auth, event_transport):
    event_transport("database")
    ws = await connected(viewer, auth=auth)
    event = publish("test.live", {"n": 1}, source="plugin:hello")
    message = await receive_until(ws, "event")
    assert message == {"type": "event", "event": event.as_dict()}
    await ws.disconnect()


async def test_token_in_query_string_works(viewer):
    key = (await token_header(viewer))[1].decode().split()[1]
    ws = await connected(viewer, f"/ws/events/?token={key}", auth=no_header)
    await ws.disconnect()


async def test_subscribe_and_unsubscribe_change_what_the_client_gets(viewer):
    ws = await connected(viewer, "/ws/events/?topics=alpha.*")
    publish("beta.one", scope="local")
    publish("alpha.one", scope="local")
    assert (await receive_until(ws, "event"))["event"]["topic"] == "alpha.one"

    await ws.send_json_to({"action": "subscribe", "topics": ["beta.#"]})
    assert (await receive_until(ws, "subscribed"))["topics"] == ["alpha.*", "beta.#"]
    publish("beta.two", scope="local")
    assert (await receive_until(ws, "event"))["event"]["topic"] == "beta.two"

    await ws.send_json_to({"action": "unsubscribe", "topics": ["alpha.*"]})
    assert (await receive_until(ws, "subscribed"))["topics"] == ["beta.#"]
    publish("alpha.two", scope="local")
    publish("beta.three", scope="local")
    assert (await receive_until(ws, "event"))["event"]["topic"] == "beta.three"
    await ws.disconnect()


@pytest.mark.parametrize("message", [
    {"action": "subscribe", "topics": ["bad..topic"]},
    {"action": "subscribe", "topics": "not-a-list-but-ok-if-valid..x"},
    {"action": "subscribe", "topics": []},
    {"action": "explode"},
    ["not", "an", "object"],
])
async def test_bad_client_messages_get_an_error_not_a_disconnect(viewer, message):
    ws = await connected(viewer)
    await ws.send_json_to(message)
    assert (await receive_until(ws, "error"))["message"]
    await ws.send_to(text_data="{not json")
    assert (await receive_until(ws, "error"))["message"] == "Messages must be JSON."
    await ws.send_json_to({"action": "ping"})
    assert (await receive_until(ws, "pong")) == {"type": "pong"}
    await ws.disconnect()


async def test_recent_backlog_is_sent_on_connect_oldest_first(viewer, event_transport):
    event_transport("database")
    stored = [await database_sync_to_async(publish)("test.backlog", {"n": n}) for n in range(3)]
    await database_sync_to_async(publish)("other.topic")
    ws = communicator("/ws/events/?topics=test.%23", [await token_header(viewer)])
    assert (await ws.connect())[0]
    backlog = [await ws.receive_json_from(timeout=5) for _ in range(3)]
    assert [message["event"]["id"] for message in backlog] == [event.id for event in stored]
    assert all(message["backlog"] for message in backlog)
    assert await ws.receive_json_from(timeout=5) == {"type": "backlog_end", "count": 3}
    await ws.disconnect()


async def test_a_slow_client_loses_the_oldest_events_and_is_told(viewer, settings):
    settings.CHAMELEON = {**settings.CHAMELEON, "EVENT_WS_BUFFER": 5}
    ws = await connected(viewer, "/ws/events/?topics=burst.%23")
    other = await connected(viewer, "/ws/events/?topics=burst.%23")
    # A burst arrives faster than the buffer drains: both connections are offered all 100 at once.
    for n in range(100):
        publish("burst.x", {"n": n}, scope="local")
    dropped = await receive_until(ws, "dropped")
    assert dropped["count"] == dropped["total"] == 95
    remaining = [(await ws.receive_json_from(timeout=5))["event"]["data"]["n"] for _ in range(5)]
    assert remaining == [95, 96, 97, 98, 99]
    assert (await receive_until(other, "dropped"))["total"] == 95
    await ws.disconnect()
    await other.disconnect()
