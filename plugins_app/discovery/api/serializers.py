"""Serializers of the services and alerts API: validate input, shape output."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from plugins_app.discovery import alerts, health
from plugins_app.discovery.balancer import STRATEGIES
from plugins_app.discovery.models import Alert, AlertRule, Health

NAME = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", "Use letters, digits, '.', '_' and '-'.")
INSTANCE_ID = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$", "Use letters, digits, '.', '_', ':' and '-'.")


class InstanceSerializer(serializers.Serializer):
    """A service instance as stored in the registry (read-only)."""

    id = serializers.CharField()
    name = serializers.CharField()
    version = serializers.CharField()
    endpoint = serializers.CharField()
    metadata = serializers.JSONField()
    weight = serializers.IntegerField()
    check = serializers.JSONField()
    health = serializers.ChoiceField(choices=Health.choices)
    health_message = serializers.CharField()
    ttl = serializers.FloatField()
    registered_at = serializers.DateTimeField()
    last_heartbeat = serializers.DateTimeField()
    last_check = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)


class RegisterInstanceSerializer(serializers.Serializer):
    """Register (or re-register, with the same id) an instance kept alive by heartbeats."""

    id = serializers.CharField(required=False, max_length=128, validators=[INSTANCE_ID])
    name = serializers.CharField(max_length=128, validators=[NAME])
    endpoint = serializers.CharField(max_length=512)
    version = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")
    metadata = serializers.DictField(required=False, default=dict)
    weight = serializers.IntegerField(required=False, min_value=0, max_value=1000, default=1)
    check = serializers.JSONField(required=False, default=dict, help_text=health.__doc__)
    ttl = serializers.FloatField(required=False, min_value=1, max_value=86400)

    def validate_check(self, value: Any) -> dict[str, Any]:
        try:
            return health.validate_check(value or {})
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class ResolveSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, validators=[NAME])
    strategy = serializers.ChoiceField(choices=STRATEGIES, default="round_robin")


class AlertRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertRule
        fields = [
            "id", "name", "description", "metric", "labels", "condition", "threshold", "duration", "severity",
            "channels", "enabled", "state", "pending_since", "last_value", "last_evaluated_at", "created_at",
            "updated_at",
        ]
        read_only_fields = ["state", "pending_since", "last_value", "last_evaluated_at", "created_at", "updated_at"]

    def validate_name(self, value: str) -> str:
        NAME(value)
        return value

    def validate_metric(self, value: str) -> str:
        RegexValidator(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", "Not a Prometheus metric name.")(value)
        return value

    def validate_labels(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float))
                                                  for k, v in value.items()):
            raise serializers.ValidationError("must be an object of label names to values")
        return {key: str(item) for key, item in value.items()}

    def validate_duration(self, value: float) -> float:
        if value < 0:
            raise serializers.ValidationError("must be zero or more seconds")
        return value

    def validate_channels(self, value: Any) -> list[dict[str, Any]]:
        try:
            return alerts.validate_channels(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class AlertSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id", "rule", "rule_name", "state", "severity", "message", "value", "resolved_value", "fired_at",
            "resolved_at", "notifications",
        ]
