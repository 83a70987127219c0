"""Serializers for the audit log and nodes."""

from rest_framework import serializers

from core.api.columns import ColumnSerializer
from core.models import AuditEntry, Node


class AuditEntrySerializer(ColumnSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "id", "timestamp", "username", "action", "target_type", "target", "outcome",
            "source", "detail", "ip_address", "request_id",
        ]
        read_only_fields = fields


class NodeSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True)

    class Meta:
        model = Node
        fields = [
            "id", "name", "kind", "status", "hostname", "pid", "version", "labels", "started_at",
            "last_heartbeat", "stopped_at", "info",
        ]
        read_only_fields = fields


class WorkerPingSerializer(serializers.Serializer):
    timeout = serializers.FloatField(default=10.0, min_value=0.5, max_value=60.0)


class WorkerPingResultSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    node = serializers.CharField()
    hostname = serializers.CharField()
    pid = serializers.IntegerField()
    roundtrip_ms = serializers.FloatField()
