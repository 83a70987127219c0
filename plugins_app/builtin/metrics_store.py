"""The process-wide side of the built-in `metrics` plugin: the metrics plugins define, their
budgets and the per-plugin runtime figures (the standalone endpoints: `metrics_endpoint`).

It lives apart from `metrics_plugin` so that a hot reload of the plugin (which imports
that module afresh) keeps what plugins already hold: their metric handles, the families
in `core.metrics.REGISTRY`, the event counts and a bound port.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from core import metrics as core_metrics
from plugins_app.context import PluginContext
from plugins_app.models import PluginState

logger = logging.getLogger("chameleon.plugins.metrics")

NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MAX_NAME_LENGTH = 100
MAX_LABELS = 10
MAX_BUCKETS = 50
#: Chameleon adds `node` to every sample on /metrics; a plugin's own `node` label would clash.
RESERVED_LABELS = frozenset({"node"})


class MetricsError(ValueError):
    """A plugin's metric was refused; the message says what is wrong and what to do."""


class InvalidMetric(MetricsError):
    """A metric or label name, label value, bucket list or redefinition breaks the rules."""


class MetricsLimitExceeded(MetricsError):
    """A plugin reached its metric or series budget (the `metrics` plugin's config)."""


@dataclass(frozen=True)
class Limits:
    metrics: int = 100
    series: int = 2000
    label_value_length: int = 200

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Limits:
        return cls(config["max_metrics_per_plugin"], config["max_series_per_plugin"],
                   config["max_label_value_length"])


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME_LENGTH:
        raise InvalidMetric(
            f"{what} {name!r} is not valid: use letters, digits and underscores, not starting with a digit, "
            f"at most {MAX_NAME_LENGTH} characters (Prometheus names; colons are for recording rules)")
    return name


class PluginMetric:
    """One metric a plugin defined. `labels(...)` gives the child to update (`inc`, `dec`, `set`,
    `observe`, `time`...); a metric without labels is updated directly. A new label
    combination counts against the plugin's series budget; `remove(*values)` and `clear()`
    give series back.
    """

    def __init__(self, store: MetricsStore, owner: _Owner, kind: str, short: str, name: str, documentation: str,
                 metric: Any, labelnames: tuple[str, ...], buckets: tuple[float, ...], ctx: PluginContext) -> None:
        self._store = store
        self._owner = owner
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}
        self.kind = kind
        self.short = short
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.buckets = buckets
        #: Series one label combination costs (a histogram: each bucket, _sum and _count).
        self.cost = len(buckets) + 2 if kind == "histogram" else 1
        #: The plugin contexts (instances) that defined it; it goes when none of them is live.
        self.contexts: list[PluginContext] = [ctx]

    def shape(self) -> tuple[str, tuple[str, ...], tuple[float, ...]]:
        return self.kind, self.labelnames, self.buckets

    def labels(self, *values: Any, **named: Any) -> Any:
        if not self.labelnames:
            raise InvalidMetric(f"{self.name} has no labels: update it directly (.inc(), .set(), .observe())")
        if named:
            if values or set(named) != set(self.labelnames):
                raise InvalidMetric(f"{self.name} takes the labels ({', '.join(self.labelnames)}); "
                                    f"got {', '.join(sorted(named)) or 'none'} (pass them by name or by position)")
            values = tuple(named[label] for label in self.labelnames)
        key = tuple(str(value) for value in values)
        child = self._children.get(key)
        if child is None:
            child = self._store.add_series(self, key)
        return child

    def remove(self, *values: Any) -> None:
        """Forget one label combination (its series leave /metrics and the budget)."""
        self._store.remove_series(self, tuple(str(value) for value in values))

    def clear(self) -> None:
        """Forget every label combination."""
        self._store.remove_series(self, None)

    def _direct(self) -> Any:
        if self.labelnames:
            raise InvalidMetric(f"{self.name} has labels ({', '.join(self.labelnames)}): "
                                f"update it through .labels(...)")
        return self._metric

    def inc(self, amount: float = 1) -> None:
        self._direct().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._direct().dec(amount)

    def set(self, value: float) -> None:
        self._direct().set(value)

    def observe(self, amount: float) -> None:
        self._direct().observe(amount)

    def time(self) -> Any:
        return self._direct().time()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "plugin": self._owner.plugin,
                "documentation": self.documentation, "labels": list(self.labelnames),
                "series": len(self._children) * self.cost if self.labelnames else self.cost}


class _Owner:
    """The metrics of one plugin on this process, and the series they use."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.families: dict[str, PluginMetric] = {}
        self.series = 0
        self.refused = 0


class MetricsStore:
    """Every metric plugins defined in this process, with their budgets (one per process)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.owners: dict[str, _Owner] = {}
        self.limits = Limits()

    # -- defining -------------------------------------------------------------------
    def define(self, ctx: PluginContext, kind: str, name: str, documentation: str,
               labelnames: Sequence[str], buckets: Sequence[float] | None) -> PluginMetric:
        plugin = ctx.plugin_name
        short = _check_name("Metric name", name)
        if kind == "counter" and short.endswith("_total"):
            short = short[: -len("_total")]  # the exposition adds it
        labels = self._check_labels(kind, labelnames)
        bounds = self._check_buckets(buckets) if kind == "histogram" else ()
        if not isinstance(documentation, str) or len(documentation) > 1000:
            raise InvalidMetric(f"The documentation of {short!r} must be a string of at most 1000 characters")
        full = f"plugin_{plugin.replace('-', '_')}_{short}"
        if _taken_by_runtime(full):
            raise InvalidMetric(f"Metric name {full} (plugin {plugin!r}, metric {short!r}) is reserved for the "
                                f"metrics plugin's runtime figures; choose another name")
        self.sweep()
        with self._lock:
            owner = self.owners.setdefault(plugin, _Owner(plugin))
            existing = owner.families.get(short)
            if existing is not None:
                if existing.shape() == (kind, labels, bounds):
                    if not any(context is ctx for context in existing.contexts):
                        existing.contexts.append(ctx)  # a restart or reload takes it over, values and all
                    return existing
                if any(context is ctx for context in existing.contexts):
                    raise InvalidMetric(
                        f"{full} is already defined as a {existing.kind} with labels "
                        f"({', '.join(existing.labelnames)}); remove() it before defining it differently")
                self._drop(owner, existing)  # new code (reload) gives it another shape
            if len(owner.families) >= self.limits.metrics:
                owner.refused += 1
                raise MetricsLimitExceeded(
                    f"Plugin {plugin!r} may define at most {self.limits.metrics} metrics (metrics config "
                    f"max_metrics_per_plugin); {full} refused. Remove one or raise the limit.")
            cost = len(bounds) + 2 if kind == "histogram" else 1
            if not labels:
                self._reserve(owner, full, cost, "")
            documentation = documentation or f"{short} (plugin {plugin})."
            try:
                metric = _create(kind, full, documentation, labels, bounds)
            except ValueError as exc:
                if not labels:
                    owner.series -= cost
                raise InvalidMetric(f"Metric name {full} (plugin {plugin!r}, metric {short!r}) is already used by "
                                    f"another metric family in this process; choose another name ({exc})") from None
            family = owner.families[short] = PluginMetric(self, owner, kind, short, full, documentation, metric,
                                                          labels, bounds, ctx)
            return family

    @staticmethod
    def _check_labels(kind: str, labelnames: Sequence[str]) -> tuple[str, ...]:
        if isinstance(labelnames, str):
            labelnames = (labelnames,)
        labels = tuple(_check_name("Label name", label) for label in labelnames)
        for label in labels:
            if label.startswith("__"):
                raise InvalidMetric(f"Label name {label!r} is not valid: names starting with '__' are reserved "
                                    f"by Prometheus")
            if label in RESERVED_LABELS:
                raise InvalidMetric(f"Label name {label!r} is reserved: Chameleon labels every sample with the "
                                    f"node it comes from; choose another name")
            if kind == "histogram" and label == "le":
                raise InvalidMetric("Label name 'le' is reserved in a histogram (its buckets use it)")
        if len(set(labels)) != len(labels):
            raise InvalidMetric(f"Label names must be unique; got ({', '.join(labels)})")
        if len(labels) > MAX_LABELS:
            raise InvalidMetric(f"A metric may have at most {MAX_LABELS} labels; got {len(labels)}")
        return labels

    @staticmethod
    def _check_buckets(buckets: Sequence[float] | None) -> tuple[float, ...]:
        values = list(Histogram.DEFAULT_BUCKETS if buckets is None else buckets)
        try:
            bounds = [float(value) for value in values]
        except (TypeError, ValueError):
            raise InvalidMetric(f"Histogram buckets must be numbers; got {values!r}") from None
        if bounds and bounds[-1] != math.inf:
            bounds.append(math.inf)
        if len(bounds) < 2 or any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)) or \
                any(math.isnan(b) for b in bounds):
            raise InvalidMetric(f"Histogram buckets must be at least one number, strictly increasing; got {values!r}")
        if len(bounds) > MAX_BUCKETS:
            raise InvalidMetric(f"A histogram may have at most {MAX_BUCKETS} buckets; got {len(bounds)}")
        return tuple(bounds)

    # -- series -----------------------------------------------------------------------
    def _reserve(self, owner: _Owner, series: str, cost: int, labels: str) -> None:
        if owner.series + cost > self.limits.series:
            owner.refused += 1
            raise MetricsLimitExceeded(
                f"Plugin {owner.plugin!r} may keep at most {self.limits.series} series (metrics config "
                f"max_series_per_plugin); {series}{labels} needs {cost} more and {owner.series} are in use. "
                f"Give series back with .remove(...) / .clear(), use fewer label values, or raise the limit.")
        owner.series += cost

    def add_series(self, family: PluginMetric, key: tuple[str, ...]) -> Any:
        if len(key) != len(family.labelnames):
            raise InvalidMetric(f"{family.name} takes {len(family.labelnames)} label value(s) "
                                f"({', '.join(family.labelnames)}); got {len(key)}")
        limit = self.limits.label_value_length
        for label, value in zip(family.labelnames, key, strict=True):
            if len(value) > limit:
                raise InvalidMetric(f"Label {label!r} of {family.name} is {len(value)} characters long; at most "
                                    f"{limit} are allowed (metrics config max_label_value_length)")
        with self._lock:
            child = family._children.get(key)
            if child is None:
                shown = "{" + ",".join(f'{k}="{v}"' for k, v in zip(family.labelnames, key, strict=True)) + "}"
                self._reserve(family._owner, family.name, family.cost, shown)
                child = family._children[key] = family._metric.labels(*key)
            return child

    def remove_series(self, family: PluginMetric, key: tuple[str, ...] | None) -> None:
        if not family.labelnames:
            raise InvalidMetric(f"{family.name} has no labels: there are no series to remove")
        with self._lock:
            keys = list(family._children) if key is None else [key] if key in family._children else []
            for each in keys:
                # prometheus_client cannot take a series back out of a worker's multiprocess
                # files; there the series stays on /metrics with its last value.
                family._metric.remove(*each)
                del family._children[each]
                family._owner.series -= family.cost

    # -- going away -------------------------------------------------------------------
    def remove(self, plugin: str, name: str) -> bool:
        with self._lock:
            owner = self.owners.get(plugin)
            if owner is None:
                return False
            family = owner.families.get(name) or owner.families.get(name.removesuffix("_total"))
            if family is None:
                return False
            self._drop(owner, family)
            return True

    def _drop(self, owner: _Owner, family: PluginMetric) -> None:
        owner.families.pop(family.short, None)
        owner.series -= len(family._children) * family.cost if family.labelnames else family.cost
        try:
            core_metrics.REGISTRY.unregister(family._metric)
        except KeyError:
            pass

    def sweep(self) -> None:
        """Drop the metrics of plugins that stopped or failed on this node's host."""
        manager = _hosting_manager()
        if manager is None:
            return
        with self._lock:
            for owner in list(self.owners.values()):
                entry = manager.entries.get(owner.plugin)
                if entry is None or entry.state == PluginState.RELOADING:
                    continue
                live = entry.ctx if entry.instance is not None and entry.state != PluginState.FAILED else None
                for family in list(owner.families.values()):
                    if any(context.node != manager.node for context in family.contexts):
                        continue  # defined through another host in this process (scripts, tests)
                    family.contexts = [context for context in family.contexts if context is live]
                    if not family.contexts:
                        self._drop(owner, family)

    # -- reading ------------------------------------------------------------------------
    def families(self, plugin: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [family.describe() for owner in self.owners.values() if plugin in (None, owner.plugin)
                    for family in owner.families.values()]

    def usage(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {owner.plugin: {"metrics": len(owner.families), "series": owner.series, "refused": owner.refused}
                    for owner in self.owners.values()}


def _create(kind: str, name: str, documentation: str, labels: tuple[str, ...], bounds: tuple[float, ...]) -> Any:
    if kind == "counter":
        return core_metrics.counter(name, documentation, labels)
    if kind == "gauge":
        return core_metrics.gauge(name, documentation, labels)
    return core_metrics.histogram(name, documentation, labels, buckets=bounds)


def _hosting_manager() -> Any:
    """This process's node manager if there is one yet. Not `get_manager()`: that would create
    one, and in a Celery pool child it holds a lock while the private host starts plugins."""
    from plugins_app import node

    return node._manager


class PluginMetrics:
    """A plugin's own metrics, from `ctx.get_service("metrics").for_plugin(ctx)`."""

    def __init__(self, store: MetricsStore, ctx: PluginContext) -> None:
        self._store = store
        self._ctx = ctx
        self.plugin = ctx.plugin_name

    def counter(self, name: str, documentation: str = "", labelnames: Sequence[str] = ()) -> PluginMetric:
        return self._store.define(self._ctx, "counter", name, documentation, labelnames, None)

    def gauge(self, name: str, documentation: str = "", labelnames: Sequence[str] = ()) -> PluginMetric:
        return self._store.define(self._ctx, "gauge", name, documentation, labelnames, None)

    def histogram(self, name: str, documentation: str = "", labelnames: Sequence[str] = (),
                  buckets: Sequence[float] | None = None) -> PluginMetric:
        return self._store.define(self._ctx, "histogram", name, documentation, labelnames, buckets)

    def remove(self, name: str) -> bool:
        """Forget the metric `name` (short name); False when there is none."""
        return self._store.remove(self.plugin, name)

    def metrics(self) -> list[dict[str, Any]]:
        return self._store.families(self.plugin)


class MetricsService:
    """What `ctx.get_service("metrics")` returns."""

    def __init__(self, store: MetricsStore) -> None:
        self._store = store

    def for_plugin(self, ctx: PluginContext) -> PluginMetrics:
        """The metrics of the plugin whose context this is, named `plugin_<its name>_<metric>`."""
        if not isinstance(ctx, PluginContext):
            raise TypeError("for_plugin() takes the calling plugin's context (the ctx given to its hooks)")
        return PluginMetrics(self._store, ctx)


# -- runtime figures -------------------------------------------------------------------
RUNTIME_FAMILIES = {
    "plugin_uptime_seconds": "Seconds since each running plugin started on this node.",
    "plugin_restarts": "Restarts of each plugin on this node.",
    "plugin_healthy": "1 when the plugin's last health check passed, 0 when it failed.",
    "plugin_active_calls": "Calls through PluginManager.call running now, per plugin.",
    "plugin_events_handled": "Events the plugin's handlers processed without error.",
    "plugin_event_handler_errors": "Events the plugin's handlers failed on, by reason (error, timeout).",
    "plugin_events_dropped": "Events dropped because the plugin's subscription queue was full.",
    "plugin_event_backlog": "Events waiting in the plugin's subscription queues.",
    "plugin_metrics_series": "Series the plugin's own metrics use.",
    "plugin_metrics_refused": "Metrics and series refused to the plugin by its limits.",
    "plugin_metrics_series_limit": "Series each plugin's own metrics may use (max_series_per_plugin).",
}
_RUNTIME_SAMPLES = {*RUNTIME_FAMILIES, *(f"{name}_total" for name in RUNTIME_FAMILIES),
                    *(f"{name}_created" for name in RUNTIME_FAMILIES)}


def _taken_by_runtime(full: str) -> bool:
    suffixes = ("", "_total", "_created", "_bucket", "_sum", "_count")
    return any(full + suffix in _RUNTIME_SAMPLES for suffix in suffixes)


class RuntimeCollector:
    """Per-plugin figures of this node, computed when collected (in `core.metrics.LIVE_REGISTRY`).

    Event figures are summed over the plugin's subscriptions and kept across restarts (a
    subscription's counts are added as they grow), so they are counters.
    """

    def __init__(self, store: MetricsStore) -> None:
        self.store = store
        self.error = ""
        self._lock = threading.Lock()
        self._seen: dict[int, tuple[str, int, int, int, int]] = {}
        self._events: dict[str, list[int]] = {}
        self._holders: set[object] = set()

    def hold(self, holder: object, wanted: bool = True) -> None:
        """Report while at least one holder (a running `metrics` plugin instance) wants it."""
        with self._lock:
            had = bool(self._holders)
            if wanted:
                self._holders.add(holder)
            else:
                self._holders.discard(holder)
            if self._holders and not had:
                core_metrics.LIVE_REGISTRY.register(self)
            elif had and not self._holders:
                core_metrics.LIVE_REGISTRY.unregister(self)
                self.error = ""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        try:
            families = self._collect()
        except Exception as exc:  # a broken figure must not break /metrics
            logger.exception("Collecting plugin runtime figures failed")
            self.error = f"{type(exc).__name__}: {exc}"
            return []
        self.error = ""
        return families

    def _event_figures(self) -> tuple[dict[str, list[int]], dict[str, int]]:
        from plugins_app import events

        backlog: dict[str, int] = {}
        with self._lock:
            seen: dict[int, tuple[str, int, int, int, int]] = {}
            for subscription in events.get_bus().subscriptions():
                if not subscription.name.startswith("plugin:"):
                    continue
                plugin = subscription.name.split(":", 2)[1]
                now = (plugin, subscription.delivered, subscription.errors, subscription.timeouts,
                       subscription.dropped)
                before = self._seen.get(subscription.id, (plugin, 0, 0, 0, 0))
                totals = self._events.setdefault(plugin, [0, 0, 0, 0])
                for index in range(4):
                    totals[index] += max(0, now[index + 1] - before[index + 1])
                seen[subscription.id] = now
                backlog[plugin] = backlog.get(plugin, 0) + len(subscription.mailbox)
            self._seen = seen
            return {plugin: list(totals) for plugin, totals in self._events.items()}, backlog

    def _collect(self) -> list[Metric]:
        self.store.sweep()
        gauge = {name: GaugeMetricFamily(name, RUNTIME_FAMILIES[name], labels=["plugin"]) for name in (
            "plugin_uptime_seconds", "plugin_healthy", "plugin_active_calls", "plugin_event_backlog",
            "plugin_metrics_series")}
        count = {name: CounterMetricFamily(name, RUNTIME_FAMILIES[name], labels=["plugin"]) for name in (
            "plugin_restarts", "plugin_events_handled", "plugin_events_dropped", "plugin_metrics_refused")}
        errors = CounterMetricFamily("plugin_event_handler_errors", RUNTIME_FAMILIES["plugin_event_handler_errors"],
                                     labels=["plugin", "reason"])
        manager = _hosting_manager()
        now = time.time()
        for name, entry in sorted(manager.entries.items()) if manager is not None else ():
            count["plugin_restarts"].add_metric([name], entry.restart_count)
            gauge["plugin_active_calls"].add_metric([name], entry.active)
            if entry.state == PluginState.RUNNING:
                if entry.started_at:
                    gauge["plugin_uptime_seconds"].add_metric([name], max(0.0, now - entry.started_at))
                if entry.health is not None:
                    gauge["plugin_healthy"].add_metric([name], 1 if entry.health.healthy else 0)
        handled, backlog = self._event_figures()
        for name, (ok, failed, timed_out, dropped) in sorted(handled.items()):
            count["plugin_events_handled"].add_metric([name], ok)
            errors.add_metric([name, "error"], failed)
            errors.add_metric([name, "timeout"], timed_out)
            count["plugin_events_dropped"].add_metric([name], dropped)
            gauge["plugin_event_backlog"].add_metric([name], backlog.get(name, 0))
        for name, use in sorted(self.store.usage().items()):
            gauge["plugin_metrics_series"].add_metric([name], use["series"])
            count["plugin_metrics_refused"].add_metric([name], use["refused"])
        limit = GaugeMetricFamily("plugin_metrics_series_limit", RUNTIME_FAMILIES["plugin_metrics_series_limit"],
                                  value=self.store.limits.series)
        return [*gauge.values(), *count.values(), errors, limit]


#: One of each per process.
store = MetricsStore()
runtime = RuntimeCollector(store)
