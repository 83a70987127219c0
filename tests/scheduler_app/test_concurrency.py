"""Concurrent controls on one task end in a consistent state (SPEC §11)."""

from __future__ import annotations

import random
import threading

import pytest
from django.db import close_old_connections
from django_celery_beat.models import PeriodicTask

from core.models import AuditEntry
from scheduler_app import services
from scheduler_app.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_pause_resume_cancel_leave_a_consistent_task():
    services.create_task({"id": "contended", "schedule": {"type": "interval", "interval": "1m"}})
    operations = [services.pause_task, services.resume_task] * 15 + [services.cancel_task]
    random.Random(7).shuffle(operations)
    chunks = [operations[i::3] for i in range(3)]
    errors: list[BaseException] = []

    def worker(chunk):
        try:
            for operation in chunk:
                try:
                    operation("contended")
                except services.SchedulerError:
                    pass  # a refused transition (e.g. resume after cancel) is a valid outcome
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    task = Task.objects.get(pk="contended")
    assert task.status == "canceled" and task.next_run_at is None
    assert PeriodicTask.objects.get(pk=task.periodic_task_id).enabled is False
    audited = AuditEntry.objects.filter(target="contended").exclude(action="task.create").count()
    assert audited == len(operations)
