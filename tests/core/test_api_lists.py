"""Lean list serialization (core/api/columns.py) and the filter backend (core/api/filter_backends.py):
the same JSON, filters, errors and schema as plain DRF and django-filter, at less cost."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer

from core import services
from core.api.columns import ColumnSerializer, list_columns
from core.api.filter_backends import FilterBackend
from core.api.serializers import AuditEntrySerializer, NodeSerializer
from core.api.views import AuditEntryViewSet
from core.models import AuditEntry

pytestmark = pytest.mark.django_db


class PlainAuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = AuditEntrySerializer.Meta.fields


@pytest.fixture
def entries(viewer, rf) -> list[AuditEntry]:
    request = rf.get("/", REMOTE_ADDR="10.0.0.7")
    request.user = viewer
    made = [
        services.record_audit(action="plugin.start", target_type="plugin", target="hello",
                              detail={"nested": {"n": [1, 2]}, "unicode": "é"}, request=request),
        services.record_audit(action="task.pause", target="t1", outcome="denied", user=viewer),
        services.record_audit(action="system.tick"),  # no user, no address, empty detail
    ]
    # A timestamp with microseconds and one exactly on a second (DRF drops nothing).
    AuditEntry.objects.filter(pk=made[2].pk).update(timestamp=timezone.now().replace(microsecond=0))
    return made


def test_a_listed_page_is_byte_for_byte_what_drf_renders(viewer_client, entries):
    body = viewer_client.get("/api/v1/audit/", {"page_size": 100}).content
    expected = PlainAuditEntrySerializer(AuditEntry.objects.all(), many=True).data
    assert body.endswith(JSONRenderer().render(expected)[1:-1] + b"]}")  # "results" is the last key
    assert viewer_client.get("/api/v1/audit/").json()["count"] == len(entries)


def test_detail_and_list_show_an_entry_the_same_way(viewer_client, entries):
    listed = viewer_client.get("/api/v1/audit/").json()["results"]
    for item in listed:
        assert viewer_client.get(f"/api/v1/audit/{item['id']}/").json() == item


def test_column_serializer_reads_instances_and_value_rows_alike(entries):
    rows = list(AuditEntry.objects.values(*list_columns(AuditEntrySerializer)))
    instances = list(AuditEntry.objects.all())
    plain = PlainAuditEntrySerializer(instances, many=True).data
    assert AuditEntrySerializer(rows, many=True).data == plain
    assert AuditEntrySerializer(instances, many=True).data == plain


def test_fields_that_are_not_columns_keep_drf_behaviour():
    # Node.status is a property: NodeSerializer cannot list value rows, and a
    # ColumnSerializer with such a field reads it the way DRF does.
    assert list_columns(NodeSerializer) is None

    class WithComputed(ColumnSerializer):
        described = serializers.CharField(source="__str__", read_only=True)
        user = serializers.PrimaryKeyRelatedField(read_only=True)

        class Meta:
            model = AuditEntry
            fields = ["id", "action", "described", "user"]

    assert list_columns(WithComputed) is None
    entry = services.record_audit(action="x.y", target="t")
    assert WithComputed(entry).data == {"id": entry.pk, "action": "x.y", "described": str(entry), "user": None}


def test_list_queries_do_not_grow_with_the_page_size(viewer_client):
    for index in range(30):
        services.record_audit(action="bench.item", target=str(index))
    viewer_client.get("/api/v1/audit/", {"page_size": 1})

    def queries(size: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert len(viewer_client.get("/api/v1/audit/", {"page_size": size}).json()["results"]) == size
        return len(captured)

    assert queries(1) == queries(30) == 3  # token, count, page


def test_filters_search_and_ordering_still_apply_to_the_list(viewer_client, entries):
    def listed(**params) -> list[str]:
        return [item["action"] for item in viewer_client.get("/api/v1/audit/", params).json()["results"]]

    assert listed(outcome="denied") == ["task.pause"]
    assert listed(search="hello") == ["plugin.start"]
    assert listed(ordering="action") == ["plugin.start", "system.tick", "task.pause"]
    assert listed(since=timezone.now().isoformat()) == []


def test_a_bad_filter_value_is_a_400_with_field_messages(viewer_client):
    response = viewer_client.get("/api/v1/audit/", {"since": "yesterday-ish"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"]["since"] == ["Enter a valid date/time."]


def test_filterset_fields_views_still_filter(operator_client):
    from plugins_app.models import Plugin

    Plugin.objects.create(name="on-plugin", enabled=True)
    Plugin.objects.create(name="off-plugin", enabled=False)
    names = {item["name"] for item in operator_client.get("/api/v1/plugins/", {"enabled": "false"}).json()["results"]}
    assert "off-plugin" in names and "on-plugin" not in names


@pytest.mark.parametrize("params", [
    {}, {"enabled": "true"}, {"enabled": "perhaps"}, {"kind": "service"}, {"action": "x", "outcome": "nope"},
    {"since": "not-a-date"}, {"since": "2026-01-01T00:00:00Z", "username": "viewer-user"},
])
def test_filter_results_and_errors_are_django_filters_own(rf, params):
    from django_filters.rest_framework import DjangoFilterBackend
    from rest_framework.request import Request

    from plugins_app.api.views import PluginViewSet
    from plugins_app.models import Plugin

    Plugin.objects.create(name="on-plugin", enabled=True)
    services.record_audit(action="x", target="t")
    for view, queryset in ((PluginViewSet(), Plugin.objects.all()), (AuditEntryViewSet(), AuditEntry.objects.all())):
        ours, theirs = (
            backend.get_filterset(Request(rf.get("/", params)), queryset, view)
            for backend in (FilterBackend(), DjangoFilterBackend())
        )
        assert ours.is_valid() == theirs.is_valid()
        assert ours.errors == theirs.errors
        request = Request(rf.get("/", params))
        if theirs.is_valid():
            assert list(ours.qs) == list(theirs.qs)
            assert list(FilterBackend().filter_queryset(request, queryset, view)) == list(
                DjangoFilterBackend().filter_queryset(request, queryset, view))
        else:
            with pytest.raises(ValidationError):
                FilterBackend().filter_queryset(request, queryset, view)


def test_only_plain_optional_filters_are_skipped_when_no_parameter_names_them():
    import django_filters

    from core.api.filter_backends import _names_no_filter, _skippable_filters
    from core.filters import AuditEntryFilter

    assert _names_no_filter(AuditEntryFilter, {"page_size": "100", "search": "x", "ordering": "action"})
    assert not _names_no_filter(AuditEntryFilter, {"since": ""})

    class Required(django_filters.FilterSet):
        action = django_filters.CharFilter(required=True)

        class Meta:
            model = AuditEntry
            fields = ["action"]

    class Custom(django_filters.CharFilter):
        def filter(self, qs, value):
            return qs.none()

    class WithCustom(django_filters.FilterSet):
        action = Custom()

        class Meta:
            model = AuditEntry
            fields = ["action"]

    class Overridden(AuditEntryFilter):
        def filter_queryset(self, queryset):
            return queryset.none()

    assert _skippable_filters(Required) is None
    assert _skippable_filters(WithCustom) is None
    assert _skippable_filters(Overridden) is None


def test_filter_sets_and_their_forms_are_built_once(rf):
    from rest_framework.request import Request

    backend, view = FilterBackend(), AuditEntryViewSet()
    queryset = AuditEntry.objects.all()
    filterset_class = backend.get_filterset_class(view, queryset)
    assert filterset_class is backend.get_filterset_class(view, queryset)
    assert filterset_class.__name__ == "AuditEntryFilter"
    forms = {type(backend.get_filterset(Request(rf.get("/", {"action": "a"})), queryset, view).form) for _ in range(2)}
    assert len(forms) == 1


def test_openapi_schema_still_lists_the_filters(viewer_client):
    schema = viewer_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    parameters = {parameter["name"] for parameter in schema["paths"]["/api/v1/audit/"]["get"]["parameters"]}
    assert {"since", "until", "action", "outcome", "search", "ordering", "page", "page_size"} <= parameters
    plugins = {parameter["name"] for parameter in schema["paths"]["/api/v1/plugins/"]["get"]["parameters"]}
    assert {"enabled", "kind"} <= plugins
    audit = schema["components"]["schemas"]["AuditEntry"]["properties"]
    assert audit["timestamp"] == {"type": "string", "format": "date-time", "readOnly": True}


def test_values_passed_through_unchanged_are_what_drf_would_return():
    from core.api.columns import ANY, _unchanged_type

    cases = [
        (serializers.CharField(), ["text", ""]),
        (serializers.IntegerField(), [0, 7, 2**40]),
        (serializers.FloatField(), [0.5]),
        (serializers.BooleanField(), [True, False]),
        (serializers.ReadOnlyField(), [{"a": 1}, "x", 3]),
        (serializers.JSONField(), [{"nested": [1, None]}, [], "s"]),
        (serializers.ChoiceField(choices=AuditEntry.Outcome.choices), ["success", "denied", "other"]),
        (serializers.IPAddressField(), ["10.0.0.1"]),
    ]
    for field, values in cases:
        unchanged = _unchanged_type(field)
        assert unchanged is not None, field
        for value in values:
            assert unchanged is ANY or type(value) is unchanged
            assert JSONRenderer().render(field.to_representation(value)) == JSONRenderer().render(value)
    # Fields whose representation differs from the value are left to DRF.
    assert _unchanged_type(serializers.ChoiceField(choices=[(1, "one")])) is None
    assert _unchanged_type(serializers.DateTimeField()) is None
    assert _unchanged_type(serializers.JSONField(binary=True)) is None

    class Shouting(serializers.CharField):
        def to_representation(self, value):
            return str(value).upper()

    assert _unchanged_type(Shouting()) is None
