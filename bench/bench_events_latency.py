"""Cross-process latency (SPEC §10): an event published in a worker process reaches websocket
clients of the web process through Redis. Target: p50 <= 5 ms, p99 <= 25 ms at 1,000
events/s to 100 clients, none lost.

Starts its own web server (`manage.py serve`) on a private data dir and a private Redis
stream, client processes holding the websockets, and a publisher process that runs as a
worker node and publishes at a fixed rate. Each event carries its publish time; clients
record arrival minus publish time (one machine, one clock).

Run: REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/bench_events_latency.py
     [--rate 1000] [--clients 100] [--seconds 10] [--client-procs 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TOPIC = "bench.latency"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- client process ----------------------------------------------------------------------
async def run_clients(port: int, token: str, count: int, expected: int, timeout: float) -> dict:
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    received = [0] * count
    ready = asyncio.Event()
    connected = [0]

    async def client(index: int) -> None:
        async with connect(
            f"ws://127.0.0.1:{port}/ws/events/?topics={TOPIC}", origin=f"http://127.0.0.1:{port}",
            additional_headers={"Authorization": f"Token {token}"}, max_queue=None,
            # permessage-deflate costs the server ~50 us per frame and connection (zlib, per
            # connection context); the events are small JSON, so these clients do not offer it.
            compression=None if os.environ.get("BENCH_WS_DEFLATE") != "1" else "deflate",
        ) as ws:
            while json.loads(await ws.recv())["type"] != "backlog_end":
                pass
            connected[0] += 1
            if connected[0] == count:
                ready.set()
            deadline = time.monotonic() + timeout
            while received[index] < expected and time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
                now = time.time()
                message = json.loads(raw)
                if message["type"] == "event" and not message.get("backlog"):
                    latencies.append((now - message["event"]["data"]["t"]) * 1000)
                    received[index] += 1
                elif message["type"] == "dropped":
                    print(f"client {index} told it dropped {message['count']}", file=sys.stderr)

    tasks = [asyncio.create_task(client(index)) for index in range(count)]
    await ready.wait()
    print("READY", flush=True)
    await asyncio.gather(*tasks)
    return {"latencies": latencies, "received": received}


# --- publisher process -------------------------------------------------------------------
def run_publisher(rate: int, seconds: float) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chameleon_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from core.nodes import identify_node
    from plugins_app.events import flush, publish

    identify_node("worker")
    total = int(rate * seconds)
    start = time.perf_counter()
    for sequence in range(total):
        due = start + sequence / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        publish(TOPIC, {"t": time.time(), "seq": sequence}, source="bench")
    flush(30)
    print(f"published {total} events in {time.perf_counter() - start:.2f}s", flush=True)


# --- orchestration -----------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument("--role", default="main")
    parser.add_argument("--port", type=int)
    parser.add_argument("--token")
    parser.add_argument("--expected", type=int)
    args = parser.parse_args()

    if args.role == "clients":
        result = asyncio.run(run_clients(args.port, args.token, args.clients, args.expected, args.seconds + 30))
        print("RESULT " + json.dumps(result), flush=True)
        return
    if args.role == "publisher":
        run_publisher(args.rate, args.seconds)
        return

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        print("bench_events_latency: skipped -- set REDIS_URL (e.g. redis://127.0.0.1:6379/0) to measure "
              "worker -> websocket latency through Redis")
        return
    data_dir = tempfile.mkdtemp(prefix="chameleon-bench-")
    env = dict(os.environ, CHAMELEON_DATA_DIR=data_dir, CHAMELEON_EVENT_STREAM=f"bench:{uuid.uuid4().hex}",
               CHAMELEON_EVENT_WS_BUFFER="100000", LOG_LEVEL="warning", PYTHONUNBUFFERED="1",
               CHAMELEON_ENV="development", DJANGO_SETTINGS_MODULE="chameleon_site.settings")
    env.pop("DATABASE_URL", None)
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    token = subprocess.run(
        [*manage, "shell", "-c",
         "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token;"
         "u=User.objects.create_superuser('bench', password='bench-pass-123');"
         "print(Token.objects.create(user=u).key)"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]

    port = free_port()
    web_log = open(Path(data_dir) / "web.log", "w")
    web = subprocess.Popen([*manage, "serve", "--port", str(port)], cwd=ROOT, env=env,
                           stdout=web_log, stderr=subprocess.STDOUT)
    clients: list[subprocess.Popen] = []
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        expected = int(args.rate * args.seconds)
        per_proc = [args.clients // args.client_procs + (1 if i < args.clients % args.client_procs else 0)
                    for i in range(args.client_procs)]
        for count in per_proc:
            clients.append(subprocess.Popen(
                [PYTHON, __file__, "--role", "clients", "--port", str(port), "--token", token, "--clients",
                 str(count), "--expected", str(expected), "--seconds", str(args.seconds)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
            ))
        for process in clients:
            assert process.stdout.readline().strip() == "READY"
        print(f"{args.clients} websocket clients connected; publishing {expected:,} events at {args.rate}/s "
              f"from a worker process through Redis ...", flush=True)
        subprocess.run([PYTHON, __file__, "--role", "publisher", "--rate", str(args.rate), "--seconds",
                        str(args.seconds)], cwd=ROOT, env=env, check=True)
        latencies: list[float] = []
        received: list[int] = []
        for process in clients:
            for line in process.stdout:
                if line.startswith("RESULT "):
                    result = json.loads(line[7:])
                    latencies += result["latencies"]
                    received += result["received"]
            process.wait(60)
    finally:
        for process in clients:
            if process.poll() is None:
                process.kill()
        web.terminate()
        web.wait(20)

    print(f"(web server log: {web_log.name})")
    lost = expected * args.clients - sum(received)
    print(f"deliveries: {sum(received):,} of {expected * args.clients:,} (lost {lost:,}); "
          f"min per client {min(received):,}")
    if latencies:
        p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
        print(f"latency ms: p50 {p50:.2f}  p90 {percentile(latencies, 0.90):.2f}  p99 {p99:.2f}  "
              f"max {max(latencies):.2f}  mean {statistics.fmean(latencies):.2f}")
        print(f"targets p50 <= 5 ms: {'MET' if p50 <= 5 else 'NOT MET'}; p99 <= 25 ms: "
              f"{'MET' if p99 <= 25 else 'NOT MET'}; none lost: {'MET' if lost == 0 else 'NOT MET'}")


if __name__ == "__main__":
    main()
