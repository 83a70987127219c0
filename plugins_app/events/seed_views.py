"""Seed-compatible route `POST /plugins/events/test` (SPEC §8): publishes `test.demo`."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.seed import SeedAPIView, seed_response
from core.models import AuditEntry
from plugins_app.events import services
from plugins_app.events.api.views import EventDenialsAuditedMixin


class TestEventSerializer(serializers.Serializer):
    message = serializers.CharField(required=False, max_length=1000, default="Hello from Chameleon")
    data = serializers.DictField(required=False, default=dict)


class PublishTestEventView(EventDenialsAuditedMixin, SeedAPIView):
    """Publish a `test.demo` event; answers `{"code","message","data": {"message","event"}}`."""

    required_permission = "events.add_event"
    audit_source = AuditEntry.Source.SEED_API

    def post(self, request: Request) -> Response:
        params = TestEventSerializer(data=request.data if hasattr(request.data, "get") else {})
        params.is_valid(raise_exception=True)
        data = {**params.validated_data["data"], "message": params.validated_data["message"]}
        event = services.publish_event_as(topic="test.demo", data=data, user=request.user, request=request,
                                          source_kind=AuditEntry.Source.SEED_API)
        return seed_response({"message": "Test event published", "event": event.as_dict()})
