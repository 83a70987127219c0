"""Service registry (database back end), alert rules and alert history."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Health(models.TextChoices):
    """An instance's health: `unknown` until its first check, then healthy or unhealthy."""

    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    UNHEALTHY = "unhealthy", "Unhealthy"


class ServiceInstanceQuerySet(models.QuerySet):
    def live(self, now: datetime | None = None) -> ServiceInstanceQuerySet:
        return self.filter(expires_at__gt=now or timezone.now())

    def expired(self, now: datetime | None = None) -> ServiceInstanceQuerySet:
        return self.filter(expires_at__lte=now or timezone.now())


class ServiceInstance(models.Model):
    """One registered instance of a service; it lives until `expires_at` unless heartbeats extend it.

    Only the database back end stores rows here; with etcd the instances live in etcd and
    this model still names the permissions of the services API.
    """

    id = models.CharField(max_length=128, primary_key=True)
    name = models.CharField(max_length=128, db_index=True)
    version = models.CharField(max_length=64, blank=True)
    endpoint = models.CharField(max_length=512)
    metadata = models.JSONField(default=dict, blank=True)
    weight = models.PositiveIntegerField(default=1)
    health_check = models.JSONField(default=dict, blank=True, help_text="Health check: type http|tcp|custom, interval, timeout")
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.UNKNOWN)
    health_message = models.CharField(max_length=500, blank=True)
    ttl = models.FloatField(default=30.0)
    registered_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    last_check = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)

    objects = ServiceInstanceQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "service instance"

    def __str__(self) -> str:
        return f"{self.name}/{self.id}"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class Comparison(models.TextChoices):
    GT = "gt", ">"
    GTE = "gte", ">="
    LT = "lt", "<"
    LTE = "lte", "<="
    EQ = "eq", "=="
    NE = "ne", "!="


class AlertRule(models.Model):
    """Fires when `metric` (a sample of Chameleon's metrics, summed over `labels`) compared with
    `threshold` holds for `duration` seconds; resolves when it no longer holds."""

    class State(models.TextChoices):
        OK = "ok", "OK"
        PENDING = "pending", "Pending"
        FIRING = "firing", "Firing"

    name = models.CharField(max_length=128, unique=True)
    description = models.TextField(blank=True)
    metric = models.CharField(max_length=200, help_text="Sample name, e.g. chameleon_service_instances")
    labels = models.JSONField(default=dict, blank=True, help_text="Label values the samples must have")
    condition = models.CharField(max_length=8, choices=Comparison.choices, default=Comparison.GT)
    threshold = models.FloatField()
    duration = models.FloatField(default=0.0, help_text="Seconds the condition must hold before firing")
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    channels = models.JSONField(default=list, blank=True, help_text='e.g. [{"type": "log"}, {"type": "webhook", "url": "..."}]')
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OK, editable=False)
    pending_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_value = models.FloatField(null=True, blank=True, editable=False)
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """One firing of a rule, open until it resolves; the notifications record what each channel said."""

    class State(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    state = models.CharField(max_length=16, choices=State.choices, default=State.FIRING)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    message = models.CharField(max_length=500)
    value = models.FloatField(null=True)
    resolved_value = models.FloatField(null=True, blank=True)
    fired_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notifications = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-fired_at"]
        constraints = [
            # One open alert per rule, even with several evaluators racing.
            models.UniqueConstraint(fields=["rule"], condition=Q(resolved_at__isnull=True), name="one_open_alert_per_rule"),
        ]

    def __str__(self) -> str:
        return f"{self.rule.name} {self.state} at {self.fired_at:%Y-%m-%d %H:%M:%S}"
