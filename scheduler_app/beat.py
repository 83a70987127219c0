"""Chameleon's beat scheduler: django-celery-beat's DatabaseScheduler plus what it lacks.

- Chameleon tasks are not loaded as ModelEntries (stock beat re-reads every enabled
  PeriodicTask whenever one changes, O(n) per edit); each tick instead asks the database
  for the few due tasks through an index on (status, next_run_at) and claims them with a
  conditional UPDATE. Edits are therefore seen on the next tick (`SCHEDULER_TICK`, 0.25 s
  by default) with no 5-second poll and no restart. Other PeriodicTasks (retention,
  backend cleanup, anything an operator adds) run through the stock machinery.
- Only the replica holding the lease (Redis `SET NX PX`, or a database row) dispatches;
  the others stand by and take over when it expires.
- The active replica also re-sends runs no worker picked up, ends runs whose worker died,
  and refreshes the `scheduler_tasks_total` gauge.
"""

from __future__ import annotations

import logging
import time

from django.db import close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler

from core.conf import chameleon_settings
from core.nodes import make_node_name
from scheduler_app import dispatch, metrics
from scheduler_app.lease import Lease, make_lease
from scheduler_app.services import RUN_TASK_NAME

logger = logging.getLogger("chameleon.scheduler.beat")

MAINTENANCE_INTERVAL = 1.0
GAUGE_INTERVAL = 5.0


class ChameleonScheduler(DatabaseScheduler):
    """DatabaseScheduler that dispatches Chameleon tasks itself, under a lease."""

    lease: Lease | None = None

    def __init__(self, *args, **kwargs) -> None:
        self._last_maintenance = 0.0
        self._last_gauges = 0.0
        super().__init__(*args, **kwargs)

    def enabled_models_qs(self):
        # Chameleon tasks' PeriodicTasks mirror them for visibility; dispatch is ours.
        return super().enabled_models_qs().exclude(task=RUN_TASK_NAME)

    def _lease(self) -> Lease:
        if self.lease is None:
            from core.nodes import current_node_name

            self.lease = make_lease(current_node_name() or make_node_name("beat"))
        return self.lease

    def tick(self, *args, **kwargs) -> float:
        tick = float(chameleon_settings.SCHEDULER_TICK)
        try:
            active = self._lease().hold()
        except Exception:
            logger.exception("Lease check failed")
            active = False
        metrics.beat_active.set(1 if active else 0)
        if not active:
            close_old_connections()
            return min(tick * 4, self._lease().ttl / 4)
        interval = super().tick(*args, **kwargs)
        try:
            wait = self.dispatch_tick()
        except Exception:  # a database hiccup: try again next tick rather than die
            logger.exception("Scheduler tick failed")
            close_old_connections()
            wait = tick
        return max(0.0, min(interval if interval is not None else tick, tick, wait if wait is not None else tick))

    def dispatch_tick(self) -> float | None:
        """One round of Chameleon work; returns seconds until the next due task."""
        wait = dispatch.dispatch_due()
        now = time.monotonic()
        if now - self._last_maintenance >= MAINTENANCE_INTERVAL:
            self._last_maintenance = now
            dispatch.send_waiting_runs()
            dispatch.reap_runs()
        if now - self._last_gauges >= GAUGE_INTERVAL:
            self._last_gauges = now
            dispatch.update_gauges()
        return wait

    def close(self) -> None:
        if self.lease is not None:
            self.lease.release()
        super().close()
