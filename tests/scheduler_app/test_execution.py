"""Execution with real beat and worker processes: counts, controls, once, SIGKILL, timeouts, failover."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Count

from scheduler_app import services
from scheduler_app.lease import active_holder
from scheduler_app.models import Task, TaskRun
from tests.fixtures.processes import celery, wait_for_node
from tests.fixtures.services import wait_for

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def test_handlers(monkeypatch):
    """Worker and beat processes started by these tests load the test handlers and a short lease."""
    import tests.scheduler_app.handlers  # noqa: F401 - registers test.sleep / test.fail here too

    monkeypatch.setenv("CHAMELEON_SCHEDULER_HANDLER_MODULES", "tests.scheduler_app.handlers")
    monkeypatch.setenv("CHAMELEON_SCHEDULER_LEASE_TTL", "2")


def task(task_id: str, schedule: dict, **extra) -> Task:
    return services.create_task({"id": task_id, "name": task_id, "schedule": schedule, **extra})


def runs(task_id: str, **filters) -> int:
    return TaskRun.objects.filter(task_id=task_id, **filters).count()


def status(task_id: str) -> str:
    return Task.objects.values_list("status", flat=True).get(pk=task_id)


def beat_ticks_past(sentinel: str, count: int = 2, timeout: float = 20) -> None:
    """Wait until beat has dispatched `count` more runs of a 1 s sentinel task (proof of ticks)."""
    start = runs(sentinel)
    wait_for(lambda: runs(sentinel) >= start + count, timeout, f"{count} more ticks of beat")


def test_interval_task_with_max_runs_completes_with_the_exact_count(live_worker, live_beat):
    task("counted", {"type": "interval", "interval": "1s", "max_runs": 3})
    task("sentinel", {"type": "interval", "interval": "1s"})
    wait_for(lambda: status("counted") == "completed", 60, "the counted task to complete")
    beat_ticks_past("sentinel")
    counted = Task.objects.get(pk="counted")
    assert (counted.run_count, counted.failure_count, counted.next_run_at) == (3, 0, None)
    assert runs("counted") == 3 == runs("counted", status="succeeded")
    workers = set(TaskRun.objects.filter(task_id="counted").values_list("worker", flat=True))
    assert workers == {live_worker.node_name}


def test_pause_resume_and_cancel_with_live_processes(live_worker, live_beat):
    task("steady", {"type": "interval", "interval": "1s"})
    task("sentinel", {"type": "interval", "interval": "1s"})
    wait_for(lambda: runs("steady", status="succeeded") >= 1, 60, "a first run")
    services.pause_task("steady")
    wait_for(lambda: runs("steady", status__in=TaskRun.ACTIVE) == 0, 60, "runs in flight to finish")
    paused_count = runs("steady")
    beat_ticks_past("sentinel", 3)
    assert runs("steady") == paused_count, "a paused task ran"
    services.resume_task("steady")
    wait_for(lambda: runs("steady", status="succeeded") > paused_count, 60, "a run after resume")

    task("long", {"type": "once", "delay": "0s"}, handler="test.sleep", kwargs={"seconds": 60})
    wait_for(lambda: runs("long", status="running"), 60, "the long run to start")
    services.cancel_task("long")
    services.cancel_task("steady")
    long_run = TaskRun.objects.get(task_id="long")
    assert long_run.status == "canceled"
    assert status("long") == "canceled" and status("steady") == "canceled"
    # The handler's pool process is terminated by the revoke.
    wait_for(lambda: not _alive(long_run.worker_pid), 60, "the canceled run's process to be stopped")
    settled = runs("steady")
    beat_ticks_past("sentinel", 3)
    assert runs("steady") == settled
    long_run.refresh_from_db()
    assert long_run.status == "canceled"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_once_task_runs_exactly_once_also_across_a_beat_restart(live_worker, start_process):
    beat_argv = celery("beat", "--loglevel", "info", "--schedule", str(Path(settings.DATA_DIR) / "beat-once"))
    beat = start_process("beat", beat_argv)
    wait_for_node("beat", beat)
    task("one-shot", {"type": "once", "delay": "1s"})
    task("later-shot", {"type": "once", "delay": "4s"})
    task("sentinel", {"type": "interval", "interval": "1s"})
    wait_for(lambda: status("one-shot") == "completed", 60, "the once task to complete")
    beat.stop()
    beat = start_process("beat2", beat_argv)
    wait_for_node("beat", beat)
    wait_for(lambda: status("later-shot") == "completed", 60, "the second once task to complete")
    beat_ticks_past("sentinel", 3)
    assert runs("one-shot") == 1 and runs("later-shot") == 1
    assert Task.objects.get(pk="one-shot").run_count == 1


def test_worker_killed_mid_run_leaves_a_lost_run_not_a_running_one(live_worker, live_beat):
    task("doomed", {"type": "once", "delay": "0s"}, handler="test.sleep", kwargs={"seconds": 60})
    wait_for(lambda: runs("doomed", status="running"), 60, "the run to start")
    live_worker.kill(signal.SIGKILL)
    wait_for(lambda: runs("doomed", status="lost"), 60, "the run to end lost")
    run = TaskRun.objects.get(task_id="doomed")
    assert "died" in run.error and run.finished_at is not None
    wait_for(lambda: status("doomed") == "failed", 10, "the once task to be failed")
    assert Task.objects.get(pk="doomed").failure_count == 1


def test_plugins_call_handler_calls_a_plugin_method_on_the_worker(live_worker, live_beat):
    task("greeter", {"type": "once", "delay": "0s"}, handler="plugins.call",
         kwargs={"plugin": "hello", "method": "greet", "kwargs": {"name": "scheduler"}})
    wait_for(lambda: status("greeter") in ("completed", "failed"), 60, "the plugin call to finish")
    run = TaskRun.objects.get(task_id="greeter")
    assert run.status == "succeeded", run.error
    assert "scheduler" in str(run.result)


def test_timeout_stops_the_handler_and_failures_retry_with_backoff(live_worker, live_beat):
    task("slow", {"type": "once", "delay": "0s"}, handler="test.sleep", kwargs={"seconds": 30}, timeout="1s")
    task("broken", {"type": "once", "delay": "0s"}, handler="test.fail", retries=2, retry_backoff="500ms")
    wait_for(lambda: runs("slow", status="timed_out"), 60, "the slow run to time out")
    wait_for(lambda: status("broken") == "failed", 60, "the broken task to fail after its retries")
    attempts = list(TaskRun.objects.filter(task_id="broken").order_by("attempt").values_list(
        "attempt", "trigger", "status"))
    assert attempts == [(1, "schedule", "failed"), (2, "retry", "failed"), (3, "retry", "failed")]
    broken = Task.objects.get(pk="broken")
    assert (broken.run_count, broken.failure_count) == (1, 1) and "RuntimeError" in broken.last_error
    slow = TaskRun.objects.get(task_id="slow")
    assert slow.duration < 10 and status("slow") == "failed"


def test_beat_failover_takes_over_without_duplicating_a_run(live_worker, start_process):
    beats = []
    for index in range(2):
        beat = start_process(f"beat{index}", celery(
            "beat", "--loglevel", "info", "--schedule", str(Path(settings.DATA_DIR) / f"beat-{index}")))
        beat.node_name = wait_for_node("beat", beat)
        beats.append(beat)
    task("ticker", {"type": "interval", "interval": "1s"})
    wait_for(lambda: runs("ticker") >= 3, 60, "runs from the active beat")
    holder = wait_for(active_holder, 10, "a lease holder")
    active = next(beat for beat in beats if beat.node_name == holder)
    standby = next(beat for beat in beats if beat is not active)
    active.kill(signal.SIGKILL)
    before = runs("ticker")
    wait_for(lambda: runs("ticker") >= before + 3, 60, "runs after the standby took over")
    wait_for(lambda: active_holder() == standby.node_name, 10, "the standby to hold the lease")
    duplicates = (TaskRun.objects.filter(task_id="ticker").values("scheduled_for").annotate(n=Count("id"))
                  .filter(n__gt=1))
    assert not duplicates.exists()
