"""The /health report: each component checked with a short timeout, in parallel.

A component is `ok`, `down` or `not_configured`. The database being down makes the whole
service `down` (HTTP 503); any other configured component down makes it `degraded`.
Workers and beat are judged by their nodes' heartbeats.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections, connection
from django.utils import timezone

from core.conf import chameleon_settings

OK, DOWN, NOT_CONFIGURED = "ok", "down", "not_configured"
CHECK_TIMEOUT = 2.0
_executor = ThreadPoolExecutor(max_workers=6, thread_name_prefix="chameleon-health")


def check_database() -> tuple[str, dict[str, Any]]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return OK, {"vendor": connection.vendor}
    finally:
        close_old_connections()
        connection.close()


def check_redis() -> tuple[str, dict[str, Any]]:
    if not chameleon_settings.REDIS_URL:
        return NOT_CONFIGURED, {}
    import redis

    client = redis.Redis.from_url(chameleon_settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return OK, {}


def check_kafka() -> tuple[str, dict[str, Any]]:
    if not chameleon_settings.KAFKA_BROKERS:
        return NOT_CONFIGURED, {}
    from confluent_kafka.admin import AdminClient

    client = AdminClient(
        {"bootstrap.servers": ",".join(chameleon_settings.KAFKA_BROKERS), "socket.timeout.ms": 1000}
    )
    metadata = client.list_topics(timeout=1.5)
    return OK, {"brokers": len(metadata.brokers)}


def check_etcd() -> tuple[str, dict[str, Any]]:
    if not chameleon_settings.ETCD_ENDPOINTS:
        return NOT_CONFIGURED, {}
    import etcd3

    errors = []
    for endpoint in chameleon_settings.ETCD_ENDPOINTS:
        host, _, port = endpoint.split("://")[-1].rpartition(":")
        client = etcd3.client(host=host, port=int(port), timeout=1)
        try:
            status = client.status()
            return OK, {"endpoint": endpoint, "version": status.version}
        except Exception as exc:  # try the next endpoint
            errors.append(f"{endpoint}: {type(exc).__name__}")
        finally:
            client.close()
    raise ConnectionError("; ".join(errors))


def _check_nodes(kind: str) -> tuple[str, dict[str, Any]]:
    from core.models import Node

    try:
        alive = list(Node.objects.alive().filter(kind=kind).values_list("name", flat=True))
    finally:
        close_old_connections()
        connection.close()
    return (OK if alive else DOWN), {"alive": len(alive)}


CHECKS: dict[str, Callable[[], tuple[str, dict[str, Any]]]] = {
    "database": check_database,
    "redis": check_redis,
    "kafka": check_kafka,
    "etcd": check_etcd,
    "workers": lambda: _check_nodes("worker"),
    "beat": lambda: _check_nodes("beat"),
}


def _run(check: Callable[[], tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    try:
        return check()
    except Exception as exc:  # any failure of a dependency is that component being down
        return DOWN, {"error": f"{type(exc).__name__}: {exc}"[:300]}


def health_report() -> tuple[dict[str, Any], int]:
    """The SPEC §7 document and its HTTP status."""
    futures = {name: _executor.submit(_run, check) for name, check in CHECKS.items()}
    components: dict[str, str] = {}
    details: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        try:
            status, detail = future.result(timeout=CHECK_TIMEOUT + 1)
        except TimeoutError:
            status, detail = DOWN, {"error": "timed out"}
        components[name] = status
        if detail:
            details[name] = detail
    if components["database"] == DOWN:
        overall = "down"
    elif DOWN in components.values():
        overall = "degraded"
    else:
        overall = "ok"
    report = {
        "status": overall,
        "service": chameleon_settings.SERVICE_NAME,
        "version": chameleon_settings.VERSION,
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
        "components": components,
        "details": details,
    }
    return report, 503 if overall == "down" else 200
