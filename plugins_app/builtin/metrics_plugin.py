"""Built-in `metrics` plugin: Prometheus metrics for plugins, per-plugin runtime figures, an optional endpoint.

Other plugins depend on it (`dependencies = ("metrics>=1,<2",)`, permission `services:get`)
and define their own metrics through the `metrics` service:

    metrics = ctx.get_service("metrics").for_plugin(ctx)
    orders = metrics.counter("orders", "Orders taken.", ["kind"])   # plugin_<name>_orders_total
    orders.labels(kind="book").inc()

Names are namespaced `plugin_<plugin>_<metric>` and checked against the Prometheus rules;
each plugin has a budget of metrics and series (`max_metrics_per_plugin`,
`max_series_per_plugin`) so that a runaway label cannot eat the process's memory: past it,
`MetricsLimitExceeded` says which limit was hit and how to give series back. The families
live in `core.metrics.REGISTRY`, so they reach the web node's /metrics from every node with
a `node` label, as Chameleon's own do. A plugin's metrics go when it stops or fails;
defining the same metric again (after a restart or a reload) returns the existing one.

While it runs it also reports runtime figures of this node's plugins (uptime, restarts,
health, calls in progress, events handled / failed / dropped / waiting, metric series) and,
with `port` set, serves this node's metrics on `http://<host>:<port>/metrics` -- without a
login, so it binds 127.0.0.1 unless told otherwise -- on the node kinds in `node_kinds`.
The process-wide parts live in `plugins_app.builtin.metrics_store`.
"""

from __future__ import annotations

import socket
from typing import Any

from plugins_app.builtin import metrics_endpoint, metrics_store
from plugins_app.builtin.metrics_store import (
    InvalidMetric,
    Limits,
    MetricsError,
    MetricsLimitExceeded,
    MetricsService,
    PluginMetric,
    PluginMetrics,
)
from plugins_app.contract import HealthStatus, Plugin

__all__ = ["InvalidMetric", "MetricsError", "MetricsLimitExceeded", "MetricsPlugin", "PluginMetric",
           "PluginMetrics", "plugin"]


def _in_pool_child() -> bool:
    # A Celery pool child's private host starts the enabled plugins too; the worker's main
    # process already serves the figures of all its processes (multiprocess mode).
    from plugins_app import node

    return bool(node._private_host_wanted)


def _node_kind() -> str | None:
    from plugins_app.node import current_host

    host = current_host()
    return host.kind if host is not None else None


class MetricsPlugin(Plugin):
    """Shares the `metrics` service, reports runtime figures and optionally serves an endpoint."""

    name = "metrics"
    version = "1.0.0"
    description = "Prometheus metrics for plugins (service `metrics`), runtime figures, optional endpoint."
    permissions = ("services:register", "config:read")
    config_schema = {
        "type": "object",
        "properties": {
            "port": {"type": "integer", "minimum": 0, "maximum": 65535, "default": 0,
                     "description": "Serve this node's metrics on host:port; 0 (the default) serves none."},
            "host": {"type": "string", "minLength": 1, "maxLength": 255, "default": "127.0.0.1",
                     "description": "Address the endpoint binds; it has no login, so keep it private."},
            "node_kinds": {"type": "array", "items": {"enum": ["web", "worker"]}, "minItems": 1,
                           "uniqueItems": True, "default": ["worker"],
                           "description": "Node kinds that serve the endpoint (web nodes have /metrics)."},
            "runtime_metrics": {"type": "boolean", "default": True,
                                "description": "Report per-plugin runtime figures."},
            "max_metrics_per_plugin": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
            "max_series_per_plugin": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 2000},
            "max_label_value_length": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 200},
        },
        "additionalProperties": False,
    }

    def initialize(self, ctx: Any, config: dict[str, Any]) -> None:
        super().initialize(ctx, config)
        self.store = metrics_store.store
        self.endpoint: metrics_endpoint.Endpoint | None = None

    def start(self, ctx: Any) -> None:
        self.store.limits = Limits.from_config(self.config)
        self._serve(self.config)  # first: a taken port fails the start before anything is registered
        try:
            metrics_store.runtime.hold(self, self.config["runtime_metrics"])
            ctx.register_service("metrics", MetricsService(self.store))
        except Exception:
            self.stop(ctx)
            raise

    def stop(self, ctx: Any) -> None:
        metrics_store.runtime.hold(self, False)
        self._stop_serving()
        self.store.sweep()

    def on_config_change(self, new_config: dict[str, Any]) -> None:
        self.store.limits = Limits.from_config(new_config)
        metrics_store.runtime.hold(self, new_config["runtime_metrics"])
        if any(new_config[key] != self.config[key] for key in ("port", "host", "node_kinds")):
            self._stop_serving()
            self.config = new_config
            try:
                self._serve(new_config)
            except Exception:
                metrics_store.runtime.hold(self, False)  # failed: the host will not call stop()
                raise
        self.config = new_config

    def _serves_here(self, config: dict[str, Any]) -> bool:
        kind = _node_kind()
        return bool(config["port"]) and not _in_pool_child() and (kind is None or kind in config["node_kinds"])

    def _serve(self, config: dict[str, Any]) -> None:
        if self._serves_here(config):
            self.endpoint = metrics_endpoint.endpoints.acquire(self, config["host"], config["port"], self.ctx.node)

    def _stop_serving(self) -> None:
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            metrics_endpoint.endpoints.release(self, endpoint)

    def health(self) -> HealthStatus:
        usage = self.store.usage()
        limits = self.store.limits
        details: dict[str, Any] = {"address": self.address(), "plugins": usage,
                                   "limits": {"metrics": limits.metrics, "series": limits.series}}
        if self.config["runtime_metrics"] and metrics_store.runtime.error:
            return HealthStatus(False, f"runtime figures failed: {metrics_store.runtime.error}", details)
        if self._serves_here(self.config):
            endpoint = self.endpoint
            if endpoint is None or not endpoint.thread.is_alive():
                return HealthStatus(False, "the metrics endpoint is not running", details)
            try:
                socket.create_connection(endpoint.server.server_address[:2], timeout=2).close()
            except OSError as exc:
                return HealthStatus(False, f"the metrics endpoint {endpoint.address} does not answer: {exc}",
                                    details)
        message = f"serving on {self.address()}" if self.endpoint is not None else "ok"
        full = sorted(name for name, use in usage.items() if use["series"] >= limits.series)
        if full:
            message += f"; at their series limit: {', '.join(full)}"
        return HealthStatus(True, message, details)

    # Methods callable through the manager (and POST /api/v1/plugins/metrics/call/).
    def families(self, plugin: str | None = None) -> list[dict[str, Any]]:
        """The metrics plugins defined on this node: name, type, labels, series."""
        return self.store.families(plugin)

    def usage(self) -> dict[str, dict[str, int]]:
        """Per plugin: metrics defined, series in use, refusals."""
        return self.store.usage()

    def address(self) -> str:
        """The standalone endpoint's URL, or '' when this node serves none."""
        return self.endpoint.address if self.endpoint is not None else ""


plugin = MetricsPlugin
