"""The performance monitor: collectors run on an interval and export gauges (core.metrics).

Collectors: this process's CPU and memory, the database (reachable, round-trip of
`SELECT 1`), the Celery task queue length (Redis list or filesystem broker folder) and
the registered service instances by service and health. The event bus exports its own
`event_bus_queue_size`; alert rules can use any of these by sample name.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

from core.metrics import gauge

logger = logging.getLogger("chameleon.monitor")

process_cpu = gauge("chameleon_process_cpu_percent", "CPU used by this process since the last collection (%).")
process_memory = gauge("chameleon_process_memory_rss_bytes", "Resident memory of this process.")
process_threads = gauge("chameleon_process_threads", "Threads in this process.")
database_up = gauge("chameleon_database_up", "1 when the database answered the last probe.")
database_latency = gauge("chameleon_database_latency_seconds", "Round trip of SELECT 1 to the database.")
task_queue_length = gauge("chameleon_task_queue_length", "Celery messages waiting in the broker queue.", ["queue"])
service_instances = gauge(
    "chameleon_service_instances", "Registered service instances by service and health.", ["service", "health"]
)

_cpu_lock = threading.Lock()
_last_cpu: tuple[float, float] | None = None


def collect_process() -> None:
    global _last_cpu
    times = os.times()
    used, now = times.user + times.system, time.monotonic()
    with _cpu_lock:
        if _last_cpu is not None and now > _last_cpu[1]:
            process_cpu.set(100.0 * (used - _last_cpu[0]) / (now - _last_cpu[1]))
        _last_cpu = (used, now)
    process_memory.set(_rss_bytes())
    process_threads.set(threading.active_count())


def _rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak, on systems without /proc


def collect_database() -> None:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        database_up.set(0)
        logger.warning("Database probe failed: %s", exc)
        return
    database_latency.set(time.perf_counter() - started)
    database_up.set(1)


def collect_task_queue() -> None:
    queue = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"
    broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if broker.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(broker, socket_timeout=2)
        try:
            task_queue_length.labels(queue=queue).set(client.llen(queue))
        finally:
            client.close()
    elif broker.startswith("filesystem://"):
        folder = Path(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get("data_folder_in", ""))
        # kombu's filesystem transport keeps one `<stamp>_<uuid>.<queue>.msg` file per message.
        count = sum(1 for _ in folder.glob(f"*.{queue}.msg")) if folder.is_dir() else 0
        task_queue_length.labels(queue=queue).set(count)


def collect_services() -> None:
    from plugins_app.discovery.services import service_summary

    summary = service_summary()
    service_instances.clear()
    for service, counts in summary.items():
        for health, count in counts.items():
            service_instances.labels(service=service, health=health).set(count)


COLLECTORS: dict[str, Callable[[], None]] = {
    "process": collect_process,
    "database": collect_database,
    "task_queue": collect_task_queue,
    "services": collect_services,
}


def collect() -> dict[str, str]:
    """Run every collector once; one failing collector does not stop the others."""
    outcome = {}
    for name, collector in COLLECTORS.items():
        try:
            collector()
            outcome[name] = "ok"
        except Exception as exc:
            logger.warning("Monitor collector %s failed: %s", name, exc)
            outcome[name] = f"error: {type(exc).__name__}"
    return outcome
