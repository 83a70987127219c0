"""The Kafka transport (confluent-kafka): one topic; a consumer group per node and per group."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from plugins_app.events import metrics

logger = logging.getLogger("chameleon.events")


def kafka_topic(stream: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", ".", stream)


class KafkaTransport:
    name = "kafka"

    def __init__(self, brokers: list[str] | str, stream: str, *, extra: dict[str, Any] | None = None) -> None:
        self.brokers = brokers if isinstance(brokers, str) else ",".join(brokers)
        self.topic = kafka_topic(stream)
        self.extra = extra or {}
        self._producer = Producer({
            "bootstrap.servers": self.brokers, "linger.ms": 1, "enable.idempotence": True,
            "message.timeout.ms": 10_000, **self.extra,
        })
        self._consumers: list[Consumer] = []
        self._ensure_topic()

    def _ensure_topic(self) -> None:
        """Make sure the topic exists before consumers subscribe to it.

        Try CreateTopics (one partition); where the cluster refuses (no controller, no
        rights) a metadata request lets the broker auto-create it. Messages carry one key,
        so they share a partition and one order either way.
        """
        admin = AdminClient({"bootstrap.servers": self.brokers, **self.extra})
        try:
            if self.topic in admin.list_topics(timeout=10).topics:
                return
            futures = admin.create_topics([NewTopic(self.topic, num_partitions=1, replication_factor=1)],
                                          request_timeout=5)
            futures[self.topic].result(6)
        except Exception as exc:  # noqa: BLE001 - fall back to auto-creation
            logger.debug("CreateTopics %s failed (%s); relying on auto-creation", self.topic, exc)
            self._producer.list_topics(topic=self.topic, timeout=10)

    def send(self, messages: list[str]) -> None:
        if self._producer is None:
            raise KafkaException("the Kafka transport is closed")
        errors: list[Any] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                errors.append(error)

        for message in messages:
            self._producer.produce(self.topic, value=message.encode(), key=b"events", on_delivery=delivered)
        remaining = self._producer.flush(10)
        if remaining or errors:
            raise KafkaException(errors[0] if errors else f"{remaining} messages not delivered")

    def ping(self) -> None:
        """Raise while no broker answers (a recovering sender asks before claiming)."""
        if self._producer is None:
            raise KafkaException("the Kafka transport is closed")
        self._producer.list_topics(topic=self.topic, timeout=5)

    def _consume(self, group_id: str, stop: threading.Event, on_message: Callable[[Any], None],
                 ready: threading.Event) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.brokers, "group.id": group_id, "auto.offset.reset": "latest",
            "enable.auto.commit": True, "session.timeout.ms": 6000, **self.extra,
        })
        self._consumers.append(consumer)

        def assigned(consumer: Any, partitions: list[Any]) -> None:
            # Start where the group left off, or at the end for a group seen the first time:
            # never replay history, never skip what is sent once we are ready.
            committed = consumer.committed(partitions, timeout=10) if partitions else []
            for partition in committed:
                if partition.offset < 0:
                    partition.offset = consumer.get_watermark_offsets(partition, timeout=10)[1]
            consumer.assign(committed)
            ready.set()

        consumer.subscribe([self.topic], on_assign=assigned)
        try:
            while not stop.is_set():
                message = consumer.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        metrics.transport_errors.labels(transport=self.name).inc()
                        logger.warning("Kafka event consumer %s: %s", group_id, error)
                    continue
                on_message(message.value())
        finally:
            consumer.close()

    def receive_node(self, stop: threading.Event, on_message: Callable[[Any], None], ready: threading.Event) -> None:
        # A group of its own: this receiver gets every event.
        self._consume(f"{self.topic}.node.{uuid.uuid4().hex}", stop, on_message, ready)

    def receive_group(self, group: str, consumer: str, stop: threading.Event, on_message: Callable[[Any], None],
                      ready: threading.Event) -> None:
        self._consume(f"{self.topic}.group.{group}", stop, on_message, ready)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(2)
            self._producer = None  # let librdkafka's threads go now, not at interpreter exit
