"""Service discovery benchmarks: resolve() from the cache per strategy, and registry operations per back end.

Baselines measured in the same run: picking from a plain list (`candidates[i % n]`) and
the balancer alone (no registry). Then `resolve(name, strategy)` over 10 healthy
instances served from the discovery cache, and register / heartbeat / deregister round
trips on the database back end and, with ETCD_ENDPOINTS set, on etcd.

Run: .venv/bin/python bench/bench_discovery.py   (ETCD_ENDPOINTS=127.0.0.1:2379 for etcd)
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chameleon_site.settings")
os.environ.setdefault("CHAMELEON_DATA_DIR", "/tmp/chameleon-bench-discovery")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from core.conf import chameleon_settings  # noqa: E402
from plugins_app.discovery import services  # noqa: E402
from plugins_app.discovery.balancer import STRATEGIES, Balancer  # noqa: E402
from plugins_app.discovery.registry import DatabaseRegistry, EtcdRegistry, Instance  # noqa: E402

N = 200_000
OPS = 300


def per_call(func, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(n):
            func(i)
        best = min(best, (time.perf_counter() - started) / n)
    return best


def bench_backend(backend) -> None:
    services.set_registry(backend)
    name = f"bench-{uuid.uuid4().hex[:6]}"
    for i in range(10):
        services.register_instance(id=f"{name}-{i}", name=name, endpoint=f"10.0.0.{i}:80", weight=1 + i % 3, ttl=60)
    while len(services.discover(name)) < 10:  # the etcd watch delivers asynchronously
        time.sleep(0.01)
    print(f"\n[{backend.kind}] resolve() over 10 healthy instances from the cache:")
    for strategy in STRATEGIES:
        cost = per_call(lambda i, s=strategy: services.resolve(name, s), N // 4)
        print(f"  {strategy:22s} {cost * 1e6:7.2f} us/call  {1 / cost:12,.0f} resolves/s")
    ids = [f"{name}-op-{i}" for i in range(OPS)]
    timings = {}
    for label, op in (
        ("register", lambda i: services.register_instance(id=ids[i], name=name, endpoint="10.1.0.1:80", ttl=60)),
        ("heartbeat", lambda i: services.heartbeat_instance(ids[i])),
        ("deregister", lambda i: services.deregister_instance(ids[i])),
    ):
        started = time.perf_counter()
        for i in range(OPS):
            op(i)
        timings[label] = (time.perf_counter() - started) / OPS
    print("  " + "  ".join(f"{label} {cost * 1e3:.2f} ms" for label, cost in timings.items()))
    for i in range(10):
        services.deregister_instance(f"{name}-{i}")


def main() -> None:
    call_command("migrate", verbosity=0)
    candidates = [Instance(id=f"i{i}", name="svc", endpoint=f"10.0.0.{i}:80", weight=1 + i % 3) for i in range(10)]
    plain = per_call(lambda i: candidates[i % 10], N)
    balancer = Balancer()
    print("Baselines (10 instances):")
    print(f"  plain list index       {plain * 1e6:7.3f} us/call")
    for strategy in STRATEGIES:
        cost = per_call(lambda i, s=strategy: balancer.pick("svc", candidates, s), N)
        print(f"  balancer {strategy:13s} {cost * 1e6:7.3f} us/call")
    bench_backend(DatabaseRegistry())
    if chameleon_settings.ETCD_ENDPOINTS:
        backend = EtcdRegistry(list(chameleon_settings.ETCD_ENDPOINTS), prefix=f"/chameleon-bench/{uuid.uuid4().hex}")
        try:
            bench_backend(backend)
        finally:
            backend.client.delete_prefix(backend.prefix + "/")
            backend.close()


if __name__ == "__main__":
    main()
