"""The hot path: `PluginManager.call` through the breaker, the concurrency limit and per-method metrics."""

from __future__ import annotations

import time
from bisect import bisect_left
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from core.logging import plugin_var
from plugins_app import metrics
from plugins_app.errors import (
    CircuitOpen,
    MethodNotFound,
    PluginBusy,
    PluginCallError,
    PluginCallTimeout,
    PluginNotFound,
    PluginNotRunning,
)

if TYPE_CHECKING:
    from plugins_app.host import PluginEntry

_perf = time.perf_counter
_CLOSED = "closed"


class CallRoute:
    """A resolved (plugin, method): the bound method and its call statistics, cached per instance.

    The hot path only bumps plain numbers here (under the plugin's lock, which it takes
    per call anyway); `flush()` moves them into the Prometheus families
    (SPEC §7 names) -- on every host tick, before /metrics snapshots and before
    `call_metrics()` reads them. Observing a prometheus_client histogram per call costs
    more than the whole 2 us budget.
    """

    __slots__ = ("entry", "func", "method", "ok", "errors", "total", "buckets", "_ok_child", "_error_child",
                 "_latency_child")

    def __init__(self, entry: PluginEntry, method: str, func: Any) -> None:
        self.entry = entry
        self.method = method
        self.func = func
        self.ok = 0
        self.errors = 0
        self.total = 0.0
        self.buckets = [0] * (len(BOUNDS) + 1)
        self._ok_child = metrics.plugin_calls.labels(plugin=entry.name, method=method, outcome="success")
        self._error_child = metrics.plugin_calls.labels(plugin=entry.name, method=method, outcome="error")
        self._latency_child = metrics.plugin_call_duration.labels(plugin=entry.name, method=method)

    def flush(self) -> None:
        with self.entry.lock:
            ok, errors, total, buckets = self.ok, self.errors, self.total, self.buckets
            self.ok = self.errors = 0
            self.total = 0.0
            self.buckets = [0] * (len(BOUNDS) + 1)
        if ok:
            self._ok_child.inc(ok)
        if errors:
            self._error_child.inc(errors)
        if ok or errors:
            # prometheus_client keeps non-cumulative bucket counters in `_buckets`, the last
            # one being +Inf; adding the batched counts there equals observing each call.
            child_buckets = self._latency_child._buckets
            for index, count in enumerate(buckets):
                if count:
                    child_buckets[min(index, len(child_buckets) - 1)].inc(count)
            self._latency_child._sum.inc(total)


BOUNDS = tuple(b for b in metrics.plugin_call_duration._upper_bounds if b != float("inf"))


class CallsMixin:
    """`call()` and what it needs; mixed into PluginManager."""

    entries: dict[str, PluginEntry]
    _routes: dict[tuple[str, str], CallRoute]
    _retired_routes: list[CallRoute]

    def _route(self, plugin: str, method: str) -> CallRoute:
        entry = self.entries.get(plugin)
        if entry is None:
            raise PluginNotFound(plugin)
        if not entry.callable or entry.instance is None:
            raise PluginNotRunning(plugin, entry.state)
        if method.startswith("_") or method not in entry.cls.public_methods():
            raise MethodNotFound(plugin, method)
        route = CallRoute(entry, method, getattr(entry.instance, method))
        self._routes[(plugin, method)] = route
        return route

    def call(self, plugin: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call `plugin.method(*args, **kwargs)` through its circuit breaker.

        Raises PluginNotFound / PluginNotRunning / MethodNotFound, CircuitOpen while the
        breaker refuses, PluginBusy past the concurrency limit, PluginCallTimeout, and
        PluginCallError wrapping whatever the plugin raised.
        """
        route = self._routes.get((plugin, method))
        if route is None:
            route = self._route(plugin, method)
        entry = route.entry
        if not entry.callable:
            raise PluginNotRunning(plugin, entry.state)
        breaker = entry.breaker
        if breaker.state is not _CLOSED and not breaker.allow():
            metrics.plugin_calls.labels(plugin=plugin, method=method, outcome="rejected").inc()
            raise CircuitOpen(plugin, breaker.retry_in())
        if timeout is None:
            timeout = entry.call_timeout
        try:
            entry.slots.pop()  # deque.pop is atomic: a free concurrency slot, or IndexError
        except IndexError:
            metrics.plugin_calls.labels(plugin=plugin, method=method, outcome="busy").inc()
            raise PluginBusy(plugin, entry.max_concurrency) from None
        started = _perf()
        if timeout is not None:
            return self._call_with_timeout(route, timeout, started, args, kwargs)
        try:
            result = route.func(*args, **kwargs)
        except Exception as exc:
            elapsed = _perf() - started
            entry.slots.append(None)
            with entry.lock:
                route.errors += 1
                route.total += elapsed
                route.buckets[bisect_left(BOUNDS, elapsed)] += 1
            breaker.record_failure()
            raise PluginCallError(plugin, method, exc) from exc
        elapsed = _perf() - started
        entry.slots.append(None)
        with entry.lock:
            route.ok += 1
            route.total += elapsed
            route.buckets[bisect_left(BOUNDS, elapsed)] += 1
        if breaker.failures:
            breaker.record_success()
        return result

    def _call_with_timeout(self, route: CallRoute, timeout: float, started: float, args: tuple, kwargs: dict) -> Any:
        entry = route.entry
        if entry.executor is None:
            entry.executor = ThreadPoolExecutor(max_workers=entry.max_concurrency,
                                                thread_name_prefix=f"plugin-{entry.name}")

        def run() -> Any:
            token = plugin_var.set(entry.name)
            try:
                return route.func(*args, **kwargs)
            finally:
                plugin_var.reset(token)

        def finished(_future: Any) -> None:
            # The slot is freed when the call really ends, even after the caller gave up on it.
            entry.slots.append(None)

        future = entry.executor.submit(run)
        future.add_done_callback(finished)

        def record(ok: bool) -> None:
            elapsed = _perf() - started
            with entry.lock:
                if ok:
                    route.ok += 1
                else:
                    route.errors += 1
                route.total += elapsed
                route.buckets[bisect_left(BOUNDS, elapsed)] += 1

        try:
            result = future.result(timeout=timeout)
        except FutureTimeout:
            metrics.plugin_calls.labels(plugin=entry.name, method=route.method, outcome="timeout").inc()
            metrics.plugin_call_duration.labels(plugin=entry.name, method=route.method).observe(_perf() - started)
            entry.breaker.record_failure()
            raise PluginCallTimeout(entry.name, route.method, timeout) from None
        except Exception as exc:
            record(False)
            entry.breaker.record_failure()
            raise PluginCallError(entry.name, route.method, exc) from exc
        record(True)
        if entry.breaker.failures:
            entry.breaker.record_success()
        return result

    def flush_call_metrics(self) -> None:
        """Move batched call statistics into the Prometheus families."""
        routes = list(self._routes.values()) + self._retired_routes
        self._retired_routes = []
        for route in routes:
            route.flush()

    def call_metrics(self, plugin: str) -> dict[str, dict[str, float]]:
        """Per-method calls, errors and mean latency of `plugin` on this node, from the metric families."""
        self.flush_call_metrics()
        result: dict[str, dict[str, float]] = {}
        for family in metrics.plugin_calls.collect():
            for sample in family.samples:
                if sample.labels.get("plugin") == plugin and sample.name.endswith("_total"):
                    stats = result.setdefault(sample.labels["method"], {"calls": 0, "errors": 0})
                    stats["calls"] += sample.value
                    if sample.labels["outcome"] != "success":
                        stats["errors"] += sample.value
        for family in metrics.plugin_call_duration.collect():
            sums = {s.labels["method"]: s.value for s in family.samples
                    if s.labels.get("plugin") == plugin and s.name.endswith("_sum")}
            counts = {s.labels["method"]: s.value for s in family.samples
                      if s.labels.get("plugin") == plugin and s.name.endswith("_count")}
            for method, total in sums.items():
                if method in result and counts.get(method):
                    result[method]["mean_latency_seconds"] = total / counts[method]
        return result
