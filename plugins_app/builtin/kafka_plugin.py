"""Built-in `kafka` plugin: a Kafka producer/consumer for plugins, and the event transport.

Other plugins get it with `ctx.get_service("kafka")`: `produce(topic, value, key=None)`,
`flush()` and `consumer(group, topics)` (a confluent-kafka Consumer). With
`event_transport: true` this process's event bus sends and receives cluster events through
Kafka while the plugin runs (the configured transport comes back when it stops).
Without brokers (none in the config and no KAFKA_BROKERS) it runs idle and says so.
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer

from core.conf import chameleon_settings
from plugins_app.contract import HealthStatus, Plugin


class KafkaPlugin(Plugin):
    """Shares a producer (and consumer factory) as the `kafka` service; optionally the bus transport."""

    name = "kafka"
    version = "1.0.0"
    description = "Kafka producer/consumer for plugins (service `kafka`) and the Kafka event transport."
    permissions = ("services:register", "config:read")
    config_schema = {
        "type": "object",
        "properties": {
            "brokers": {"type": "array", "items": {"type": "string", "pattern": "^[^:/]+:[0-9]+$"}},
            "event_transport": {"type": "boolean", "default": False},
            "stream": {"type": "string", "minLength": 1},
            "client": {"type": "object", "description": "Extra librdkafka settings.",
                       "additionalProperties": {"type": ["string", "number", "boolean"]}},
        },
        "additionalProperties": False,
    }

    def initialize(self, ctx: Any, config: dict[str, Any]) -> None:
        brokers = config.get("brokers") or chameleon_settings.KAFKA_BROKERS
        self.brokers = ",".join(brokers) if isinstance(brokers, list | tuple) else str(brokers or "")
        self.settings = config
        self.extra = dict(config.get("client") or {})
        self.producer: Producer | None = None
        self.transport_active = False

    def start(self, ctx: Any) -> None:
        if not self.brokers:
            return
        self.producer = Producer({"bootstrap.servers": self.brokers, "linger.ms": 5, **self.extra})
        self.producer.list_topics(timeout=10)  # fail start when no broker answers
        ctx.register_service("kafka", self)
        if self.settings["event_transport"]:
            from plugins_app.events import delivery
            from plugins_app.events.transports.kafka import KafkaTransport

            stream = self.settings.get("stream") or chameleon_settings.EVENT_STREAM
            delivery.use_transport(lambda: KafkaTransport(self.brokers, stream, extra=self.extra))
            self.transport_active = True

    def stop(self, ctx: Any) -> None:
        if self.transport_active:
            from plugins_app.events import delivery

            delivery.use_transport(None)
            self.transport_active = False
        if self.producer is not None:
            self.producer.flush(5)
            self.producer = None

    def health(self) -> HealthStatus:
        if not self.brokers:
            return HealthStatus(True, "not configured (no brokers, no KAFKA_BROKERS)", {"configured": False})
        if self.producer is None:
            return HealthStatus(False, "not connected")
        try:
            brokers = len(self.producer.list_topics(timeout=5).brokers)
        except KafkaException as exc:
            return HealthStatus(False, f"unreachable: {exc}")
        return HealthStatus(True, "ok", {"brokers": brokers, "event_transport": self.transport_active})

    # Methods other plugins may call through the manager.
    def produce(self, topic: str, value: Any, key: str | None = None) -> None:
        if self.producer is None:
            raise RuntimeError("the kafka plugin is not connected (no brokers configured, or not started)")
        payload = value if isinstance(value, bytes | str) else json.dumps(value)
        self.producer.produce(topic, value=payload, key=key)
        self.producer.poll(0)

    def flush(self, timeout: float = 10.0) -> int:
        return self.producer.flush(timeout) if self.producer is not None else 0

    def consumer(self, group: str, topics: list[str], *, offset_reset: str = "earliest") -> Consumer:
        """A new consumer (the caller polls and closes it)."""
        consumer = Consumer({"bootstrap.servers": self.brokers, "group.id": group,
                             "auto.offset.reset": offset_reset, **self.extra})
        consumer.subscribe(topics)
        return consumer


plugin = KafkaPlugin
