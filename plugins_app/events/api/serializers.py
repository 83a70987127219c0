"""Serializers of the events API: the stored envelope, and what an operator may publish."""

from __future__ import annotations

from rest_framework import serializers

from plugins_app.events.envelope import InvalidEvent, validate_topic
from plugins_app.events.models import Event
from plugins_app.events.registry import EventType, validate_event_data


class EventSerializer(serializers.ModelSerializer):
    """The envelope as SPEC §4 names it (`id` is the event's id, not the row's)."""

    id = serializers.CharField(source="event_id", read_only=True)

    class Meta:
        model = Event
        fields = ["id", "topic", "source", "data", "timestamp", "node"]
        read_only_fields = fields


class PublishEventSerializer(serializers.Serializer):
    topic = serializers.CharField(max_length=200, help_text="Dot-separated, e.g. `test.demo` or `orders.created`.")
    data = serializers.JSONField(required=False, default=dict, help_text="A JSON object.")

    def validate_topic(self, value: str) -> str:
        try:
            return validate_topic(value)
        except InvalidEvent as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, attrs: dict) -> dict:
        try:
            validate_event_data(attrs["topic"], attrs.get("data"))
        except InvalidEvent as exc:
            raise serializers.ValidationError({"data": [str(exc)]}) from None
        return attrs


class EventTypeSerializer(serializers.Serializer):
    topic = serializers.CharField()
    description = serializers.CharField()
    schema = serializers.JSONField(allow_null=True)
    owner = serializers.CharField()

    def to_representation(self, instance: EventType) -> dict:
        return {"topic": instance.topic, "description": instance.description, "schema": instance.schema,
                "owner": instance.owner}
