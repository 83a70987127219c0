"""API list latency under concurrent clients (SPEC §10: p99 ≤ 50 ms at 100 items, 50 clients).

Starts the real web server (`manage.py serve`, uvicorn, `WEB_WORKERS` processes unless
`--workers` says otherwise) on a private data dir, fills the audit log, then lets 50 client
threads with keep-alive connections page through `/api/v1/audit/?page_size=100`. Baseline in
the same run: the same requests for one item (auth, routing and middleware without the
serialization of 100 rows).

Two loads: *paced* clients (each sends `--rate` requests a second, like dashboards and
scripts polling; latency is then the service time plus queueing) and *closed-loop*
clients (each sends its next request as soon as the last answered: the saturation
throughput, where latency is clients / throughput by construction).

    .venv/bin/python bench/bench_api.py [--clients 50] [--requests 20] [--rate 2] [--workers N]

Uses the embedded defaults unless DATABASE_URL / REDIS_URL are set in the environment.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = """
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from core import services
user, _ = User.objects.get_or_create(username="bench")
user.groups.add(Group.objects.get(name="viewer"))
for index in range(150):
    services.record_audit(action="bench.item", target_type="bench", target=str(index), user=user)
print(Token.objects.get_or_create(user=user)[0].key)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(port: int, token: str, at_least: int, timeout: float = 90.0) -> int:
    """Wait until the server answers and its web nodes have settled; returns how many there are."""
    deadline = time.monotonic() + timeout
    seen, settled_at = 0, None
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/v1/nodes/?kind=web&status=alive",
                               headers={"Authorization": f"Token {token}"})
            count = json.loads(connection.getresponse().read())["count"]
        except (OSError, ValueError, KeyError):
            count = 0
        if count != seen:
            seen, settled_at = count, time.monotonic()
        # Workers start one after another: the count must hold still for a few seconds.
        if seen >= at_least and time.monotonic() - settled_at > 3:
            return seen
        time.sleep(0.2)
    sys.exit("web server did not start")


def measure(port: int, token: str, path: str, clients: int, requests: int, rate: float = 0.0) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)
    errors: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        mine = []
        start.wait()
        # Paced clients start spread over one period, then keep their own schedule.
        next_at = time.perf_counter() + (random.random() / rate if rate else 0.0)
        for _ in range(requests):
            if rate:
                time.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += 1.0 / rate
            began = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            mine.append(time.perf_counter() - began)
            if response.status != 200:
                errors.append(f"{response.status} {body[:200]!r}")
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        sys.exit(f"requests failed: {errors[:3]}")
    return latencies


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the server process and its children so far (Linux; else 0)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.0


def summary(name: str, latencies: list[float], wall: float, cpu: float, client_cpu: float) -> dict[str, float]:
    ordered = sorted(latencies)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    figures = {"p50": p(0.50), "p95": p(0.95), "p99": p(0.99), "mean": statistics.mean(ordered) * 1000,
               "rps": len(ordered) / wall, "server_cpu_ms": cpu / len(ordered) * 1000,
               "client_cpu_ms": client_cpu / len(ordered) * 1000}
    print(f"{name:<34} p50 {figures['p50']:7.1f} ms  p95 {figures['p95']:7.1f} ms  "
          f"p99 {figures['p99']:7.1f} ms  {figures['rps']:5.0f} req/s  CPU per request: "
          f"server {figures['server_cpu_ms']:4.1f} ms, client {figures['client_cpu_ms']:3.1f} ms")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="requests per client per measure")
    parser.add_argument("--rate", type=float, default=2.0, help="requests a second per paced client")
    parser.add_argument("--workers", type=int, help="web server processes (default: WEB_WORKERS)")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="chameleon-bench-api-")
    env = {**os.environ, "CHAMELEON_DATA_DIR": data_dir, "DJANGO_SETTINGS_MODULE": "chameleon_site.settings",
           "LOG_LEVEL": "warning", "CHAMELEON_ENV": "test"}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], env=env, check=True, cwd=ROOT)
    token = subprocess.run([*manage, "shell", "-c", SEED], env=env, check=True, cwd=ROOT,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    port = free_port()
    workers = ["--workers", str(args.workers)] if args.workers else []
    server = subprocess.Popen([*manage, "serve", "--port", str(port), *workers], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        web_nodes = wait_for_server(port, token, args.workers or 1)
        database = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
        print(f"{args.clients} clients x {args.requests} requests each, {database}, "
              f"{web_nodes} uvicorn worker process{'es' if web_nodes > 1 else ''}")
        measure(port, token, "/api/v1/audit/?page_size=100", args.clients, 2)  # warm-up
        results = {}
        for load, rate in ((f"paced {args.rate:g}/s each", args.rate), ("closed loop", 0.0)):
            for name, path in (("baseline: 1 item", "/api/v1/audit/?page_size=1"),
                               ("list: 100 items", "/api/v1/audit/?page_size=100")):
                began, cpu, client_cpu = time.perf_counter(), server_cpu_seconds(server.pid), time.process_time()
                latencies = measure(port, token, path, args.clients, args.requests, rate)
                results[(load, name)] = summary(f"{load}, {name}", latencies, time.perf_counter() - began,
                                                server_cpu_seconds(server.pid) - cpu, time.process_time() - client_cpu)
            base, full = results[(load, "baseline: 1 item")], results[(load, "list: 100 items")]
            print(f"  {load}: list/baseline p50 {full['p50'] / base['p50']:.2f}x, p99 {full['p99'] / base['p99']:.2f}x; "
                  f"p99 <= 50 ms: {'met' if full['p99'] <= 50 else 'NOT met'}")
        print(json.dumps({f"{load} / {name}": figures for (load, name), figures in results.items()}))
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
