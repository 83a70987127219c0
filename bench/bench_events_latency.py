"""Cross-process latency (SPEC §10): an event published in a worker process reaches websocket
clients of the web process through Redis. Target: p50 <= 5 ms, p99 <= 25 ms at 1,000
events/s to 100 clients, none lost.

Starts its own web server (`manage.py serve`) on a private data dir and a private Redis
stream, client processes holding the websockets, and a publisher process that runs as a
worker node and publishes at a fixed rate. Each event carries its publish time; clients
record arrival minus publish time (one machine, one clock).

Run: REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/bench_events_latency.py
     [--rate 1000] [--clients 100] [--seconds 10] [--client-procs 1] [--web-workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
class BenchClient(asyncio.Protocol):
    """A lean websocket client (RFC 6455 by hand): on two shared cores the clients' own CPU
    per frame decides how much is left for the server, and a general-purpose client
    library (framing objects, a queue, a task switch and a JSON parse per message) costs
    several times what the server spends on the frame. No extensions are offered."""

    def __init__(self, port: int, token: str, expected: int, latencies: list[float], on_live) -> None:
        self.request = (
            f"GET /ws/events/?topics={TOPIC} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
            f"Authorization: Token {token}\r\n\r\n"
        ).encode()
        self.expected = expected
        self.latencies = latencies
        self.on_live = on_live
        self.buffer = bytearray()
        self.upgraded = False
        self.live = False
        self.received = 0
        self.last_seq = -1
        self.out_of_order = 0
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"websocket refused: {bytes(buffer[:200])!r}")
            del buffer[:end + 4]
            self.upgraded = True
        position, size = 0, len(buffer)
        while size - position >= 2:
            opcode, length = buffer[position] & 0x0F, buffer[position + 1] & 0x7F
            start = position + 2
            if length == 126:
                length, start = int.from_bytes(buffer[start:start + 2], "big"), start + 2
            elif length == 127:
                length, start = int.from_bytes(buffer[start:start + 8], "big"), start + 8
            if start + length > size:
                break
            payload = bytes(buffer[start:start + length])
            position = start + length
            if opcode == 0x1:
                self.on_text(payload, now)
            elif opcode == 0x9:  # ping: answer with a masked pong
                mask = os.urandom(4)
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + mask +
                                     bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            elif opcode == 0x8:
                self.transport.close()
        del buffer[:position]

    def on_text(self, payload: bytes, now: float) -> None:
        if self.live and payload.startswith(b'{"type":"event"'):
            at = payload.index(b'"t":') + 4
            self.latencies.append((now - float(payload[at:payload.index(b",", at)])) * 1000)
            at = payload.index(b'"seq":') + 6
            sequence = int(payload[at:payload.index(b"}", at)])
            if sequence <= self.last_seq:
                self.out_of_order += 1
            self.last_seq = sequence
            self.received += 1
            if self.received >= self.expected and not self.done.done():
                self.done.set_result(None)
            return
        message = json.loads(payload)
        if message["type"] == "backlog_end":
            self.live = True
            self.on_live()
        elif message["type"] == "dropped":
            print(f"a client was told it dropped {message['count']}", file=sys.stderr)


async def run_clients(port: int, token: str, count: int, expected: int, timeout: float) -> dict:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    ready = asyncio.Event()
    live = [0]

    def on_live() -> None:
        live[0] += 1
        if live[0] == count:
            ready.set()

    clients = []
    for _ in range(count):
        _transport, client = await loop.create_connection(
            lambda: BenchClient(port, token, expected, latencies, on_live), "127.0.0.1", port)
        clients.append(client)
    await ready.wait()
    print("READY", flush=True)
    await asyncio.wait([client.done for client in clients], timeout=timeout)
    return {"latencies": latencies, "received": [client.received for client in clients],
            "out_of_order": sum(client.out_of_order for client in clients)}


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
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--web-workers", type=int, default=1,
                        help="web processes (serve --workers); each receives every event from Redis")
    parser.add_argument("--role", default="main")
    parser.add_argument("--port", type=int)
    parser.add_argument("--token")
    parser.add_argument("--expected", type=int)
    args = parser.parse_args()

    if args.role == "clients":
        try:
            from uvloop import run
        except ImportError:
            from asyncio import run
        result = run(run_clients(args.port, args.token, args.clients, args.expected, args.seconds + 30))
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
    web = subprocess.Popen([*manage, "serve", "--port", str(port), "--workers", str(args.web_workers)], cwd=ROOT, env=env,
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
        print(f"{args.clients} websocket clients ({args.client_procs} processes, {args.web_workers} web processes) "
              f"connected; publishing {expected:,} events at {args.rate}/s "
              f"from a worker process through Redis ...", flush=True)
        subprocess.run([PYTHON, __file__, "--role", "publisher", "--rate", str(args.rate), "--seconds",
                        str(args.seconds)], cwd=ROOT, env=env, check=True)
        latencies: list[float] = []
        received: list[int] = []
        out_of_order = 0
        for process in clients:
            for line in process.stdout:
                if line.startswith("RESULT "):
                    result = json.loads(line[7:])
                    latencies += result["latencies"]
                    received += result["received"]
                    out_of_order += result["out_of_order"]
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
          f"min per client {min(received):,}; out of order {out_of_order:,}")
    if latencies:
        p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
        print(f"latency ms: p50 {p50:.2f}  p90 {percentile(latencies, 0.90):.2f}  p99 {p99:.2f}  "
              f"max {max(latencies):.2f}  mean {statistics.fmean(latencies):.2f}")
        print(f"targets p50 <= 5 ms: {'MET' if p50 <= 5 else 'NOT MET'}; p99 <= 25 ms: "
              f"{'MET' if p99 <= 25 else 'NOT MET'}; none lost: {'MET' if lost == 0 else 'NOT MET'}")


if __name__ == "__main__":
    main()
