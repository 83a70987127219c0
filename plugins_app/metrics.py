"""The plugin runtime's Prometheus families (SPEC §7 names), defined through core.metrics."""

from core.metrics import counter, gauge, histogram

plugin_count = gauge("plugin_count_total", "Plugins loaded on this node.")
plugin_status = gauge("plugin_status", "1 for the state each plugin is in on this node.", ["name", "status"])
plugin_startup_duration = histogram(
    "plugin_startup_duration_seconds", "Time to initialize and start a plugin.", ["plugin"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
)
plugin_calls = counter("plugin_calls", "Calls through PluginManager.call.", ["plugin", "method", "outcome"])
plugin_call_duration = histogram(
    "plugin_call_duration_seconds", "Latency of PluginManager.call.", ["plugin", "method"],
    buckets=(0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0),
)
plugin_circuit_state = gauge("plugin_circuit_state", "Circuit state per plugin: 0 closed, 1 half-open, 2 open.",
                             ["plugin"])
