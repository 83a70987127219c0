"""Events API: list stored events (filters, pagination), publish one (operators), event types."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.permissions import AuditedDenialsMixin
from plugins_app.events import services
from plugins_app.events.api.serializers import (
    EventSerializer,
    EventTypeSerializer,
    PublishEventSerializer,
)
from plugins_app.events.filters import EventFilter
from plugins_app.events.models import Event
from plugins_app.events.registry import all_event_types


def requested_topic(request: Request) -> str:
    data = request.data
    return str(data.get("topic", ""))[:200] if hasattr(data, "get") else ""


class EventDenialsAuditedMixin(AuditedDenialsMixin):
    """A refused publish is audited as `events.publish` of the topic asked for."""

    audit_target_type = "event"

    def denied_action(self, request: Request) -> str:
        return "events.publish"

    def denied_target(self, request: Request) -> str:
        return requested_topic(request)


class EventViewSet(EventDenialsAuditedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Stored cluster events, newest first; POST publishes one (needs `events.add_event`)."""

    queryset = Event.objects.all()
    serializer_class = EventSerializer
    filterset_class = EventFilter
    search_fields = ["topic", "source"]
    ordering_fields = ["timestamp", "topic", "source"]
    ordering = ["-timestamp", "-id"]
    lookup_field = "event_id"
    lookup_url_kwarg = "id"

    def get_serializer_class(self):
        return PublishEventSerializer if self.action == "create" else EventSerializer

    @extend_schema(request=PublishEventSerializer, responses={201: EventSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = PublishEventSerializer(data=request.data)
        if not serializer.is_valid():
            services.record_invalid_publish(request=request, topic=requested_topic(request),
                                            errors=serializer.errors)
            serializer.is_valid(raise_exception=True)
        event = services.publish_event_as(
            topic=serializer.validated_data["topic"], data=serializer.validated_data.get("data") or {},
            user=request.user, request=request,
        )
        return Response(event.as_dict(), status=status.HTTP_201_CREATED)


class EventTypeViewSet(viewsets.ViewSet):
    """The declared event types (built-in topics and the ones plugins declared)."""

    serializer_class = EventTypeSerializer
    pagination_class = None

    def list(self, request: Request) -> Response:
        return Response(EventTypeSerializer(all_event_types(), many=True).data)
