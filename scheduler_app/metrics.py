"""The scheduler's Prometheus metrics (SPEC §7), defined through core.metrics."""

from core.metrics import counter, gauge, histogram

tasks_total = gauge("scheduler_tasks_total", "Scheduled tasks by status.", ["status"])
executions = counter("scheduler_task_executions", "Task runs finished, by handler and outcome.", ["handler", "outcome"])
durations = histogram(
    "scheduler_task_duration_seconds", "Duration of task runs.", ["handler"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)
failures = counter("scheduler_task_failures", "Task runs that failed, timed out or were lost.", ["handler", "outcome"])
dispatch_lag = histogram(
    "scheduler_dispatch_lag_seconds", "Delay between a run's due time and beat sending it.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
dispatched = counter("scheduler_runs_dispatched", "Runs beat sent to the workers.", ["trigger"])
skipped = counter("scheduler_runs_skipped", "Due runs skipped because a run was still going (forbid).")
beat_active = gauge("scheduler_beat_active", "1 on the beat replica that holds the lease.")
