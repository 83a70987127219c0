"""manager.call: typed errors, breaker, concurrency limit, timeout and per-method metrics."""

from __future__ import annotations

import threading

import pytest

from core.metrics import REGISTRY
from plugins_app.errors import (
    CircuitOpen,
    MethodNotFound,
    PluginBusy,
    PluginCallError,
    PluginCallTimeout,
    PluginNotFound,
    PluginNotRunning,
)
from tests.plugins.conftest import make_plugin


def calc_plugin(name: str = "calc", **attrs):
    release = threading.Event()
    return make_plugin(
        name,
        add=lambda self, a, b: a + b,
        fail=lambda self: 1 / 0,
        wait=lambda self: release.wait(5),
        _private=lambda self: "hidden",
        **{"max_failures": 2, "reset_interval": 0.2, "max_concurrency": 1, **attrs},
    ), release


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_calls_reach_the_method_and_are_counted(bare_manager):
    cls, _ = calc_plugin("calc-count")
    bare_manager.register(cls)
    bare_manager.start_all()
    assert bare_manager.call("calc-count", "add", 2, b=3) == 5
    bare_manager.flush_call_metrics()
    assert sample("plugin_calls_total", plugin="calc-count", method="add", outcome="success") == 1
    assert sample("plugin_call_duration_seconds_count", plugin="calc-count", method="add") == 1
    assert bare_manager.call_metrics("calc-count")["add"]["calls"] == 1


def test_typed_errors_for_unknown_plugin_method_and_state(bare_manager):
    cls, _ = calc_plugin()
    bare_manager.register(cls)
    with pytest.raises(PluginNotFound):
        bare_manager.call("nope", "add")
    with pytest.raises(PluginNotRunning):
        bare_manager.call("calc", "add", 1, 2)
    bare_manager.start_all()
    for method in ("_private", "start", "missing"):
        with pytest.raises(MethodNotFound):
            bare_manager.call("calc", method)


def test_a_plugin_exception_reaches_the_caller_typed_and_opens_the_breaker(bare_manager):
    cls, _ = calc_plugin("calc-fail")
    bare_manager.register(cls)
    bare_manager.start_all()
    with pytest.raises(PluginCallError) as error:
        bare_manager.call("calc-fail", "fail")
    assert isinstance(error.value.original, ZeroDivisionError) and error.value.error_type == "ZeroDivisionError"
    with pytest.raises(PluginCallError):
        bare_manager.call("calc-fail", "fail")
    with pytest.raises(CircuitOpen):
        bare_manager.call("calc-fail", "add", 1, 1)
    bare_manager.flush_call_metrics()
    assert sample("plugin_calls_total", plugin="calc-fail", method="fail", outcome="error") == 2
    assert sample("plugin_circuit_state", plugin="calc-fail") == 2


def test_the_breaker_recovers_through_a_half_open_probe(bare_manager):
    cls, _ = calc_plugin("calc-recover")
    bare_manager.register(cls)
    bare_manager.start_all()
    for _ in range(2):
        with pytest.raises(PluginCallError):
            bare_manager.call("calc-recover", "fail")
    breaker = bare_manager.entries["calc-recover"].breaker
    breaker.opened_at -= 1  # the reset interval has passed
    assert bare_manager.call("calc-recover", "add", 1, 1) == 2
    assert breaker.state == "closed"


def test_concurrency_limit_refuses_extra_calls(bare_manager):
    cls, release = calc_plugin("calc-busy")
    bare_manager.register(cls)
    bare_manager.start_all()
    worker = threading.Thread(target=bare_manager.call, args=("calc-busy", "wait"))
    worker.start()
    try:
        from tests.fixtures.services import wait_for

        wait_for(lambda: bare_manager.entries["calc-busy"].active == 1, 5, "the first call to hold the slot")
        with pytest.raises(PluginBusy):
            bare_manager.call("calc-busy", "add", 1, 2)
    finally:
        release.set()
        worker.join()
    assert bare_manager.call("calc-busy", "add", 1, 2) == 3


def test_timeout_gives_a_typed_error(bare_manager):
    cls, release = calc_plugin("calc-slow", max_concurrency=4)
    bare_manager.register(cls)
    bare_manager.start_all()
    try:
        with pytest.raises(PluginCallTimeout):
            bare_manager.call("calc-slow", "wait", timeout=0.05)
        assert sample("plugin_calls_total", plugin="calc-slow", method="wait", outcome="timeout") == 1
        assert bare_manager.call("calc-slow", "add", 1, 2, timeout=5) == 3
    finally:
        release.set()
