"""Foundation services: the audit log, roles, the bootstrap admin user and node heartbeats."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from datetime import timedelta
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.conf import chameleon_settings
from core.logging import request_id_var
from core.models import AuditEntry, Node

logger = logging.getLogger("chameleon.audit")

VIEWER_GROUP = "viewer"
OPERATOR_GROUP = "operator"
#: Apps whose permissions the roles cover.
ROLE_APPS = ("core", "plugins_app", "events", "discovery", "scheduler_app", "django_celery_beat", "django_celery_results")
#: How long a stopped or lost node stays listed.
NODE_RETENTION = timedelta(days=1)
#: Models that only the system writes: operators may read them, never change them.
READ_ONLY_MODELS = {
    ("core", "auditentry"), ("core", "node"), ("django_celery_results", "taskresult"), ("discovery", "alert"),
}


def record_audit(
    *,
    action: str,
    target_type: str = "",
    target: str = "",
    outcome: str = AuditEntry.Outcome.SUCCESS,
    user: AbstractBaseUser | AnonymousUser | None = None,
    source: str = AuditEntry.Source.SYSTEM,
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditEntry:
    """Write one audit entry; `request` supplies the user, client address and request id."""
    if request is not None and user is None:
        user = getattr(request, "user", None)
    authenticated = user is not None and user.is_authenticated
    entry = AuditEntry.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "",
        action=action,
        target_type=target_type,
        target=str(target)[:255],
        outcome=outcome,
        source=source,
        detail=detail or {},
        ip_address=request.META.get("REMOTE_ADDR") if request is not None else None,
        request_id=request_id_var.get(),
    )
    logger.info(
        "audit %s %s %s:%s by %s", action, outcome, target_type, target, entry.username or "system"
    )
    return entry


def sync_role_permissions() -> None:
    """Give `viewer` every view permission and `operator` every permission of ROLE_APPS.

    Runs after every `migrate`, so models that later migrations add are covered too.
    """
    viewer, _ = Group.objects.get_or_create(name=VIEWER_GROUP)
    operator, _ = Group.objects.get_or_create(name=OPERATOR_GROUP)
    permissions = Permission.objects.filter(content_type__app_label__in=ROLE_APPS).select_related(
        "content_type"
    )
    viewer.permissions.set([perm for perm in permissions if perm.codename.startswith("view_")])
    operator.permissions.set(
        [
            perm
            for perm in permissions
            if perm.codename.startswith("view_")
            or (perm.content_type.app_label, perm.content_type.model) not in READ_ONLY_MODELS
        ]
    )


def ensure_admin_user(password: str | None = None, username: str = "admin") -> tuple[str, str] | None:
    """Create a superuser when there is none; returns (username, password) only when created.

    The password is `password` (from CHAMELEON_ADMIN_PASSWORD) or a generated one.
    """
    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return None
    password = password or secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User.objects.create_superuser(username=username, email="", password=password)
    record_audit(action="auth.admin_created", target_type="user", target=user.get_username())
    return username, password


def record_heartbeat(name: str, kind: str, *, metrics: list[dict[str, Any]] | None = None,
                     labels: dict[str, str] | None = None) -> Node:
    """Create or refresh this node's row; the first heartbeat is the node joining.

    `labels` default to this process's `CHAMELEON_NODE_LABELS`.
    """
    now = timezone.now()
    labels = dict(chameleon_settings.NODE_LABELS if labels is None else labels)
    node, _created = Node.objects.update_or_create(
        name=name,
        defaults={
            "kind": kind,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "version": chameleon_settings.VERSION,
            "last_heartbeat": now,
            "stopped_at": None,
            "metrics": metrics or [],
            "labels": labels,
        },
        create_defaults={
            "kind": kind,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "version": chameleon_settings.VERSION,
            "started_at": now,
            "last_heartbeat": now,
            "metrics": metrics or [],
            "labels": labels,
        },
    )
    return node


class WorkerUnavailable(Exception):
    """No worker answered in time."""


def ping_worker(timeout: float = 10.0) -> dict[str, Any]:
    """Send `core.ping` through the broker and wait for a worker's answer."""
    from core.tasks import ping

    started = time.perf_counter()
    result = ping.delay("ping")
    try:
        answer = result.get(timeout=timeout, interval=0.05, propagate=True, disable_sync_subtasks=False)
    except CeleryTimeoutError:
        result.revoke()
        raise WorkerUnavailable(f"No worker answered within {timeout:g}s") from None
    return {**answer, "task_id": result.id, "roundtrip_ms": (time.perf_counter() - started) * 1000}


def mark_node_stopped(name: str) -> None:
    Node.objects.filter(name=name).update(stopped_at=timezone.now())


def prune_nodes(older_than: timedelta = NODE_RETENTION) -> int:
    """Forget nodes that stopped or went silent more than `older_than` ago; returns how many.

    Every restart of a process is a new node, so without this the list only grows.
    """
    cutoff = timezone.now() - older_than
    deleted, _ = Node.objects.filter(last_heartbeat__lt=cutoff).delete()
    return deleted
