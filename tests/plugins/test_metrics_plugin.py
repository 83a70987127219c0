"""The built-in `metrics` plugin: plugins' own metrics on /metrics, limits, runtime figures, the standalone endpoint."""

from __future__ import annotations

import os
import re
import socket
import textwrap
import urllib.request
from typing import Any

import pytest
from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest

from core import metrics as core_metrics
from core.nodes import current_node_name
from plugins_app import events, node
from plugins_app.builtin import metrics_store
from plugins_app.builtin.hello import HelloPlugin
from plugins_app.builtin.logger import LoggerPlugin
from plugins_app.builtin.metrics_plugin import InvalidMetric, MetricsLimitExceeded, MetricsPlugin
from plugins_app.config_schema import validate_config
from plugins_app.contract import Plugin
from plugins_app.errors import PluginCallError
from plugins_app.host import PluginManager
from plugins_app.registry import PluginSource
from tests.fixtures.processes import celery, wait_for_node
from tests.fixtures.services import free_port, port_open, wait_for
from tests.fixtures.users import token_client


class ShopPlugin(Plugin):
    """A plugin with metrics of its own, defined through the `metrics` service."""

    name = "shop"
    version = "1.0.0"
    dependencies = ("metrics>=1,<2",)
    permissions = ("services:get", "events:subscribe:test.shop.*")

    def start(self, ctx: Any) -> None:
        self.metrics = ctx.get_service("metrics").for_plugin(ctx)
        self.orders = self.metrics.counter("orders_total", "Orders taken.", ["kind"])
        self.checkout = self.metrics.histogram("checkout_seconds", "Checkout time.", buckets=(0.1, 1.0))
        ctx.subscribe("test.shop.*", self._on_event)

    def _on_event(self, event: Any) -> None:
        if event.data.get("fail"):
            raise ValueError("a bad order")

    def order(self, kind: str, seconds: float = 0.05) -> None:
        self.orders.labels(kind=kind).inc()
        self.checkout.observe(seconds)

    def define(self, kind: str, name: str, labels: list[str] | tuple[str, ...] = (), **options: Any) -> str:
        return getattr(self.metrics, kind)(name, "", labels, **options).name


@pytest.fixture
def host(tmp_path):
    """`host(configs, *classes)`: a manager that is this process's node manager (as in a node),
    its plugins stopped and their metrics gone afterwards."""
    previous = node._manager
    managers: list[PluginManager] = []

    def make(configs: dict[str, dict[str, Any]] | None = None, *classes: type[Plugin]) -> PluginManager:
        manager = PluginManager(node="test-node", persist=False, publish_events=False, data_root=tmp_path,
                                configs=configs or {})
        for cls in classes:
            manager.register(cls)
        node.set_manager(manager)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        node.set_manager(manager)
        manager.stop_all()
        metrics_store.store.sweep()
    node.set_manager(previous)
    assert not metrics_store.store.families("shop"), "a stopped plugin's metrics go"


class LocalFamilies:
    def collect(self) -> list[Any]:
        return core_metrics.local_families()


def exposition() -> str:
    """This process's Chameleon families in the Prometheus text format (what its heartbeat reports)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LocalFamilies())
    return generate_latest(registry).decode()


def sample(name: str, value: str | None = None, /, **labels: str) -> re.Pattern[str]:
    """A Prometheus text line of `name` with (at least) these labels, and `value` if given."""
    lookaheads = "".join(f'(?=[^}}]*{key}="{re.escape(val)}")' for key, val in labels.items())
    number = re.escape(value) if value else r"\S+"
    return re.compile(rf"^{re.escape(name)}\{{{lookaheads}[^}}]*\}} {number}$", re.MULTILINE)


def test_a_plugin_defines_metrics_that_show_on_the_web_nodes_metrics(host, viewer):
    manager = host({}, MetricsPlugin, ShopPlugin)
    assert manager.start_all() == {}
    for kind in ("book", "book", "music"):
        manager.call("shop", "order", kind)

    response = token_client(viewer).get("/metrics")
    assert response.status_code == 200
    body = response.content.decode()
    here = current_node_name() or "local"
    assert sample("plugin_shop_orders_total", "2.0", kind="book", node=here).search(body), body
    assert sample("plugin_shop_orders_total", "1.0", kind="music", node=here).search(body)
    assert sample("plugin_shop_checkout_seconds_bucket", "3.0", le="0.1", node=here).search(body)
    assert "# HELP plugin_shop_orders_total Orders taken." in body
    # Runtime figures of every plugin of the node, next to the existing plugin_* families.
    assert sample("plugin_uptime_seconds", plugin="shop", node=here).search(body)
    assert sample("plugin_restarts_total", "0.0", plugin="metrics", node=here).search(body)
    assert sample("plugin_metrics_series", "7.0", plugin="shop", node=here).search(body), \
        "2 counter series + a histogram (2 buckets, +Inf, _sum and _count)"

    assert manager.call("metrics", "families", "shop") == [
        {"name": "plugin_shop_orders", "type": "counter", "plugin": "shop", "documentation": "Orders taken.",
         "labels": ["kind"], "series": 2},
        {"name": "plugin_shop_checkout_seconds", "type": "histogram", "plugin": "shop",
         "documentation": "Checkout time.", "labels": [], "series": 5},
    ]


def test_bad_names_and_too_many_series_are_refused_with_clear_errors(host):
    manager = host({"metrics": {"max_series_per_plugin": 8, "max_metrics_per_plugin": 4}}, MetricsPlugin, ShopPlugin)
    assert manager.start_all() == {}
    shop = manager.entries["shop"].instance
    refusals = {
        ("counter", "bad-name", ()): "Metric name 'bad-name' is not valid: use letters, digits and underscores",
        ("counter", "9lives", ()): "not starting with a digit",
        ("gauge", "queue", ("node",)): "Label name 'node' is reserved: Chameleon labels every sample",
        ("gauge", "queue", ("__secret",)): "names starting with '__' are reserved by Prometheus",
        ("gauge", "queue", ("a", "a")): "Label names must be unique",
        ("histogram", "wait", ("le",)): "Label name 'le' is reserved in a histogram",
    }
    for (kind, name, labels), message in refusals.items():
        with pytest.raises(InvalidMetric, match=re.escape(message)):
            shop.define(kind, name, labels)
    with pytest.raises(InvalidMetric, match="strictly increasing"):
        shop.define("histogram", "wait", buckets=(1.0, 0.5))
    with pytest.raises(InvalidMetric, match=r"already defined as a counter with labels \(kind\)"):
        shop.define("gauge", "orders")
    assert shop.define("counter", "orders", ["kind"]) == "plugin_shop_orders", "the same definition is the same metric"

    # Through the manager the caller gets the same message, typed.
    with pytest.raises(PluginCallError, match="InvalidMetric: Metric name 'a:b' is not valid"):
        manager.call("shop", "define", "counter", "a:b")

    # The series budget: 5 for the histogram, then one per label combination.
    orders = shop.orders
    for kind in ("a", "b", "c"):
        orders.labels(kind).inc()
    with pytest.raises(MetricsLimitExceeded) as refused:
        orders.labels(kind="d")
    assert str(refused.value) == (
        "Plugin 'shop' may keep at most 8 series (metrics config max_series_per_plugin); "
        'plugin_shop_orders{kind="d"} needs 1 more and 8 are in use. Give series back with .remove(...) / '
        ".clear(), use fewer label values, or raise the limit.")
    orders.remove("a")
    orders.labels(kind="d").inc(5)
    assert not sample("plugin_shop_orders_total", kind="a").search(exposition())
    assert sample("plugin_shop_orders_total", "5.0", kind="d").search(exposition())
    with pytest.raises(InvalidMetric, match="max_label_value_length"):
        orders.labels(kind="x" * 201)
    with pytest.raises(InvalidMetric, match=r"takes the labels \(kind\); got colour"):
        orders.labels(colour="red")

    shop.define("gauge", "stock", ["sku"])
    shop.define("gauge", "open_carts", ["region"])
    with pytest.raises(MetricsLimitExceeded, match=r"may define at most 4 metrics \(metrics config "
                                                   r"max_metrics_per_plugin\); plugin_shop_more refused"):
        shop.define("gauge", "more")
    assert manager.call("metrics", "usage")["shop"] == {"metrics": 4, "series": 8, "refused": 2}
    status = manager.entries["metrics"].instance.health()
    assert status.healthy and status.message == "ok; at their series limit: shop"


def test_the_metrics_config_is_validated_field_by_field(host):
    fields = validate_config(MetricsPlugin.config_schema,
                             {"port": 70000, "node_kinds": ["beat"], "max_series_per_plugin": 0, "colour": 1})
    assert fields == {
        "colour": ["Additional properties are not allowed ('colour' was unexpected)"],
        "max_series_per_plugin": ["0 is less than the minimum of 1"],
        "node_kinds.0": ["'beat' is not one of ['web', 'worker']"],
        "port": ["70000 is greater than the maximum of 65535"],
    }
    manager = host({"metrics": {"port": -1}}, MetricsPlugin)
    assert manager.start("metrics") is False
    assert manager.entries["metrics"].error == "Config of 'metrics' is invalid: port: -1 is less than the minimum of 0"


def test_runtime_figures_count_restarts_and_events_and_a_stopped_plugins_metrics_go(host):
    manager = host({}, MetricsPlugin, ShopPlugin)
    assert manager.start_all() == {}
    manager.call("shop", "order", "book")
    for fail in (False, False, True):
        events.publish("test.shop.order", {"fail": fail}, scope="local")
    wait_for(lambda: sample("plugin_events_handled_total", "2.0", plugin="shop").search(exposition()) and
             sample("plugin_event_handler_errors_total", "1.0", plugin="shop", reason="error").search(exposition()),
             10, "the shop's handled and failed events to be counted")
    manager.check_health()
    assert sample("plugin_healthy", "1.0", plugin="shop").search(exposition())

    assert manager.restart("shop")
    events.publish("test.shop.order", {}, scope="local")
    wait_for(lambda: sample("plugin_events_handled_total", "3.0", plugin="shop").search(exposition()), 10,
             "events to be counted across the restart")
    assert sample("plugin_restarts_total", "1.0", plugin="shop").search(exposition())
    assert "plugin_shop_orders_total" in exposition(), "a restart keeps the plugin's metrics"

    manager.stop("shop")
    assert "plugin_shop_" not in exposition()
    assert not sample("plugin_uptime_seconds", plugin="shop").search(exposition())
    assert manager.call("metrics", "usage")["shop"]["series"] == 0


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def test_the_standalone_port_serves_this_nodes_metrics_and_is_freed_on_stop(host):
    port = free_port()
    manager = host({"metrics": {"port": port, "node_kinds": ["web", "worker"]}}, MetricsPlugin, ShopPlugin)
    assert manager.start_all() == {}
    manager.call("shop", "order", "book")
    plugin = manager.entries["metrics"].instance
    assert plugin.address() == f"http://127.0.0.1:{port}/metrics"
    assert plugin.health().healthy and plugin.health().message == f"serving on {plugin.address()}"

    body = fetch(plugin.address())
    assert sample("plugin_shop_orders_total", "1.0", kind="book", node="test-node").search(body), body
    assert sample("plugin_uptime_seconds", plugin="shop", node="test-node").search(body)
    assert sample("plugin_status", "1.0", name="shop", status="running", node="test-node").search(body)

    # A new config moves the endpoint without a restart.
    moved = free_port()
    manager.static_configs["metrics"] = {"port": moved, "node_kinds": ["web", "worker"]}
    assert manager.apply_config("metrics") == "applied"
    assert not port_open("127.0.0.1", port)
    assert sample("plugin_shop_orders_total", "1.0", kind="book").search(fetch(f"http://127.0.0.1:{moved}/metrics"))
    port = moved

    assert manager.stop("metrics", cascade=True) == ["shop", "metrics"]
    assert not port_open("127.0.0.1", port)
    with socket.socket() as sock:
        # Free for the next server (SO_REUSEADDR, as servers bind, past the scrape's TIME_WAIT).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_a_forked_child_does_not_keep_the_port_after_the_parent_stops_serving(host):
    # A Celery pool child forked while the endpoint runs must not hold the listening socket.
    port = free_port()
    manager = host({"metrics": {"port": port, "node_kinds": ["web", "worker"]}}, MetricsPlugin)
    assert manager.start("metrics")
    release_child, hold_child = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only waits, then leaves without cleanup
        os.close(hold_child)
        os.read(release_child, 1)
        os._exit(0)
    os.close(release_child)
    try:
        manager.stop("metrics")
        assert not port_open("127.0.0.1", port), "the child still listens on the parent's port"
    finally:
        os.close(hold_child)
        os.waitpid(child, 0)


def test_a_taken_port_fails_the_plugin_with_its_error_and_the_others_go_on(host):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        manager = host({"metrics": {"port": port, "node_kinds": ["web", "worker"]}},
                       LoggerPlugin, HelloPlugin, MetricsPlugin, ShopPlugin)
        outcome = manager.start_all()
        error = f"start: RuntimeError: Cannot serve metrics on 127.0.0.1:{port}: Address already in use"
        assert outcome["metrics"] == error
        assert manager.entries["metrics"].state == "failed" and manager.entries["metrics"].error == error
        assert "Address already in use" in manager.entries["metrics"].traceback
        assert "needs 'metrics' running" in outcome["shop"]
        assert {name for name, entry in manager.entries.items() if entry.state == "running"} == {"logger", "hello"}
        assert manager.call("hello", "greet", "ann") == "Hello, ann!"
    assert manager.restart("metrics") and manager.start("shop"), "once the port is free it starts"
    assert fetch(f"http://127.0.0.1:{port}/metrics")


def test_a_reload_of_the_metrics_plugin_keeps_its_port_and_the_plugins_metrics(host):
    port = free_port()
    manager = host({"metrics": {"port": port, "node_kinds": ["web", "worker"]}})
    manager.register(MetricsPlugin, PluginSource("module", MetricsPlugin.__module__, module=MetricsPlugin.__module__))
    manager.register(ShopPlugin)
    assert manager.start_all() == {}
    manager.call("shop", "order", "book")
    result = manager.reload("metrics")
    assert result["ok"], result
    assert manager.entries["metrics"].instance.address() == f"http://127.0.0.1:{port}/metrics"
    manager.call("shop", "order", "book")
    assert sample("plugin_shop_orders_total", "2.0", kind="book").search(fetch(f"http://127.0.0.1:{port}/metrics"))


SHOP_ON_A_WORKER = textwrap.dedent('''
    from plugins_app.contract import Plugin

    class BootCounter(Plugin):
        name = "boots"
        version = "1.0.0"
        dependencies = ("metrics>=1,<2",)
        permissions = ("services:get",)

        def start(self, ctx):
            metrics = ctx.get_service("metrics").for_plugin(ctx)
            metrics.counter("started", "Times this plugin started.").inc()

    plugin = BootCounter
''')


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_plugins_metric_on_a_worker_reaches_the_web_nodes_metrics(tmp_path, start_process, viewer):
    (tmp_path / "boots.py").write_text(SHOP_ON_A_WORKER)
    worker = start_process(
        "worker", celery("worker", "--loglevel", "info", "--concurrency", "1", "--without-gossip",
                         "--without-mingle", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE),
        CHAMELEON_PLUGIN_DIRS=str(tmp_path))
    name = wait_for_node("worker", worker)
    client = token_client(viewer)
    started = sample("plugin_boots_started_total", "1.0", node=name)
    uptime = sample("plugin_uptime_seconds", plugin="boots", node=name)
    wait_for(lambda: (body := client.get("/metrics").content.decode()) and started.search(body) and
             uptime.search(body), 60, "the worker's plugin metric and runtime figures on the web node's /metrics")
