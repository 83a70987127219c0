"""The audit log and the nodes (processes) of a Chameleon cluster."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.conf import chameleon_settings


class AuditEntry(models.Model):
    """One operation someone (or the system) attempted: who, when, what, on what, outcome."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    class Source(models.TextChoices):
        API = "api", "REST API"
        SEED_API = "seed_api", "Seed API"
        ADMIN = "admin", "Admin"
        CLI = "cli", "CLI"
        WEB = "web", "Web"
        SYSTEM = "system", "System"

    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SYSTEM)
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["target_type", "target"])]

    def __str__(self) -> str:
        return f"{self.username or 'system'} {self.action} {self.target} ({self.outcome})"


class NodeQuerySet(models.QuerySet):
    def alive(self) -> NodeQuerySet:
        """Nodes that have heartbeated recently and have not said they stopped."""
        cutoff = timezone.now() - timedelta(seconds=chameleon_settings.heartbeat_timeout)
        return self.filter(stopped_at__isnull=True, last_heartbeat__gte=cutoff)

    def lost(self) -> NodeQuerySet:
        """Nodes that stopped heartbeating without saying they stopped."""
        cutoff = timezone.now() - timedelta(seconds=chameleon_settings.heartbeat_timeout)
        return self.filter(stopped_at__isnull=True, last_heartbeat__lt=cutoff)

    def stopped(self) -> NodeQuerySet:
        return self.filter(stopped_at__isnull=False)


class Node(models.Model):
    """A Chameleon process (web, worker or beat) that registers itself and heartbeats."""

    class Kind(models.TextChoices):
        WEB = "web", "Web"
        WORKER = "worker", "Worker"
        BEAT = "beat", "Beat"

    class Status(models.TextChoices):
        ALIVE = "alive", "Alive"
        LOST = "lost", "Lost"
        STOPPED = "stopped", "Stopped"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    version = models.CharField(max_length=50, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now, db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    metrics = models.JSONField(default=list, blank=True, help_text="The node's latest metric families.")
    labels = models.JSONField(default=dict, blank=True,
                              help_text="CHAMELEON_NODE_LABELS of the process (e.g. zone=a, canary=true).")
    info = models.JSONField(default=dict, blank=True)

    objects = NodeQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def status(self) -> str:
        if self.stopped_at is not None:
            return self.Status.STOPPED
        if self.last_heartbeat < timezone.now() - timedelta(seconds=chameleon_settings.heartbeat_timeout):
            return self.Status.LOST
        return self.Status.ALIVE

