"""Filters of the events list: topic pattern, source, time range."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError

from plugins_app.events.envelope import InvalidTopic
from plugins_app.events.models import Event
from plugins_app.events.services import filter_events


class EventFilter(django_filters.FilterSet):
    topic = django_filters.CharFilter(
        method="filter_topic", help_text="A topic or a pattern: `*` one segment, `#` zero or more.",
    )
    source = django_filters.CharFilter(field_name="source")
    node = django_filters.CharFilter(field_name="node")
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["topic", "source", "node", "since", "until"]

    def filter_topic(self, queryset, name: str, value: str):
        try:
            return filter_events(queryset, topic=value)
        except InvalidTopic as exc:
            raise ValidationError({"topic": [str(exc)]}) from None
