"""Serializers of the plugin API: plugins with per-node state, commands, config versions, inputs."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from plugins_app import services
from plugins_app.models import (
    ConfigVersion,
    Plugin,
    PluginCommand,
    PluginInstance,
    PluginRollout,
    PluginStateChange,
)


def _node_status(context: dict[str, Any], node: str) -> str:
    statuses = context.get("node_statuses")
    if statuses is None:
        from core.models import Node

        statuses = context["node_statuses"] = {n.name: n.status for n in Node.objects.all()}
    return statuses.get(node, "unknown")


class PluginInstanceSerializer(serializers.ModelSerializer):
    node_status = serializers.SerializerMethodField()

    class Meta:
        model = PluginInstance
        fields = ["node", "node_status", "state", "version", "config_version", "restart_count", "error",
                  "traceback", "healthy", "health", "circuit_state", "metrics", "loaded_versions", "recent_logs", "started_at",
                  "last_heartbeat", "updated_at"]
        read_only_fields = fields

    def get_node_status(self, instance: PluginInstance) -> str:
        return _node_status(self.context, instance.node)


class PluginListSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField(help_text="One word over live nodes (worst first).")
    nodes = serializers.SerializerMethodField(help_text="{node: {state, node_status, version, restart_count}}")

    class Meta:
        model = Plugin
        fields = ["name", "version", "description", "kind", "enabled", "config_version", "state", "nodes"]
        read_only_fields = fields

    def get_nodes(self, plugin: Plugin) -> dict[str, Any]:
        # Nodes that said goodbye are history (see the detail's instances); live and lost ones show.
        nodes = {}
        for i in plugin.instances.all():
            status = _node_status(self.context, i.node)
            if status != "stopped":
                nodes[i.node] = {"state": i.state, "node_status": status, "version": i.version,
                                 "restart_count": i.restart_count}
        return nodes

    def get_state(self, plugin: Plugin) -> str:
        alive = {name for name in (i.node for i in plugin.instances.all())
                 if _node_status(self.context, name) == "alive"}
        return services.cluster_state(plugin, list(plugin.instances.all()), alive)


class StateChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = PluginStateChange
        fields = ["node", "from_state", "to_state", "version", "reason", "error", "timestamp"]
        read_only_fields = fields


class PluginCommandSerializer(serializers.ModelSerializer):
    plugin = serializers.CharField(source="plugin.name", read_only=True)
    outcome = serializers.SerializerMethodField(help_text="Per node: outcome (succeeded, failed, refused, "
                                                          "pending, lost), state, message.")

    class Meta:
        model = PluginCommand
        fields = ["id", "plugin", "action", "cascade", "nodes", "requested_by_name", "source", "target_nodes", "created_at",
                  "outcome"]
        read_only_fields = fields

    def get_outcome(self, command: PluginCommand) -> dict[str, Any]:
        return services.command_outcome(command)


class PluginDetailSerializer(PluginListSerializer):
    dependents = serializers.SerializerMethodField()
    instances = PluginInstanceSerializer(many=True, read_only=True)
    restart_count = serializers.SerializerMethodField()
    health = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()
    recent_commands = serializers.SerializerMethodField()
    rollouts = serializers.SerializerMethodField(help_text="Recent canary rollouts, newest first, with the "
                                                           "outcome per node.")

    class Meta(PluginListSerializer.Meta):
        fields = [*PluginListSerializer.Meta.fields, "dependencies", "dependents", "conflicts", "permissions",
                  "config_schema", "source", "restart_count", "health", "metrics", "instances", "history",
                  "recent_commands", "pinned_code", "rollouts", "created_at", "updated_at"]
        read_only_fields = fields

    def get_dependents(self, plugin: Plugin) -> list[str]:
        return services.dependents(plugin)

    def get_restart_count(self, plugin: Plugin) -> int:
        return sum(i.restart_count for i in plugin.instances.all())

    def get_health(self, plugin: Plugin) -> dict[str, Any]:
        return {i.node: {"healthy": i.healthy, **(i.health or {})} for i in plugin.instances.all()}

    def get_metrics(self, plugin: Plugin) -> dict[str, Any]:
        return {i.node: i.metrics for i in plugin.instances.all()}

    def get_history(self, plugin: Plugin) -> list[dict[str, Any]]:
        return StateChangeSerializer(plugin.state_changes.all()[:20], many=True).data

    def get_recent_commands(self, plugin: Plugin) -> list[dict[str, Any]]:
        commands = plugin.commands.prefetch_related("results")[:5]
        return PluginCommandSerializer(commands, many=True, context=self.context).data

    def get_rollouts(self, plugin: Plugin) -> list[dict[str, Any]]:
        rollouts = plugin.rollouts.select_related("plugin").prefetch_related(*ROLLOUT_PREFETCH)[:5]
        return PluginRolloutSerializer(rollouts, many=True, context=self.context).data


#: What PluginRolloutSerializer reads through `.all()` (prefetch these).
ROLLOUT_PREFETCH = ("node_results", "commands__results")


class PluginRolloutSerializer(serializers.ModelSerializer):
    plugin = serializers.CharField(source="plugin.name", read_only=True)
    outcome = serializers.SerializerMethodField(help_text="Per node: canary, phase (canary, promote, rollback, boot), "
                                                          "outcome (succeeded, failed, unavailable, pending, lost), "
                                                          "wanted_version, version, message.")
    commands = serializers.SerializerMethodField(help_text="The commands of its phases (see plugin-commands).")

    class Meta:
        model = PluginRollout
        fields = ["id", "plugin", "status", "from_version", "from_digest", "to_version", "to_digest", "selector",
                  "nodes", "canary_nodes", "message", "requested_by_name", "finished_by_name", "source", "created_at",
                  "finished_at", "updated_at", "outcome", "commands"]
        read_only_fields = fields

    def get_outcome(self, rollout: PluginRollout) -> dict[str, Any]:
        from plugins_app.rollouts import rollout_outcome

        return rollout_outcome(rollout, lambda node: _node_status(self.context, node))

    def get_commands(self, rollout: PluginRollout) -> list[dict[str, Any]]:
        return [{"id": c.pk, "action": c.action, "created_at": c.created_at}
                for c in sorted(rollout.commands.all(), key=lambda c: c.pk)]


class CanarySerializer(serializers.Serializer):
    selector = serializers.JSONField(
        required=False, default="",
        help_text="Label selector: text (`canary=true,zone!=b`, `gpu`, `!old`) or an object ({\"canary\": \"true\"}).")
    nodes = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list, max_length=100,
        help_text="Node names or kinds (web/worker); with a selector a node must match both.")

    def validate_selector(self, value: Any) -> str:
        from core.labels import format_selector, parse_selector

        if value is None:
            return ""
        try:
            text = format_selector(parse_selector(value))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if len(text) > 500:
            raise serializers.ValidationError("At most 500 characters.")
        return text

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("selector") and not attrs.get("nodes"):
            raise serializers.ValidationError({"selector": ["Give a label selector (e.g. canary=true) and/or nodes."]})
        return attrs


class ActionSerializer(serializers.Serializer):
    cascade = serializers.BooleanField(default=False, help_text="stop: also stop plugins that depend on it.")
    nodes = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list, max_length=100,
        help_text="restart/reload: only these nodes (names, or kinds web/worker) -- a canary.")


class ConfigVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConfigVersion
        fields = ["number", "status", "data", "author_name", "comment", "rolled_back_from", "created_at",
                  "published_at"]
        read_only_fields = fields


class ConfigSerializer(serializers.Serializer):
    key = serializers.CharField(read_only=True)
    version = serializers.IntegerField(read_only=True)
    data = serializers.JSONField()
    drafts = serializers.ListField(child=serializers.IntegerField(), read_only=True)


class ConfigUpdateSerializer(serializers.Serializer):
    data = serializers.JSONField(help_text="The whole new config (a JSON object).")
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    draft = serializers.BooleanField(default=False, help_text="Save as a draft; publish later.")

    def validate_data(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Config must be a JSON object.")
        return value


class VersionRefSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class DiffQuerySerializer(serializers.Serializer):
    # "from" is a keyword in Python; the query parameters are from/to (a/b accepted too).
    a = serializers.IntegerField(min_value=1)
    b = serializers.IntegerField(min_value=1)


class CallSerializer(serializers.Serializer):
    method = serializers.RegexField(r"^[A-Za-z][A-Za-z0-9_]{0,99}$",
                                    error_messages={"invalid": "Not a public method name."})
    args = serializers.ListField(child=serializers.JSONField(), required=False, default=list)
    kwargs = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)
    timeout = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0.001,
                                     max_value=300)
