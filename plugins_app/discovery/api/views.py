"""Services API (list, register, heartbeat, deregister, resolve) and alerts API (rules CRUD, history)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.permissions import AuditedDenialsMixin, OperationPermissionMixin
from core.models import AuditEntry
from core.services import record_audit
from plugins_app.discovery import alerts, services
from plugins_app.discovery.api.serializers import (
    AlertRuleSerializer,
    AlertSerializer,
    InstanceSerializer,
    RegisterInstanceSerializer,
    ResolveSerializer,
)
from plugins_app.discovery.models import Alert, AlertRule, Health, ServiceInstance


class RegistryUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "registry_unavailable"
    default_detail = "The service registry is unavailable."


def _audit(request: Request, action: str, target: str, outcome: str = AuditEntry.Outcome.SUCCESS,
           detail: dict[str, Any] | None = None) -> None:
    record_audit(action=action, target_type="service", target=target, outcome=outcome,
                 source=AuditEntry.Source.API, request=request, detail=detail)


class ServiceViewSet(AuditedDenialsMixin, OperationPermissionMixin, viewsets.GenericViewSet):
    """Service instances in the registry (etcd or the database), healthy or not."""

    queryset = ServiceInstance.objects.all()  # names the permissions; instances come from the registry
    serializer_class = InstanceSerializer
    filter_backends: list = []
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9._:-]*"
    audit_target_type = "service"
    ORDERINGS = ("name", "id", "registered_at", "last_heartbeat", "health")

    def get_serializer_class(self):
        return {"create": RegisterInstanceSerializer, "resolve": ResolveSerializer}.get(self.action, InstanceSerializer)

    def _instance(self, pk: str) -> services.Instance:
        try:
            return services.get_instance(pk)
        except services.InstanceNotFound:
            raise NotFound(f"No live service instance {pk!r}.") from None

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, services.RegistryError) and not isinstance(exc, services.InstanceNotFound):
            exc = RegistryUnavailable(str(exc))
        return super().handle_exception(exc)

    @extend_schema(parameters=[
        OpenApiParameter("name", str), OpenApiParameter("health", str, enum=Health.values),
        OpenApiParameter("ordering", str, enum=[*ORDERINGS, *[f"-{o}" for o in ORDERINGS]]),
    ])
    def list(self, request: Request) -> Response:
        health = request.query_params.get("health") or None
        if health is not None and health not in Health.values:
            raise ValidationError({"health": [f"Choose one of {', '.join(Health.values)}."]})
        ordering = request.query_params.get("ordering") or "name"
        if ordering.lstrip("-") not in self.ORDERINGS:
            ordering = "name"
        found = services.list_instances(name=request.query_params.get("name") or None, health=health)
        found.sort(key=lambda item: (str(getattr(item, ordering.lstrip("-"))), item.id),
                   reverse=ordering.startswith("-"))
        page = self.paginate_queryset(found)
        return self.get_paginated_response(InstanceSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(InstanceSerializer(self._instance(pk)).data)

    @extend_schema(request=RegisterInstanceSerializer, responses={201: InstanceSerializer})
    def create(self, request: Request) -> Response:
        serializer = RegisterInstanceSerializer(data=request.data)
        if not serializer.is_valid():
            _audit(request, "service.register", str(request.data.get("name", ""))[:100] if hasattr(request.data, "get")
                   else "", AuditEntry.Outcome.FAILURE, {"errors": serializer.errors})
            serializer.is_valid(raise_exception=True)
        instance = services.register_instance(**serializer.validated_data)
        _audit(request, "service.register", instance.id, detail={"name": instance.name, "endpoint": instance.endpoint})
        return Response(InstanceSerializer(instance).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str) -> Response:
        try:
            instance = services.deregister_instance(pk)
        except services.InstanceNotFound:
            _audit(request, "service.deregister", pk, AuditEntry.Outcome.FAILURE, {"error": "not found"})
            raise NotFound(f"No live service instance {pk!r}.") from None
        _audit(request, "service.deregister", pk, detail={"name": instance.name})
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=InstanceSerializer)
    @action(detail=True, methods=["post"], required_permission="discovery.change_serviceinstance")
    def heartbeat(self, request: Request, pk: str) -> Response:
        """Keep the instance alive for another TTL; 404 once it has expired (register again)."""
        try:
            instance = services.heartbeat_instance(pk)
        except services.InstanceNotFound:
            _audit(request, "service.heartbeat", pk, AuditEntry.Outcome.FAILURE, {"error": "not found"})
            raise NotFound(f"No live service instance {pk!r}; it expired or was never registered.") from None
        _audit(request, "service.heartbeat", pk)
        return Response(InstanceSerializer(instance).data)

    @extend_schema(parameters=[ResolveSerializer], responses=InstanceSerializer)
    @action(detail=False, methods=["get"], required_permission="discovery.view_serviceinstance")
    def resolve(self, request: Request) -> Response:
        """Pick one healthy instance of `name` with `strategy`; 404 when none is healthy."""
        params = ResolveSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            instance = services.resolve(params.validated_data["name"], params.validated_data["strategy"])
        except services.NoHealthyInstance as exc:
            raise NotFound(str(exc)) from None
        return Response(InstanceSerializer(instance).data)

    @action(detail=False, methods=["get"], required_permission="discovery.view_serviceinstance")
    def summary(self, request: Request) -> Response:
        """Instances per service and health: `{"<service>": {"healthy": n, "unhealthy": n, "unknown": n}}`."""
        return Response(services.service_summary())


class AlertRuleViewSet(AuditedDenialsMixin, viewsets.ModelViewSet):
    """Alert rules: a metric compared with a threshold for a duration, notified to channels."""

    queryset = AlertRule.objects.all()
    serializer_class = AlertRuleSerializer
    filterset_fields = ["enabled", "severity", "state"]
    search_fields = ["name", "metric", "description"]
    ordering_fields = ["name", "severity", "state", "created_at"]
    audit_target_type = "alert_rule"

    def perform_create(self, serializer: AlertRuleSerializer) -> None:
        serializer.instance = alerts.create_rule(serializer.validated_data, request=self.request)

    def perform_update(self, serializer: AlertRuleSerializer) -> None:
        serializer.instance = alerts.update_rule(serializer.instance, serializer.validated_data, request=self.request)

    def perform_destroy(self, instance: AlertRule) -> None:
        alerts.delete_rule(instance, request=self.request)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alert history: every firing with its resolution and what each channel said (read-only)."""

    queryset = Alert.objects.select_related("rule")
    serializer_class = AlertSerializer
    filterset_fields = ["rule", "state", "severity"]
    ordering_fields = ["fired_at", "resolved_at", "severity"]
