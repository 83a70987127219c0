"""Seed routes: GET /plugins/status and POST /plugins/{name}/restart, in the seed's envelope."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.permissions import AuditedDenialsMixin
from core.api.seed import SeedAPIView, seed_response
from core.models import AuditEntry, Node
from plugins_app import services
from plugins_app.errors import LifecycleError, PluginNotFound
from plugins_app.models import Plugin


class PluginStatusView(SeedAPIView):
    """`{"plugins": {"<name>": "<state>"}, "total": n}` -- the state over live nodes."""

    required_permission = "plugins_app.view_plugin"

    @extend_schema(responses=inline_serializer("SeedPluginStatus", {
        "code": serializers.IntegerField(), "message": serializers.CharField(),
        "data": inline_serializer("SeedPluginStatusData", {
            "plugins": serializers.DictField(child=serializers.CharField()), "total": serializers.IntegerField()}),
    }))
    def get(self, request: Request) -> Response:
        alive = set(Node.objects.alive().values_list("name", flat=True))
        plugins = {plugin.name: services.cluster_state(plugin, list(plugin.instances.all()), alive)
                   for plugin in Plugin.objects.prefetch_related("instances")}
        return seed_response({"plugins": plugins, "total": len(plugins)})


class PluginRestartView(AuditedDenialsMixin, SeedAPIView):
    """`{"message", "plugin"}`; 404 for an unknown plugin."""

    required_permission = "plugins_app.operate_plugin"

    audit_target_type = "plugin"
    audit_source = AuditEntry.Source.SEED_API

    def denied_action(self, request: Request) -> str:
        return "plugin.restart"

    @extend_schema(request=None, responses=inline_serializer("SeedPluginRestart", {
        "code": serializers.IntegerField(), "message": serializers.CharField(),
        "data": inline_serializer("SeedPluginRestartData", {
            "message": serializers.CharField(), "plugin": serializers.CharField(),
            "command": serializers.IntegerField()}),
    }))
    def post(self, request: Request, name: str) -> Response:
        try:
            command = services.request_command(name, "restart", user=request.user,
                                               source=AuditEntry.Source.SEED_API, request=request)
        except PluginNotFound:
            raise exceptions.NotFound(f"Plugin {name!r} not found") from None
        except LifecycleError as exc:
            raise exceptions.ValidationError(str(exc)) from None
        return seed_response({"message": f"Plugin {name} restart requested", "plugin": name,
                              "command": command.pk})
