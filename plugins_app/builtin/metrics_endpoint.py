"""The `metrics` plugin's standalone Prometheus endpoints, one per address in a process.

Kept apart from `metrics_plugin` so a hot reload (which imports that module afresh) keeps
a bound port: the new instance starts, and acquires the port, before the old one stops.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from core import metrics as core_metrics

logger = logging.getLogger("chameleon.plugins.metrics")


class NodeExposition:
    """This node's families for the standalone endpoint: the process's default registry
    (process_*, python_*...) and Chameleon's, every sample labelled with `node` as on /metrics."""

    def __init__(self, node: str) -> None:
        self.node = node

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        seen: set[str] = set()
        for family in [*prometheus_client.REGISTRY.collect(), *core_metrics.local_families()]:
            if family.name in seen:
                continue
            seen.add(family.name)
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [sample._replace(labels={**sample.labels, "node": self.node})
                                for sample in family.samples]
            yield labelled


@dataclass(eq=False)
class Endpoint:
    host: str
    port: int
    server: Any
    thread: threading.Thread
    holders: set[object] = field(default_factory=set)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"


class Endpoints:
    """This process's standalone endpoints, shared by address: during a hot reload the new
    plugin instance starts (and needs the port) before the old one stops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str, int], Endpoint] = {}

    def acquire(self, holder: object, host: str, port: int, node: str) -> Endpoint:
        with self._lock:
            endpoint = self._open.get((host, port))
            if endpoint is None:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(NodeExposition(node))
                try:
                    server, thread = prometheus_client.start_wsgi_server(port, addr=host, registry=registry)
                except OSError as exc:
                    raise RuntimeError(f"Cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
                thread.name = f"chameleon-metrics-{port}"
                endpoint = self._open[(host, port)] = Endpoint(host, port, server, thread)
                logger.info("Serving this node's metrics on %s", endpoint.address)
            endpoint.holders.add(holder)
            return endpoint

    def release(self, holder: object, endpoint: Endpoint) -> None:
        with self._lock:
            endpoint.holders.discard(holder)
            if endpoint.holders or self._open.get((endpoint.host, endpoint.port)) is not endpoint:
                return
            del self._open[(endpoint.host, endpoint.port)]
        endpoint.server.shutdown()
        endpoint.server.server_close()
        endpoint.thread.join(5)

    def forget_after_fork(self) -> None:
        """In a forked child: close the inherited listening sockets (the parent keeps serving);
        a Celery pool child would otherwise keep the port bound after the parent let it go."""
        for endpoint in self._open.values():
            try:
                endpoint.server.socket.close()
            except OSError:
                pass
        self._open.clear()
        self._lock = threading.Lock()



#: This process's endpoints.
endpoints = Endpoints()
os.register_at_fork(after_in_child=endpoints.forget_after_fork)
