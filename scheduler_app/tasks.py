"""Celery tasks of the scheduler: one task runs any scheduled task's run, plus retention."""

from __future__ import annotations

from celery import current_app, shared_task

from scheduler_app import dispatch, runner


@shared_task(name="scheduler_app.run_task", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_task(task_id: str, run_id: int) -> dict:
    """Run the handler of task `task_id` for its queued run `run_id` (sent by beat or run-now)."""
    from celery import current_task

    return runner.execute_run(task_id, run_id, getattr(current_task.request, "id", "") or "")


@shared_task(name="scheduler_app.purge_old_runs", ignore_result=True)
def purge_old_runs(days: float | None = None) -> int:
    """Delete finished runs older than the retention (in batches)."""
    return dispatch.purge_old_runs(days)


def revoke_runs(celery_ids: list[str]) -> None:
    """Revoke queued messages and stop running handlers (SIGTERM to the pool process)."""
    try:
        current_app.control.revoke(celery_ids, terminate=True, signal="SIGTERM")
    except Exception:  # a broker without broadcast: the run row is already canceled
        pass
