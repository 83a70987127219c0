"""API views of the plugin runtime: plugins (state per node, actions, config, call) and commands."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.permissions import AuditedDenialsMixin, OperationPermissionMixin
from core.models import AuditEntry
from core.services import record_audit
from plugins_app import config_center, errors, rollouts, services
from plugins_app.api.serializers import (
    ROLLOUT_PREFETCH,
    ActionSerializer,
    CallSerializer,
    CanarySerializer,
    ConfigSerializer,
    ConfigUpdateSerializer,
    ConfigVersionSerializer,
    DiffQuerySerializer,
    PluginCommandSerializer,
    PluginDetailSerializer,
    PluginListSerializer,
    PluginRolloutSerializer,
    VersionRefSerializer,
)
from plugins_app.models import Plugin, PluginCommand, PluginInstance, PluginRollout

STATUS_OF_ERROR = {
    errors.PluginNotFound: 404, config_center.ConfigNotFound: 404, errors.MethodNotFound: 404,
    errors.ConfigInvalid: 400, errors.LifecycleError: 409, errors.PluginNotRunning: 409,
    # What the plugin did is reported as 4xx: the request was fine, the plugin (a dependency of
    # it) failed, is shedding load or timed out -- never a 5xx that would read as our own bug.
    errors.CircuitOpen: 429, errors.PluginBusy: 429, errors.PluginCallTimeout: 424, errors.PluginCallError: 424,
}
VIEW = "plugins_app.view_plugin"
OPERATE = "plugins_app.operate_plugin"
CONFIG_CHANGE = "plugins_app.change_configdocument"
CONFIG_PUBLISH = "plugins_app.publish_configdocument"
CALL = "plugins_app.call_plugin"


class PluginAPIError(exceptions.APIException):
    def __init__(self, exc: errors.PluginError) -> None:
        self.status_code = next((code for cls, code in STATUS_OF_ERROR.items() if isinstance(exc, cls)), 400)
        if isinstance(exc, errors.ConfigInvalid):
            raise exceptions.ValidationError({"data": exc.fields}) from exc
        super().__init__(detail=str(exc), code=exc.code)


class PluginViewSet(AuditedDenialsMixin, OperationPermissionMixin, viewsets.ReadOnlyModelViewSet):
    """Plugins known to the cluster, with their state on every node; operations fan out to the nodes."""

    audit_target_type = "plugin"

    queryset = Plugin.objects.prefetch_related(
        Prefetch("instances", queryset=PluginInstance.objects.order_by("node"))
    ).order_by("name")
    lookup_field = "name"
    lookup_value_regex = r"[a-z][a-z0-9_-]*"
    search_fields = ["name", "description"]
    ordering_fields = ["name", "updated_at"]
    filterset_fields = ["enabled", "kind"]

    def get_serializer_class(self):
        return PluginListSerializer if self.action == "list" else PluginDetailSerializer

    def get_object(self) -> Plugin:
        try:
            return super().get_object()
        except exceptions.NotFound:
            raise exceptions.NotFound(f"No plugin named {self.kwargs.get('name')!r}.") from None

    def _require(self, request: Request, permission: str, name: str) -> None:
        if not request.user.has_perm(permission):
            record_audit(action=f"plugin.{self.action}", target_type="plugin", target=name,
                         outcome=AuditEntry.Outcome.DENIED, source=AuditEntry.Source.API, request=request)
            raise exceptions.PermissionDenied()

    # -- lifecycle operations ---------------------------------------------------------
    def _command(self, request: Request, name: str, verb: str) -> Response:
        params = ActionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            command = services.request_command(name, verb, user=request.user, cascade=params.validated_data["cascade"],
                                               nodes=params.validated_data["nodes"], source=AuditEntry.Source.API,
                                               request=request)
        except errors.PluginError as exc:
            raise PluginAPIError(exc) from None
        return Response(PluginCommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ActionSerializer, responses={202: PluginCommandSerializer})
    @action(detail=True, methods=["post"], required_permission=OPERATE)
    def start(self, request: Request, name: str) -> Response:
        """Enable the plugin and start it on every node."""
        return self._command(request, name, "start")

    @extend_schema(request=ActionSerializer, responses={202: PluginCommandSerializer})
    @action(detail=True, methods=["post"], required_permission=OPERATE)
    def stop(self, request: Request, name: str) -> Response:
        """Disable and stop it everywhere; refused (409) while enabled plugins depend on it unless cascade."""
        return self._command(request, name, "stop")

    @extend_schema(request=ActionSerializer, responses={202: PluginCommandSerializer})
    @action(detail=True, methods=["post"], required_permission=OPERATE)
    def restart(self, request: Request, name: str) -> Response:
        """stop + initialize + start on every node; the outcome per node is in the command."""
        return self._command(request, name, "restart")

    @extend_schema(request=ActionSerializer, responses={202: PluginCommandSerializer})
    @action(detail=True, methods=["post"], required_permission=OPERATE)
    def reload(self, request: Request, name: str) -> Response:
        """Hot reload from the plugin's source on every node (the old instance stays on failure)."""
        return self._command(request, name, "reload")

    # -- canary rollouts ---------------------------------------------------------------
    def _rollout(self, rollout: PluginRollout) -> Response:
        rollout = PluginRollout.objects.select_related("plugin").prefetch_related(*ROLLOUT_PREFETCH).get(pk=rollout.pk)
        return Response(PluginRolloutSerializer(rollout).data, status=status.HTTP_202_ACCEPTED)

    def _finish_rollout(self, operation: Any, request: Request, name: str) -> Response:
        """Promote or roll back the plugin's active canary (`operation` from `rollouts`)."""
        try:
            rollout = operation(name, user=request.user, source=AuditEntry.Source.API, request=request)
        except errors.PluginError as exc:
            raise PluginAPIError(exc) from None
        return self._rollout(rollout)

    @extend_schema(request=CanarySerializer, responses={202: PluginRolloutSerializer})
    @action(detail=True, methods=["post"], required_permission=OPERATE)
    def canary(self, request: Request, name: str) -> Response:
        """Send the plugin's new code to the nodes a label selector (and/or names, kinds) picks; others keep the old."""
        params = CanarySerializer(data=request.data)
        try:
            if not params.is_valid():
                services.get_plugin(name)  # an unknown plugin is a 404 whatever the body says
                raise exceptions.ValidationError(params.errors)
            rollout = rollouts.start_canary(name, selector=params.validated_data["selector"],
                                            nodes=params.validated_data["nodes"], user=request.user,
                                            source=AuditEntry.Source.API, request=request)
        except errors.PluginError as exc:
            raise PluginAPIError(exc) from None
        return self._rollout(rollout)

    @extend_schema(request=None, responses={202: PluginRolloutSerializer})
    @action(detail=True, methods=["post"], url_path="canary/promote", required_permission=OPERATE)
    def promote(self, request: Request, name: str) -> Response:
        """Every node loads the active canary's code (409 when there is none or it failed)."""
        return self._finish_rollout(rollouts.promote_rollout, request, name)

    @extend_schema(request=None, responses={202: PluginRolloutSerializer})
    @action(detail=True, methods=["post"], url_path="canary/rollback", required_permission=OPERATE)
    def rollback(self, request: Request, name: str) -> Response:
        """Every node returns to the code it ran before the active canary (409 when there is none)."""
        return self._finish_rollout(rollouts.rollback_rollout, request, name)

    # -- config ------------------------------------------------------------------------
    @extend_schema(methods=["GET"], responses=ConfigSerializer)
    @extend_schema(methods=["PUT"], request=ConfigUpdateSerializer, responses=ConfigVersionSerializer)
    @action(detail=True, methods=["get", "put"], required_permission=VIEW)
    def config(self, request: Request, name: str) -> Response:
        """GET the current config; PUT a new version (validated; `draft` to publish later)."""
        plugin = self.get_object()
        if request.method == "GET":
            try:
                return Response(ConfigSerializer(config_center.get_config(plugin.name)).data)
            except errors.PluginError as exc:
                raise PluginAPIError(exc) from None
        self._require(request, CONFIG_CHANGE, name)
        params = ConfigUpdateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            version = config_center.update_config(
                plugin.name, params.validated_data["data"], user=request.user,
                comment=params.validated_data["comment"], draft=params.validated_data["draft"],
                source=AuditEntry.Source.API, request=request)
        except errors.PluginError as exc:
            raise PluginAPIError(exc) from None
        return Response(ConfigVersionSerializer(version).data)

    @extend_schema(responses=ConfigVersionSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="config/versions", required_permission=VIEW)
    def config_versions(self, request: Request, name: str) -> Response:
        """Every version, newest first."""
        plugin = self.get_object()
        try:
            versions = config_center.config_versions(plugin.name)
        except errors.PluginError as exc:
            raise PluginAPIError(exc) from None
        page = self.paginate_queryset(versions)
        return self.get_paginated_response(ConfigVersionSerializer(page, many=True).data)

    @extend_schema(parameters=[OpenApiParameter("from", int, required=True), OpenApiParameter("to", int, required=True)])
    @action(detail=True, methods=["get"], url_path="config/diff", required_permission=VIEW)
    def config_diff(self, request: Request, name: str) -> Response:
        """What changed between versions `from` and `to`."""
        plugin = self.get_object()
        query = DiffQuerySerializer(data={"a": request.query_params.get("from", request.query_params.get("a")),
                                          "b": request.query_params.get("to", request.query_params.get("b"))})
        if not query.is_valid():
            raise exceptions.ValidationError({{"a": "from", "b": "to"}[k]: v for k, v in query.errors.items()})
        try:
            return Response(config_center.diff_config(plugin.name, query.validated_data["a"], query.validated_data["b"]))
        except errors.PluginError as exc:
            raise PluginAPIError(exc) from None

    @extend_schema(request=VersionRefSerializer, responses=ConfigVersionSerializer)
    @action(detail=True, methods=["post"], url_path="config/rollback", required_permission=CONFIG_PUBLISH)
    def config_rollback(self, request: Request, name: str) -> Response:
        """Make an earlier version current again, as a new version."""
        plugin = self.get_object()
        params = VersionRefSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            version = config_center.rollback_config(plugin.name, params.validated_data["version"], user=request.user,
                                                    comment=params.validated_data["comment"],
                                                    source=AuditEntry.Source.API, request=request)
        except errors.PluginError as exc:
            raise PluginAPIError(exc) from None
        return Response(ConfigVersionSerializer(version).data)

    @extend_schema(request=VersionRefSerializer, responses=ConfigVersionSerializer)
    @action(detail=True, methods=["post"], url_path="config/publish", required_permission=CONFIG_PUBLISH)
    def config_publish(self, request: Request, name: str) -> Response:
        """Publish a draft version: it becomes current and nodes apply it."""
        plugin = self.get_object()
        params = VersionRefSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            version = config_center.publish_config(plugin.name, params.validated_data["version"], user=request.user,
                                                   source=AuditEntry.Source.API, request=request)
        except errors.PluginError as exc:
            raise PluginAPIError(exc) from None
        return Response(ConfigVersionSerializer(version).data)

    # -- metrics and calls ---------------------------------------------------------------
    @action(detail=True, methods=["get"], required_permission=VIEW)
    def metrics(self, request: Request, name: str) -> Response:
        """Per node: per-method calls, errors, mean latency, and the circuit state."""
        plugin = self.get_object()
        return Response({i.node: {"circuit_state": i.circuit_state, "methods": i.metrics}
                         for i in plugin.instances.all()})

    @extend_schema(request=CallSerializer)
    @action(detail=True, methods=["post"], required_permission=CALL)
    def call(self, request: Request, name: str) -> Response:
        """Call a public method on this (web) node's instance, through the circuit breaker. Operators only."""
        params = CallSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        try:
            result = services.call_plugin(name, data["method"], data["args"], data["kwargs"], timeout=data["timeout"],
                                          user=request.user, source=AuditEntry.Source.API, request=request)
        except errors.PluginError as exc:
            raise PluginAPIError(exc) from None
        return Response({"plugin": name, "method": data["method"], "result": _jsonable(result)})


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


class PluginCommandViewSet(OperationPermissionMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           viewsets.GenericViewSet):
    """Commands given to plugins (who asked, when) and their outcome on each node."""

    queryset = PluginCommand.objects.select_related("plugin").prefetch_related("results").order_by("-id")
    serializer_class = PluginCommandSerializer
    filterset_fields = ["action", "plugin__name"]
    ordering_fields = ["created_at"]
    required_permission = VIEW


class PluginRolloutViewSet(OperationPermissionMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           viewsets.GenericViewSet):
    """Canary rollouts of new plugin code: selector, versions, status and where each node stands."""

    queryset = PluginRollout.objects.select_related("plugin").prefetch_related(*ROLLOUT_PREFETCH).order_by("-id")
    serializer_class = PluginRolloutSerializer
    filterset_fields = ["status", "plugin__name"]
    ordering_fields = ["created_at"]
    required_permission = VIEW
