"""API views for the audit log and nodes."""

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from core import services
from core.api.columns import ColumnListMixin
from core.api.permissions import OperationPermissionMixin
from core.api.serializers import (
    AuditEntrySerializer,
    NodeSerializer,
    WorkerPingResultSerializer,
    WorkerPingSerializer,
)
from core.filters import AuditEntryFilter, NodeFilter
from core.models import AuditEntry, Node


class WorkerUnavailableError(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "worker_unavailable"


class AuditEntryViewSet(ColumnListMixin, viewsets.ReadOnlyModelViewSet):
    """Every operation: who, when, what, on what and its outcome (read-only)."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilter
    search_fields = ["username", "action", "target"]
    ordering_fields = ["timestamp", "action", "username"]


class NodeViewSet(OperationPermissionMixin, viewsets.ReadOnlyModelViewSet):
    """The processes of the cluster (web, worker, beat) with their heartbeat status."""

    queryset = Node.objects.all()
    serializer_class = NodeSerializer
    filterset_class = NodeFilter
    search_fields = ["name", "hostname"]
    ordering_fields = ["name", "kind", "started_at", "last_heartbeat"]

    @extend_schema(request=WorkerPingSerializer, responses=WorkerPingResultSerializer)
    @action(detail=False, methods=["post"], url_path="ping-worker", required_permission="core.view_node")
    def ping_worker(self, request: Request) -> Response:
        """Send a Celery task from this web process and wait for a worker to answer it."""
        params = WorkerPingSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            answer = services.ping_worker(timeout=params.validated_data["timeout"])
        except services.WorkerUnavailable as exc:
            raise WorkerUnavailableError(str(exc)) from None
        return Response(WorkerPingResultSerializer(answer).data)
