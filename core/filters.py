"""Filter sets for the audit log and nodes."""

import django_filters

from core.models import AuditEntry, Node


class AuditEntryFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["action", "outcome", "source", "target_type", "target", "username"]


class NodeFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Node.Status.choices, method="filter_status")

    def filter_status(self, queryset, name: str, value: str):
        return getattr(queryset, value)()

    class Meta:
        model = Node
        fields = ["kind", "hostname"]
