"""Lists of plain model columns, serialized with DRF's output at a fraction of its cost.

DRF spends most of a 100-row list in per-row, per-field bookkeeping (resolving each
field's source, checking for None) and Django in building a model instance per row. For
resources whose fields are model columns, `ColumnSerializer` works the bookkeeping out
once per serializer and `ColumnListMixin` lists `QuerySet.values()` rows instead of
instances. The JSON is the same: each value still goes through its DRF field's
`to_representation`, in the serializer's field order (tests/core/test_api_lists.py).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from django.db import models
from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject


def _is_column(model: type[models.Model], name: str) -> bool:
    try:
        field = model._meta.get_field(name)
    except Exception:  # FieldDoesNotExist, or a name DRF resolves another way
        return False
    return field.concrete and not field.is_relation


class ColumnSerializer(serializers.ModelSerializer):
    """A `ModelSerializer` that represents rows faster, with the same output.

    Fields whose source is a model column (not a relation, method or property) are read
    straight from the row: a model instance or a `QuerySet.values()` dict. Any other field
    goes through DRF's own path, so a subclass may declare what fields it likes; only
    `ColumnListMixin` needs all of them to be columns. Writing is plain ModelSerializer.
    """

    def to_representation(self, instance: Any) -> dict[str, Any]:
        plan = self.__dict__.get("_representation_plan")
        if plan is None:
            plan = self._representation_plan = self._plan()
        row = instance if isinstance(instance, Mapping) else None
        ret: dict[str, Any] = {}
        for field, column, unchanged in plan:
            if column is not None:
                value = row[column] if row is not None else getattr(instance, column)
                if value is None or unchanged is ANY or type(value) is unchanged:
                    ret[field.field_name] = value
                else:
                    ret[field.field_name] = field.to_representation(value)
                continue
            # DRF's Serializer.to_representation, field by field.
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            check_for_none = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            ret[field.field_name] = None if check_for_none is None else field.to_representation(attribute)
        return ret

    def _plan(self) -> list[tuple[serializers.Field, str | None, type | None]]:
        model = self.Meta.model
        plan = []
        for field in self._readable_fields:
            if isinstance(field, serializers.DateTimeField) and not hasattr(field, "timezone"):
                # DRF looks the active time zone up for every value: an asgiref Local
                # behind a lock that 50 request threads queue on, 100 times a request.
                # It cannot change while one response is serialized: look it up once.
                field.timezone = field.default_timezone()
            column = field.source if _is_column(model, field.source) else None
            plan.append((field, column, _unchanged_type(field)))
        return plan


#: `_unchanged_type()`'s answer for fields that return every value as it is.
ANY = object()


def _unchanged_type(field: serializers.Field) -> type | object | None:
    """The type of value that `field.to_representation` returns unchanged, read off DRF's code.

    `CharField` returns `str(value)`, `IntegerField` `int(value)`, a non-binary `JSONField`
    and `ReadOnlyField` the value itself, a `ChoiceField` whose choices are strings mapped to
    themselves the string: for such values the call is skipped. Subclasses that represent
    values their own way are not matched (their `to_representation` is another function).
    """
    represent = type(field).to_representation
    if represent is serializers.CharField.to_representation:
        return str
    if represent is serializers.IntegerField.to_representation:
        return int
    if represent is serializers.FloatField.to_representation:
        return float
    if represent is serializers.BooleanField.to_representation:
        return bool
    if represent is serializers.ReadOnlyField.to_representation:
        return ANY
    if represent is serializers.JSONField.to_representation and not field.binary:
        return ANY
    if represent is serializers.ChoiceField.to_representation and all(
        key == value for key, value in field.choice_strings_to_values.items()
    ):
        return str
    return None


@functools.cache
def list_columns(serializer_class: type[ColumnSerializer]) -> tuple[str, ...] | None:
    """The columns a list of `serializer_class` reads, or None if a field is not a column."""
    serializer = serializer_class()
    model = serializer.Meta.model
    sources = [field.source for field in serializer._readable_fields]
    if not all(_is_column(model, source) for source in sources):
        return None
    return tuple(sources)


class ColumnListMixin:
    """For a viewset whose serializer is a `ColumnSerializer` of columns only: the `list`
    action pages through `QuerySet.values()` rows, so no model instance is built per row.
    Filtering, search, ordering and pagination are unchanged (they run on the queryset
    before the columns are chosen); other actions get model instances as usual.
    """

    def paginate_queryset(self, queryset: models.QuerySet) -> list | None:
        if getattr(self, "action", None) == "list":
            columns = list_columns(self.get_serializer_class())
            if columns is not None:
                queryset = queryset.values(*columns)
        return super().paginate_queryset(queryset)
