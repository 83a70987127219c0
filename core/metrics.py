"""Chameleon's Prometheus metrics, and how figures from every node reach /metrics.

Chameleon's own families live in `REGISTRY` (not prometheus_client's default one, which
django-prometheus fills for the web process). Each node's heartbeat stores a snapshot of
them (`local_snapshot`); `ClusterCollector` merges the snapshots of all live nodes, each
sample labelled with its `node`, so figures recorded in worker processes appear on the
web node's /metrics. Define metrics with `counter()`, `gauge()` and `histogram()`;
collectors that compute their figures when collected go in `LIVE_REGISTRY`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import Metric

REGISTRY = CollectorRegistry(auto_describe=True)
#: Collectors that compute their figures in this process when collected (the `metrics`
#: plugin's per-plugin runtime figures). They hold no prometheus_client values, so a
#: worker's multiprocess files never see them: they are reported as they are, in every mode.
LIVE_REGISTRY = CollectorRegistry(auto_describe=False)


def counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
    return Counter(name, documentation, labelnames, registry=REGISTRY)


def gauge(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
    # In a worker's multiprocess mode, a gauge is the sum over its live processes.
    return Gauge(name, documentation, labelnames, registry=REGISTRY, multiprocess_mode="livesum")


def histogram(
    name: str, documentation: str, labelnames: Sequence[str] = (), buckets: Sequence[float] | None = None
) -> Histogram:
    kwargs: dict[str, Any] = {"buckets": buckets} if buckets else {}
    return Histogram(name, documentation, labelnames, registry=REGISTRY, **kwargs)


def _families() -> Iterable[Metric]:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    own = {family.name for family in REGISTRY.collect()}
    if not directory:
        return REGISTRY.collect()
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected, path=directory)
    return [family for family in collected.collect() if family.name in own]


def local_families() -> list[Metric]:
    """This process's (or, in a worker, all its processes') Chameleon metric families."""
    # Live collectors first: they may tidy REGISTRY (the metrics plugin drops the families
    # of a plugin that stopped), which then shows at once.
    live = list(LIVE_REGISTRY.collect())
    return [*_families(), *live]


def local_snapshot() -> list[dict[str, Any]]:
    """`local_families()` as JSON, as a node's heartbeat stores it."""
    return [
        {
            "name": family.name,
            "type": family.type,
            "documentation": family.documentation,
            "samples": [[sample.name, sample.labels, sample.value] for sample in family.samples],
        }
        for family in local_families()
    ]


class ClusterCollector:
    """Every live node's Chameleon metric families, merged and labelled with `node`."""

    def collect(self) -> Iterable[Metric]:
        from core.models import Node
        from core.nodes import current_node_name

        snapshots: list[tuple[str, list[dict[str, Any]]]] = [(current_node_name() or "local", local_snapshot())]
        for name, metrics in Node.objects.alive().exclude(name=current_node_name()).values_list("name", "metrics"):
            snapshots.append((name, metrics or []))
        merged: dict[str, Metric] = {}
        for node, families in snapshots:
            for family in families:
                metric = merged.get(family["name"])
                if metric is None:
                    metric = merged[family["name"]] = Metric(family["name"], family["documentation"], family["type"])
                elif metric.type != family["type"]:
                    continue  # a node running other code; skip rather than emit an invalid family
                for sample_name, labels, value in family["samples"]:
                    metric.add_sample(sample_name, {**labels, "node": node}, value)
        return merged.values()


CLUSTER_REGISTRY = CollectorRegistry(auto_describe=False)
CLUSTER_REGISTRY.register(ClusterCollector())
