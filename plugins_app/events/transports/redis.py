"""The Redis transport: one stream; XREAD per node, consumer groups for `group` subscriptions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from plugins_app.events import metrics

logger = logging.getLogger("chameleon.events")

#: Entries kept in the stream (approximately); stored events keep the full history.
STREAM_MAXLEN = 100_000
NETWORK_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class RedisTransport:
    name = "redis"

    def __init__(self, url: str, stream: str) -> None:
        self.url = url
        self.stream = stream
        self._client = self._connect()
        self._clients: list[redis.Redis] = [self._client]

    def _connect(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=15)

    def send(self, messages: list[str]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for message in messages:
            pipe.xadd(self.stream, {"e": message}, maxlen=STREAM_MAXLEN, approximate=True)
        pipe.execute()

    def ping(self) -> None:
        """Raise while Redis does not answer (a recovering sender asks before claiming)."""
        self._client.ping()

    def _receiving_client(self) -> redis.Redis:
        client = self._connect()
        self._clients.append(client)
        return client

    def _backoff(self, stop: threading.Event, delay: float, exc: Exception) -> float:
        metrics.transport_errors.labels(transport=self.name).inc()
        logger.warning("Redis event stream %s unreachable (%s); retrying in %.1fs", self.stream, exc, delay)
        stop.wait(delay)
        return min(delay * 2, 5.0)

    def receive_node(self, stop: threading.Event, on_message: Callable[[Any], None], ready: threading.Event) -> None:
        client = self._receiving_client()
        last: str | None = None
        delay = 0.1
        while not stop.is_set():
            try:
                if last is None:
                    newest = client.xrevrange(self.stream, count=1)
                    last = newest[0][0].decode() if newest else "0-0"
                    ready.set()
                answer = client.xread({self.stream: last}, count=500, block=1000)
                delay = 0.1
                for _stream, entries in answer or ():
                    for entry_id, fields in entries:
                        last = entry_id.decode()
                        on_message(fields[b"e"])
            except NETWORK_ERRORS as exc:
                delay = self._backoff(stop, delay, exc)

    def receive_group(self, group: str, consumer: str, stop: threading.Event, on_message: Callable[[Any], None],
                      ready: threading.Event) -> None:
        client = self._receiving_client()
        created = False
        delay = 0.1
        start_at = "$"
        while not stop.is_set():
            try:
                if not created:
                    try:
                        client.xgroup_create(self.stream, group, id=start_at, mkstream=True)
                    except redis.ResponseError as exc:
                        if "BUSYGROUP" not in str(exc):
                            raise
                    created = True
                    ready.set()
                answer = client.xreadgroup(group, consumer, {self.stream: ">"}, count=500, block=1000)
                delay = 0.1
                for _stream, entries in answer or ():
                    handed = []
                    try:
                        for entry_id, fields in entries:
                            handed.append(entry_id)
                            on_message(fields[b"e"])
                    finally:
                        # One acknowledgement per read, not per entry (a round trip each).
                        if handed:
                            client.xack(self.stream, group, *handed)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis restarted without its data: recreate the group from the start of
                # the (new) stream, so what was sent since is not skipped.
                created, start_at = False, "0"
            except NETWORK_ERRORS as exc:
                delay = self._backoff(stop, delay, exc)

    def close(self) -> None:
        for client in self._clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
