"""Admin console for plugins: state badges per node, actions, canary rollouts, config editor with versions, diff and rollback."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from core.models import AuditEntry
from plugins_app import config_center, rollouts, services
from plugins_app.errors import ConfigInvalid, PluginError
from plugins_app.models import (
    ConfigDocument,
    ConfigVersion,
    Plugin,
    PluginCommand,
    PluginInstance,
    PluginRollout,
    PluginStateChange,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PluginInstanceInline(ReadOnlyInline):
    model = PluginInstance
    fields = ("node", "state_badge", "version", "config_version", "restart_count", "healthy", "circuit_state",
              "error", "last_heartbeat")
    readonly_fields = fields

    @admin.display(description="State")
    def state_badge(self, obj: PluginInstance) -> str:
        return format_html('<span class="badge badge-{}">{}</span>', obj.state, obj.state)


class StateChangeInline(ReadOnlyInline):
    model = PluginStateChange
    fields = ("timestamp", "node", "from_state", "to_state", "version", "reason", "error")
    readonly_fields = fields
    verbose_name_plural = "state history"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).order_by("-timestamp", "-id")


class CommandInline(ReadOnlyInline):
    model = PluginCommand
    fields = ("created_at", "action", "cascade", "requested_by_name", "source", "outcome_per_node")
    readonly_fields = fields

    @admin.display(description="Outcome per node")
    def outcome_per_node(self, obj: PluginCommand) -> str:
        return format_html_join(" ", '<span class="badge badge-{}" title="{}">{}: {}</span>', (
            (row["outcome"], row["message"], node, row["outcome"])
            for node, row in services.command_outcome(obj).items()))


def _rollout_badges(obj: PluginRollout) -> str:
    return format_html_join(" ", '<span class="badge badge-{}" title="{}">{}: {} {}</span>', (
        (row["outcome"], row["message"], node, row["outcome"], row["version"])
        for node, row in rollouts.rollout_outcome(obj).items())) or "-"


class RolloutInline(ReadOnlyInline):
    model = PluginRollout
    fields = ("created_at", "status", "from_version", "to_version", "selector", "nodes", "requested_by_name",
              "finished_by_name", "outcome_per_node")
    readonly_fields = fields
    verbose_name_plural = "canary rollouts"

    @admin.display(description="Per node")
    def outcome_per_node(self, obj: PluginRollout) -> str:
        return _rollout_badges(obj)


def _rollout_action(verb: str):
    operation = {"promote": rollouts.promote_rollout, "rollback": rollouts.rollback_rollout}[verb]

    def run(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset) -> None:
        names = sorted({obj.plugin.name if isinstance(obj, PluginRollout) else obj.name for obj in queryset})
        for name in names:
            try:
                rollout = operation(name, user=request.user, source=AuditEntry.Source.ADMIN)
                modeladmin.message_user(request, f"{verb} {name}: rollout #{rollout.pk} is {rollout.status}, sent to "
                                                 f"{len(rollout.commands.order_by('-id').first().target_nodes)} "
                                                 "node(s).")
            except PluginError as exc:
                modeladmin.message_user(request, str(exc), messages.ERROR)

    run.__name__ = f"{verb}_canary"
    label = {"promote": "Promote the canary (every node loads the new code)",
             "rollback": "Roll back the canary (every node returns to the old code)"}[verb]
    return admin.action(description=label, permissions=["operate"])(run)


class CanaryForm(forms.Form):
    selector = forms.CharField(max_length=500, required=False, help_text="Node labels, e.g. canary=true,zone!=b")
    nodes = forms.CharField(max_length=2000, required=False, help_text="Node names or kinds (web, worker), "
                                                                        "separated by spaces or commas.")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        data["nodes"] = [n for n in (data.get("nodes") or "").replace(",", " ").split() if n]
        if not data.get("selector") and not data["nodes"]:
            raise forms.ValidationError("Give a label selector and/or nodes.")
        return data


def _command_action(verb: str, cascade: bool = False):
    def run(modeladmin: PluginAdmin, request: HttpRequest, queryset) -> None:
        for plugin in queryset:
            try:
                command = services.request_command(plugin.name, verb, user=request.user, cascade=cascade,
                                                   source=AuditEntry.Source.ADMIN)
                modeladmin.message_user(request, f"{verb} {plugin.name}: sent to "
                                                 f"{len(command.target_nodes)} node(s) (command #{command.pk}).")
            except PluginError as exc:
                modeladmin.message_user(request, str(exc), messages.ERROR)

    label = f"{verb.title()} selected plugins" + (" (and their dependents)" if cascade else "")
    run.__name__ = f"{verb}_plugins" + ("_cascade" if cascade else "")
    return admin.action(description=label, permissions=["operate"])(run)


@admin.register(Plugin)
class PluginAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "kind", "enabled", "states", "config_link", "updated_at")
    list_filter = ("enabled", "kind")
    search_fields = ("name", "description")
    readonly_fields = ("name", "version", "description", "kind", "enabled", "dependencies", "conflicts",
                       "permissions", "config_schema", "source", "config_version", "config_link", "pinned_code",
                       "canary_link", "created_at", "updated_at")
    fields = readonly_fields
    inlines = (PluginInstanceInline, RolloutInline, CommandInline, StateChangeInline)

    def get_fields(self, request: HttpRequest, obj: Any = None):
        return [*self.readonly_fields, "recent_logs"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        return [*self.readonly_fields, "recent_logs"]

    @admin.display(description="Recent log lines per node")
    def recent_logs(self, obj: Plugin) -> str:
        rows = [(i.node, line.get("time", ""), line.get("level", ""), line.get("message", ""))
                for i in obj.instances.all() for line in (i.recent_logs or [])[-30:]]
        if not rows:
            return "-"
        return format_html("<pre>{}</pre>", format_html_join("\n", "{} {} {:>7} {}", rows))
    actions = [_command_action("start"), _command_action("stop"), _command_action("stop", cascade=True),
               _command_action("restart"), _command_action("reload"), _rollout_action("promote"),
               _rollout_action("rollback")]

    def get_urls(self):
        return [path("<int:pk>/canary/", self.admin_site.admin_view(self.canary_view), name="plugins_app_plugin_canary"),
                *super().get_urls()]

    @admin.display(description="Canary")
    def canary_link(self, obj: Plugin) -> str:
        active = rollouts.active_rollout(obj)
        if active is not None:
            url = reverse("admin:plugins_app_pluginrollout_change", args=[active.pk])
            return format_html('<a href="{}">rollout #{} is {}</a> (promote or roll back from the actions)', url,
                               active.pk, active.status)
        return format_html('<a href="{}">Canary the code on disk to some nodes…</a>',
                           reverse("admin:plugins_app_plugin_canary", args=[obj.pk]))

    def canary_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        plugin = get_object_or_404(Plugin, pk=pk)
        if not self.has_operate_permission(request):
            from core.services import record_audit

            record_audit(action="plugin.canary", target_type="plugin", target=plugin.name, user=request.user,
                         outcome=AuditEntry.Outcome.DENIED, source=AuditEntry.Source.ADMIN)
            raise PermissionDenied
        form = CanaryForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                rollout = rollouts.start_canary(plugin.name, selector=form.cleaned_data["selector"],
                                                nodes=form.cleaned_data["nodes"], user=request.user,
                                                source=AuditEntry.Source.ADMIN)
            except PluginError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Canary of {plugin.name}: rollout #{rollout.pk} sent to "
                                           f"{', '.join(rollout.canary_nodes)}.")
                return HttpResponseRedirect(reverse("admin:plugins_app_pluginrollout_change", args=[rollout.pk]))
        return TemplateResponse(request, "admin/plugins_app/plugin/canary.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "plugin": plugin, "form": form,
            "title": f"Canary {plugin.name}",
        })

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("instances")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # plugins come from configured sources only, never from a form

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("plugins_app.operate_plugin")

    @admin.display(description="State per node")
    def states(self, obj: Plugin) -> str:
        return format_html_join(" ", '<span class="badge badge-{}" title="{}">{}</span>',
                                ((i.state, i.node, i.state) for i in obj.instances.all())) or "-"

    @admin.display(description="Config")
    def config_link(self, obj: Plugin) -> str:
        document = ConfigDocument.objects.filter(key=obj.name).first()
        if document is None:
            return "-"
        url = reverse("admin:plugins_app_configdocument_change", args=[document.pk])
        return format_html('<a href="{}">v{}</a>', url, document.current_version)


class ConfigVersionInline(ReadOnlyInline):
    model = ConfigVersion
    fields = ("number", "status", "author_name", "comment", "rolled_back_from", "created_at", "published_at",
              "data_preview", "links")
    readonly_fields = fields

    @admin.display(description="Data")
    def data_preview(self, obj: ConfigVersion) -> str:
        return format_html("<code>{}</code>", json.dumps(obj.data, sort_keys=True)[:200])

    @admin.display(description="")
    def links(self, obj: ConfigVersion) -> str:
        base = reverse("admin:plugins_app_configdocument_diff", args=[obj.document_id])
        current = obj.document.current_version
        verb = "publish" if obj.status == ConfigVersion.Status.DRAFT else "rollback"
        label = "publish this draft" if verb == "publish" else "roll back to this"
        return format_html('<a href="{}?from={}&to={}">diff vs current</a> · <a href="{}">{}</a>', base, current,
                           obj.number, reverse(f"admin:plugins_app_configdocument_{verb}",
                                               args=[obj.document_id, obj.number]), label)


class ConfigDocumentForm(forms.ModelForm):
    """Edits a config by saving a NEW version: JSON validated against the plugin's schema."""

    new_data = forms.JSONField(label="Config (JSON)", widget=forms.Textarea(attrs={"rows": 12, "cols": 80}))
    comment = forms.CharField(max_length=500, required=False)
    save_as_draft = forms.BooleanField(required=False, help_text="Publish it later from the versions below.")

    class Meta:
        model = ConfigDocument
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            current = config_center.current_config(self.instance.key)
            self.fields["new_data"].initial = current[1] if current else {}

    def clean_new_data(self) -> Any:
        data = self.cleaned_data["new_data"]
        try:
            config_center.validate_for(self.instance.key, data)
        except ConfigInvalid as exc:
            raise forms.ValidationError([f"{field}: {message}" for field, msgs in exc.fields.items()
                                         for message in msgs]) from None
        return data


@admin.register(ConfigDocument)
class ConfigDocumentAdmin(admin.ModelAdmin):
    form = ConfigDocumentForm
    list_display = ("key", "current_version", "updated_at")
    search_fields = ("key",)
    readonly_fields = ("key", "current_version", "updated_at")
    inlines = (ConfigVersionInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ConfigDocument, form: ConfigDocumentForm, change: bool) -> None:
        data = form.cleaned_data["new_data"]
        current = config_center.current_config(obj.key)
        if current and current[1] == data and not form.cleaned_data["save_as_draft"]:
            return
        version = config_center.update_config(obj.key, data, user=request.user, comment=form.cleaned_data["comment"],
                                              draft=form.cleaned_data["save_as_draft"],
                                              source=AuditEntry.Source.ADMIN)
        self.message_user(request, f"Saved version {version.number} ({version.status}).")

    def get_urls(self):
        return [
            path("<int:pk>/diff/", self.admin_site.admin_view(self.diff_view), name="plugins_app_configdocument_diff"),
            path("<int:pk>/rollback/<int:number>/", self.admin_site.admin_view(self.rollback_view),
                 name="plugins_app_configdocument_rollback"),
            path("<int:pk>/publish/<int:number>/", self.admin_site.admin_view(self.publish_view),
                 name="plugins_app_configdocument_publish"),
            *super().get_urls(),
        ]

    def diff_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        document = get_object_or_404(ConfigDocument, pk=pk)
        if not self.has_view_permission(request, document):
            raise PermissionDenied
        numbers = list(document.versions.values_list("number", flat=True))
        try:
            a = int(request.GET.get("from", min(numbers, default=1)))
            b = int(request.GET.get("to", document.current_version))
            diff = config_center.diff_config(document.key, a, b)
        except (ValueError, PluginError) as exc:
            diff, a, b = {"error": str(exc), "changes": [], "unified": ""}, 0, 0
        return TemplateResponse(request, "admin/plugins_app/configdocument/diff.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "document": document, "diff": diff,
            "numbers": numbers, "a": a, "b": b, "title": f"Diff of {document.key}",
        })

    def _operate(self, request: HttpRequest, pk: int, number: int, verb: str) -> HttpResponse:
        document = get_object_or_404(ConfigDocument, pk=pk)
        change_url = reverse("admin:plugins_app_configdocument_change", args=[pk])
        if not request.user.has_perm("plugins_app.publish_configdocument"):
            from core.services import record_audit

            record_audit(action=f"config.{verb}", target_type="config", target=document.key, user=request.user,
                         outcome=AuditEntry.Outcome.DENIED, source=AuditEntry.Source.ADMIN)
            raise PermissionDenied
        if request.method != "POST":
            return TemplateResponse(request, "admin/plugins_app/configdocument/confirm.html", {
                **self.admin_site.each_context(request), "opts": self.model._meta, "document": document,
                "number": number, "verb": verb, "title": f"{verb.title()} {document.key} to version {number}?",
            })
        try:
            if verb == "rollback":
                version = config_center.rollback_config(document.key, number, user=request.user,
                                                        source=AuditEntry.Source.ADMIN)
            else:
                version = config_center.publish_config(document.key, number, user=request.user,
                                                       source=AuditEntry.Source.ADMIN)
            self.message_user(request, f"{verb.title()} done: version {version.number} is current.")
        except PluginError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(change_url)

    def rollback_view(self, request: HttpRequest, pk: int, number: int) -> HttpResponse:
        return self._operate(request, pk, number, "rollback")

    def publish_view(self, request: HttpRequest, pk: int, number: int) -> HttpResponse:
        return self._operate(request, pk, number, "publish")


@admin.register(PluginCommand)
class PluginCommandAdmin(admin.ModelAdmin):
    list_display = ("created_at", "plugin", "action", "cascade", "requested_by_name", "source", "outcome_per_node")
    list_filter = ("action", "source")
    search_fields = ("plugin__name", "requested_by_name")
    readonly_fields = ("plugin", "action", "cascade", "requested_by_name", "source", "target_nodes", "created_at",
                       "outcome_per_node")
    exclude = ("requested_by",)
    outcome_per_node = CommandInline.outcome_per_node

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PluginRollout)
class PluginRolloutAdmin(admin.ModelAdmin):
    list_display = ("created_at", "plugin", "status", "from_version", "to_version", "selector", "requested_by_name",
                    "outcome_per_node")
    list_filter = ("status",)
    search_fields = ("plugin__name", "requested_by_name", "selector")
    readonly_fields = ("plugin", "status", "from_version", "from_digest", "to_version", "to_digest", "selector",
                       "nodes", "canary_nodes", "message", "requested_by_name", "finished_by_name", "source",
                       "created_at", "finished_at", "outcome_per_node")
    exclude = ("requested_by",)
    actions = [_rollout_action("promote"), _rollout_action("rollback")]

    @admin.display(description="Per node")
    def outcome_per_node(self, obj: PluginRollout) -> str:
        return _rollout_badges(obj)

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("plugin").prefetch_related("node_results",
                                                                                       "commands__results")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a canary starts from its plugin's page (or the API / CLI)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("plugins_app.operate_plugin")
