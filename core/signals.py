"""Signal receivers: roles after migrate, node lifecycle and task context in Celery, logins,
and invalidation of the cached permission sets (core.backends)."""

from __future__ import annotations

import logging.config
from typing import Any

from celery import signals as celery_signals
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save
from django.dispatch import receiver

from core import services
from core.backends import invalidate_permissions
from core.logging import task_id_var
from core.metrics import counter
from core.models import AuditEntry
from core.nodes import identify_node, start_node, stop_node

worker_tasks = counter(
    "chameleon_worker_tasks", "Celery tasks finished by worker processes.", ["task", "state"]
)


@receiver(post_migrate)
def sync_roles_after_migrate(sender: Any, **kwargs: Any) -> None:
    # Each app's permissions exist once its own post_migrate has run; re-syncing after
    # each of the role apps means the last one leaves every permission assigned.
    if sender.label in services.ROLE_APPS:
        services.sync_role_permissions()


User = get_user_model()
#: Saving only these user fields changes nobody's permissions (a login sets last_login).
_PERMISSION_NEUTRAL_USER_FIELDS = frozenset({"last_login"})


@receiver(post_migrate)
def permissions_changed_by_migration(**kwargs: Any) -> None:
    # Data migrations use historical models, whose changes send no signal below.
    invalidate_permissions()


@receiver(m2m_changed, sender=User.groups.through)
@receiver(m2m_changed, sender=User.user_permissions.through)
@receiver(m2m_changed, sender=Group.permissions.through)
def permissions_changed_by_membership(action: str, **kwargs: Any) -> None:
    # Either side of the relation (user.groups.add, group.user_set.remove, ...) lands here.
    if action in ("post_add", "post_remove", "post_clear"):
        invalidate_permissions()


@receiver(post_save, sender=User)
def permissions_changed_by_user(update_fields: frozenset | None = None, **kwargs: Any) -> None:
    # is_active / is_superuser decide what a user may do; a new user may reuse an old id.
    if update_fields is None or not update_fields <= _PERMISSION_NEUTRAL_USER_FIELDS:
        invalidate_permissions()


@receiver(post_delete, sender=User)
@receiver(post_save, sender=Group)
@receiver(post_delete, sender=Group)
@receiver(post_save, sender=Permission)
@receiver(post_delete, sender=Permission)
def permission_rows_changed(**kwargs: Any) -> None:
    # Deleting a user or group cascades through the membership tables without
    # m2m_changed; a new permission is one more for every superuser.
    invalidate_permissions()


@receiver(user_logged_in)
def audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    services.record_audit(
        action="auth.login", target_type="user", target=user.get_username(), user=user,
        source=AuditEntry.Source.WEB, request=request,
    )


@receiver(user_login_failed)
def audit_failed_login(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    services.record_audit(
        action="auth.login", target_type="user", target=str(credentials.get("username", "")),
        outcome=AuditEntry.Outcome.DENIED, source=AuditEntry.Source.WEB, request=request,
    )


@celery_signals.setup_logging.connect
def use_django_logging(**kwargs: Any) -> None:
    # Connecting this signal stops Celery from installing its own handlers and format.
    logging.config.dictConfig(settings.LOGGING)


@celery_signals.worker_init.connect
def worker_node_identified(**kwargs: Any) -> None:
    identify_node("worker")


@celery_signals.worker_ready.connect
def worker_node_started(**kwargs: Any) -> None:
    start_node("worker")


@celery_signals.beat_init.connect
def beat_node_started(**kwargs: Any) -> None:
    start_node("beat")


@celery_signals.worker_shutdown.connect
def worker_node_stopped(**kwargs: Any) -> None:
    stop_node()


@celery_signals.task_prerun.connect
def enter_task_context(task_id: str, **kwargs: Any) -> None:
    task_id_var.set(task_id)


@celery_signals.task_postrun.connect
def leave_task_context(task: Any, state: str | None = None, **kwargs: Any) -> None:
    worker_tasks.labels(task=task.name, state=state or "UNKNOWN").inc()
    task_id_var.set("")
