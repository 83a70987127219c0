"""The hot path: `PluginManager.call` through the breaker, the concurrency limit and per-method metrics."""

from __future__ import annotations

import time
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
    """A resolved (plugin, method): the bound method and its metric children, cached per instance."""

    __slots__ = ("entry", "func", "method", "ok", "errors", "latency", "calls", "failures", "total_time")

    def __init__(self, entry: PluginEntry, method: str, func: Any) -> None:
        self.entry = entry
        self.method = method
        self.func = func
        self.ok = metrics.plugin_calls.labels(plugin=entry.name, method=method, outcome="success")
        self.errors = metrics.plugin_calls.labels(plugin=entry.name, method=method, outcome="error")
        self.latency = metrics.plugin_call_duration.labels(plugin=entry.name, method=method)


class CallsMixin:
    """`call()` and what it needs; mixed into PluginManager."""

    entries: dict[str, PluginEntry]
    _routes: dict[tuple[str, str], CallRoute]

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
            timeout = entry.cls.call_timeout
        semaphore = entry.semaphore
        if not semaphore.acquire(False):
            metrics.plugin_calls.labels(plugin=plugin, method=method, outcome="busy").inc()
            raise PluginBusy(plugin, entry.cls.max_concurrency)
        started = _perf()
        if timeout is not None:
            return self._call_with_timeout(route, timeout, started, args, kwargs)
        try:
            result = route.func(*args, **kwargs)
        except Exception as exc:
            route.latency.observe(_perf() - started)
            route.errors.inc()
            breaker.record_failure()
            raise PluginCallError(plugin, method, exc) from exc
        finally:
            semaphore.release()
        route.latency.observe(_perf() - started)
        route.ok.inc()
        if breaker.failures:
            breaker.record_success()
        return result

    def _call_with_timeout(self, route: CallRoute, timeout: float, started: float, args: tuple, kwargs: dict) -> Any:
        entry = route.entry
        if entry.executor is None:
            entry.executor = ThreadPoolExecutor(max_workers=entry.cls.max_concurrency,
                                                thread_name_prefix=f"plugin-{entry.name}")

        def run() -> Any:
            token = plugin_var.set(entry.name)
            try:
                return route.func(*args, **kwargs)
            finally:
                plugin_var.reset(token)

        future = entry.executor.submit(run)
        # The slot is freed when the call really ends, even after the caller gave up on it.
        future.add_done_callback(lambda _f: entry.semaphore.release())
        try:
            result = future.result(timeout=timeout)
        except FutureTimeout:
            route.latency.observe(_perf() - started)
            metrics.plugin_calls.labels(plugin=entry.name, method=route.method, outcome="timeout").inc()
            entry.breaker.record_failure()
            raise PluginCallTimeout(entry.name, route.method, timeout) from None
        except Exception as exc:
            route.latency.observe(_perf() - started)
            route.errors.inc()
            entry.breaker.record_failure()
            raise PluginCallError(entry.name, route.method, exc) from exc
        route.latency.observe(_perf() - started)
        route.ok.inc()
        if entry.breaker.failures:
            entry.breaker.record_success()
        return result

    def call_metrics(self, plugin: str) -> dict[str, dict[str, float]]:
        """Per-method calls, errors and mean latency of `plugin` on this node, from the metric families."""
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
