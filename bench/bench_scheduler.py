"""Scheduler benchmarks (SPEC §10): one beat tick with 10,000 enabled tasks against plain
django-celery-beat's DatabaseScheduler in the same run (target <= 100 ms); dispatch lag p99
with 1,000 interval tasks (target <= 1 s); duplicate once-runs with several beats claiming
at once and one of them killed and restarted (target 0).

Runs on a private data dir (SQLite + filesystem broker) unless --database-url / --redis-url
are given. Nothing consumes the queued messages: dispatch lag is beat's due -> sent delay.

Run: .venv/bin/python bench/bench_scheduler.py [--tasks 10000] [--lag-tasks 1000] [--lag-interval 10]
     [--lag-seconds 30] [--once-tasks 2000] [--database-url postgres://...] [--redis-url redis://...]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def setup_django(data_dir: str, database_url: str, redis_url: str) -> None:
    os.environ["CHAMELEON_DATA_DIR"] = data_dir
    os.environ["DJANGO_SETTINGS_MODULE"] = "chameleon_site.settings"
    os.environ.setdefault("LOG_LEVEL", "warning")
    for name, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
        if value:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    import django

    django.setup()


def timed(func, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def make_tasks(count: int, interval: str, spread: float, *, prefix: str, once: bool = False) -> None:
    """Bulk-create tasks (and their PeriodicTask mirrors) with next runs spread over `spread` s."""
    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    from scheduler_app.models import Task
    from scheduler_app.schedules import parse_schedule
    from scheduler_app.services import PERIODIC_PREFIX, RUN_TASK_NAME

    now = timezone.now()
    schedule = {"type": "once", "at": now.isoformat()} if once else {"type": "interval", "interval": interval}
    parsed = parse_schedule(schedule)
    every, _ = IntervalSchedule.objects.get_or_create(every=max(1, int(parsed.interval or 1)), period="seconds")
    periodics = [PeriodicTask(name=f"{PERIODIC_PREFIX}{prefix}{i}", task=RUN_TASK_NAME, args=f'["{prefix}{i}"]',
                              interval=every, enabled=True, last_run_at=now) for i in range(count)]
    PeriodicTask.objects.bulk_create(periodics, batch_size=1000)
    ids = dict(PeriodicTask.objects.filter(name__startswith=f"{PERIODIC_PREFIX}{prefix}").values_list("name", "id"))
    Task.objects.bulk_create([
        Task(id=f"{prefix}{i}", name=f"bench {i}", handler="log", schedule=parsed.normalized,
             next_run_at=now + timedelta(seconds=spread * i / count + (0.5 if once else 0)),
             periodic_task_id=ids[f"{PERIODIC_PREFIX}{prefix}{i}"], max_runs=1 if once else None)
        for i in range(count)
    ], batch_size=1000)
    PeriodicTasks.update_changed()


def clear() -> None:
    from django_celery_beat.models import PeriodicTask

    from scheduler_app.models import Task, TaskRun

    TaskRun.objects.all().delete()
    Task.objects.all().delete()
    PeriodicTask.objects.filter(name__startswith="chameleon:").delete()


def bench_tick(count: int) -> dict:
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTasks
    from django_celery_beat.schedulers import DatabaseScheduler

    from chameleon_site.celery import app
    from scheduler_app import services
    from scheduler_app.beat import ChameleonScheduler
    from scheduler_app.models import Task

    clear()
    make_tasks(count, "1h", 3000, prefix="t")
    figures: dict = {}

    stock = DatabaseScheduler(app=app)
    figures["stock_first"] = timed(stock.tick, 1)[0]
    figures["stock_steady"] = statistics.median(timed(stock.tick, 20))

    def stock_after_change() -> float:
        PeriodicTasks.update_changed()  # what any PeriodicTask save does
        time.sleep(0.002)
        start = time.perf_counter()
        stock.tick()
        return (time.perf_counter() - start) * 1000

    figures["stock_change"] = statistics.median(stock_after_change() for _ in range(5))

    ours = ChameleonScheduler(app=app)
    figures["ours_first"] = timed(ours.tick, 1)[0]
    figures["ours_steady"] = statistics.median(timed(ours.tick, 50))
    counter = iter(range(10**6))

    def ours_after_change() -> float:
        services.update_task(f"t{next(counter)}", {"schedule": {"type": "interval", "interval": "2h"}})
        start = time.perf_counter()
        ours.tick()
        return (time.perf_counter() - start) * 1000

    figures["ours_change"] = statistics.median(ours_after_change() for _ in range(5))

    def ours_with_due() -> None:
        due = list(Task.objects.filter(status="pending").values_list("pk", flat=True)[:100])
        Task.objects.filter(pk__in=due).update(next_run_at=timezone.now())
        start = time.perf_counter()
        ours.tick()
        figures.setdefault("ours_due_samples", []).append((time.perf_counter() - start) * 1000)

    for _ in range(5):
        ours_with_due()
    figures["ours_due"] = statistics.median(figures.pop("ours_due_samples"))
    ours.close()
    return figures


def bench_lag(count: int, seconds: float, interval: float) -> dict:
    from chameleon_site.celery import app
    from scheduler_app.beat import ChameleonScheduler
    from scheduler_app.models import TaskRun

    clear()
    make_tasks(count, f"{interval:g}s", interval, prefix="lag")
    scheduler = ChameleonScheduler(app=app)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        wait = scheduler.tick()
        time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
    scheduler.close()
    lags = [(sent - due).total_seconds() for sent, due in
            TaskRun.objects.filter(sent_at__isnull=False).values_list("sent_at", "scheduled_for")]
    return {"runs": len(lags), "p50": percentile(lags, 0.5), "p99": percentile(lags, 0.99), "max": max(lags),
            "expected": count * seconds / interval}


def child_dispatch(seconds: float) -> None:
    """A beat-like claimer with no lease: exercises the claim itself under contention."""
    from scheduler_app.dispatch import dispatch_due

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        dispatch_due()
        time.sleep(0.005)


def bench_duplicates(count: int, env: dict) -> dict:
    from django.db.models import Count

    from scheduler_app.models import Task, TaskRun

    clear()
    make_tasks(count, "", 3.0, prefix="once", once=True)
    argv = [sys.executable, __file__, "--child", "6"]
    children = [subprocess.Popen(argv, env=env) for _ in range(3)]
    time.sleep(1.5)
    children[0].send_signal(signal.SIGKILL)  # one dies mid-claiming ...
    children[0].wait()
    children[0] = subprocess.Popen(argv, env=env)  # ... and restarts
    for child in children:
        child.wait()
    per_task = dict(TaskRun.objects.values_list("task_id").annotate(n=Count("id")).values_list("task_id", "n"))
    return {"tasks": count, "runs": sum(per_task.values()),
            "duplicates": sum(n - 1 for n in per_task.values() if n > 1),
            "missing": count - len(per_task),
            "completed_slots": Task.objects.filter(next_run_at__isnull=True).count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--lag-tasks", type=int, default=1_000)
    parser.add_argument("--lag-seconds", type=float, default=30.0)
    parser.add_argument("--lag-interval", type=float, default=10.0, help="Interval of the lag tasks (s).")
    parser.add_argument("--once-tasks", type=int, default=2_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        import django

        django.setup()
        child_dispatch(args.child)
        return

    data_dir = tempfile.mkdtemp(prefix="chameleon-bench-scheduler-")
    setup_django(data_dir, args.database_url, args.redis_url)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor}; data dir {data_dir}")

    tick = bench_tick(args.tasks)
    print(f"\nOne beat tick with {args.tasks:,} enabled tasks (ms; medians)")
    print(f"{'':32} {'stock DatabaseScheduler':>24} {'ChameleonScheduler':>20}")
    print(f"{'first tick (initial load)':32} {tick['stock_first']:>24.1f} {tick['ours_first']:>20.1f}")
    print(f"{'steady tick (nothing changed)':32} {tick['stock_steady']:>24.2f} {tick['ours_steady']:>20.2f}")
    print(f"{'tick after a schedule change':32} {tick['stock_change']:>24.1f} {tick['ours_change']:>20.1f}")
    print(f"{'tick dispatching 100 due tasks':32} {'-':>24} {tick['ours_due']:>20.1f}")
    print(f"ratio after a change: stock / ours = {tick['stock_change'] / tick['ours_change']:.0f}x; "
          f"target <= 100 ms: {'OK' if max(tick['ours_steady'], tick['ours_change']) <= 100 else 'MISSED'}")

    lag = bench_lag(args.lag_tasks, args.lag_seconds, args.lag_interval)
    print(f"\nDispatch lag, {args.lag_tasks:,} interval tasks every {args.lag_interval:g} s for {args.lag_seconds:g} s "
          f"({lag['runs']:,} runs, ~{lag['expected']:,.0f} expected)")
    print(f"due -> sent: p50 {lag['p50'] * 1000:.1f} ms, p99 {lag['p99'] * 1000:.1f} ms, max {lag['max'] * 1000:.1f} ms;"
          f" target p99 <= 1 s: {'OK' if lag['p99'] <= 1 else 'MISSED'}")

    env = {**os.environ, "CHAMELEON_DATA_DIR": data_dir}
    dup = bench_duplicates(args.once_tasks, env)
    print(f"\nOnce tasks claimed by 3 concurrent beats (one SIGKILLed and restarted): {dup['tasks']:,} tasks, "
          f"{dup['runs']:,} runs, {dup['duplicates']} duplicates, {dup['missing']} missing; target 0 duplicates: "
          f"{'OK' if dup['duplicates'] == 0 and dup['missing'] == 0 else 'MISSED'}")


if __name__ == "__main__":
    main()
