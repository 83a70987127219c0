"""Plugin runtime models: desired state, per-node instances, state history, commands, rollouts, config versions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class PluginState(models.TextChoices):
    REGISTERED = "registered", "Registered"
    INITIALIZED = "initialized", "Initialized"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"
    RELOADING = "reloading", "Reloading"


class Plugin(models.Model):
    """A plugin known to the cluster and its desired state (what every node reconciles to)."""

    name = models.CharField(max_length=63, unique=True)
    description = models.TextField(blank=True)
    version = models.CharField(max_length=64, blank=True, help_text="Latest version a node loaded.")
    kind = models.CharField(max_length=16, default="plain")
    dependencies = models.JSONField(default=list, blank=True)
    conflicts = models.JSONField(default=list, blank=True)
    permissions = models.JSONField(default=list, blank=True)
    config_schema = models.JSONField(default=dict, blank=True)
    source = models.JSONField(default=dict, blank=True, help_text="Where the code was discovered.")
    enabled = models.BooleanField(default=True, help_text="Desired: running on every node.")
    config_version = models.PositiveIntegerField(default=0, help_text="Desired config version (0: none).")
    #: Desired code: {"version", "digest", "rollout"} every node should run -- set while a
    #: canary runs (the nodes outside it stay on the old code) and after a rollback (the
    #: files on disk hold the rejected code). Empty: whatever the plugin's source has.
    pinned_code = models.JSONField(default=dict, blank=True,
                                   help_text="Code every node should run (canary / rolled back); empty: the source's.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("operate_plugin", "Can start, stop, restart and reload plugins"),
            ("call_plugin", "Can call a plugin's methods"),
        ]

    def __str__(self) -> str:
        return self.name


class PluginInstance(models.Model):
    """The actual state of a plugin on one node (node = core.models.Node name)."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="instances")
    node = models.CharField(max_length=200, db_index=True)
    state = models.CharField(max_length=16, choices=PluginState.choices, default=PluginState.REGISTERED)
    version = models.CharField(max_length=64, blank=True)
    code_digest = models.CharField(max_length=64, blank=True, help_text="Fingerprint of the code running here.")
    loaded_versions = models.JSONField(default=list, blank=True)
    config_version = models.PositiveIntegerField(default=0, help_text="Config version applied.")
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    restart_count = models.PositiveIntegerField(default=0)
    healthy = models.BooleanField(null=True)
    health = models.JSONField(default=dict, blank=True)
    circuit_state = models.CharField(max_length=16, default="closed")
    metrics = models.JSONField(default=dict, blank=True, help_text="Per-method call counts and latency.")
    recent_logs = models.JSONField(default=list, blank=True, help_text="The plugin's last log lines on this node.")
    started_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["plugin__name", "node"]
        constraints = [models.UniqueConstraint(fields=["plugin", "node"], name="plugin_instance_per_node")]

    def __str__(self) -> str:
        return f"{self.plugin.name}@{self.node}"


class PluginStateChange(models.Model):
    """One transition of a plugin instance: the state history."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="state_changes")
    node = models.CharField(max_length=200)
    from_state = models.CharField(max_length=16, choices=PluginState.choices)
    to_state = models.CharField(max_length=16, choices=PluginState.choices)
    version = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-timestamp", "-id"]

    def __str__(self) -> str:
        return f"{self.plugin.name}@{self.node}: {self.from_state} -> {self.to_state}"


class PluginCommand(models.Model):
    """An operator's start/stop/restart/reload, fanned out to the nodes; results per node."""

    class Action(models.TextChoices):
        START = "start", "Start"
        STOP = "stop", "Stop"
        RESTART = "restart", "Restart"
        RELOAD = "reload", "Reload"
        # The phases of a rollout (PluginRollout): given by the rollout services only.
        CANARY = "canary", "Canary"
        PROMOTE = "promote", "Promote"
        ROLLBACK = "rollback", "Roll back"

    #: What an operator asks for directly (start/stop/restart/reload); the rest belong to rollouts.
    OPERATOR_ACTIONS = ("start", "stop", "restart", "reload")

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="commands")
    rollout = models.ForeignKey("PluginRollout", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="commands")
    action = models.CharField(max_length=16, choices=Action.choices)
    cascade = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=16, blank=True)
    #: Only these nodes (names or kinds "web"/"worker") carry it out; empty: all. For
    #: restart/reload only -- a canary reload goes to a subset first, then to all (promote).
    nodes = models.JSONField(default=list, blank=True)
    #: Nodes alive when the command was given: the ones expected to answer.
    target_nodes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.plugin.name} #{self.pk}"

    def targets(self, node_name: str, node_kind: str) -> bool:
        return not self.nodes or node_name in self.nodes or node_kind in self.nodes


class PluginCommandResult(models.Model):
    """What one node did with a command."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused"

    command = models.ForeignKey(PluginCommand, on_delete=models.CASCADE, related_name="results")
    node = models.CharField(max_length=200)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    state = models.CharField(max_length=16, blank=True)
    message = models.TextField(blank=True)
    finished_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["command", "node"]
        constraints = [models.UniqueConstraint(fields=["command", "node"], name="plugin_command_result_per_node")]

    def __str__(self) -> str:
        return f"{self.command} on {self.node}: {self.outcome}"


class PluginRollout(models.Model):
    """New code of a plugin going to some nodes first (a canary by node label), then promoted or rolled back.

    `from_*` is the code the nodes ran when the canary began, `to_*` the code on disk (its
    version is filled in by the first canary node that loads it). While the rollout is
    `canary` (or `failed`) the nodes it selects should run the new code and every other
    node the old; `Plugin.pinned_code` says the latter, so that a node that restarts
    mid-canary knows which version it should run.
    """

    class Status(models.TextChoices):
        CANARY = "canary", "Canary"
        PROMOTED = "promoted", "Promoted"
        ROLLED_BACK = "rolled_back", "Rolled back"
        FAILED = "failed", "Failed"

    #: The statuses in which the rollout still decides what nodes run (promote/roll back pending).
    ACTIVE = (Status.CANARY, Status.FAILED)

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="rollouts")
    from_version = models.CharField(max_length=64, blank=True)
    from_digest = models.CharField(max_length=64, blank=True)
    to_version = models.CharField(max_length=64, blank=True, help_text="Filled in when a canary node loads it.")
    to_digest = models.CharField(max_length=64)
    selector = models.CharField(max_length=500, blank=True, help_text="Label selector, e.g. canary=true,zone!=b.")
    nodes = models.JSONField(default=list, blank=True, help_text="Node names or kinds (with the selector: both).")
    canary_nodes = models.JSONField(default=list, blank=True, help_text="Live nodes the canary went to.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANARY, db_index=True)
    message = models.TextField(blank=True, help_text="Why the canary failed.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150, blank=True)
    finished_by_name = models.CharField(max_length=150, blank=True, help_text="Who promoted or rolled it back.")
    source = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.plugin.name} {self.from_version or '?'} -> {self.to_version or self.to_digest[:8]} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE


class PluginRolloutNode(models.Model):
    """Where one node stands in a rollout: the code it runs and how its last step went."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        #: The code it should run is not on this node (e.g. it restarted after the files changed).
        UNAVAILABLE = "unavailable", "Unavailable"

    rollout = models.ForeignKey(PluginRollout, on_delete=models.CASCADE, related_name="node_results")
    node = models.CharField(max_length=200)
    canary = models.BooleanField(default=False, help_text="The rollout's selector picks this node.")
    phase = models.CharField(max_length=16, help_text="canary, promote, rollback or boot.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    wanted_version = models.CharField(max_length=64, blank=True)
    version = models.CharField(max_length=64, blank=True, help_text="The version it runs now.")
    digest = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["rollout", "node"]
        constraints = [models.UniqueConstraint(fields=["rollout", "node"], name="plugin_rollout_result_per_node")]

    def __str__(self) -> str:
        return f"{self.rollout_id} on {self.node}: {self.outcome}"


class ConfigDocument(models.Model):
    """A named, versioned config document (a plugin's config is the document named after it)."""

    key = models.CharField(max_length=200, unique=True)
    current_version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        permissions = [("publish_configdocument", "Can publish and roll back config versions")]

    def __str__(self) -> str:
        return self.key


class ConfigVersion(models.Model):
    """One version of a config document; never deleted (a rollback adds a version)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    document = models.ForeignKey(ConfigDocument, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    data = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PUBLISHED)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150, blank=True)
    comment = models.CharField(max_length=500, blank=True)
    rolled_back_from = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["document", "-number"]
        constraints = [models.UniqueConstraint(fields=["document", "number"], name="config_version_number")]

    def __str__(self) -> str:
        return f"{self.document.key} v{self.number}"
