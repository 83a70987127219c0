"""Fault test (SPEC §11): a plugin raising in every hook and method under load leaves the host up;
its breaker opens and recovers once the plugin behaves again."""

from __future__ import annotations

import threading

from plugins_app.errors import CircuitOpen, PluginCallError
from tests.plugins.conftest import make_plugin


def test_a_plugin_failing_everywhere_under_load_opens_its_breaker_and_recovers(bare_manager):
    broken = {"on": True}

    def maybe_raise(self, *args):
        if broken["on"]:
            raise RuntimeError("everything is broken")
        return "fine"

    hooks = {hook: maybe_raise for hook in ("initialize", "start", "stop", "health")}
    bare_manager.register(make_plugin("chaos", work=maybe_raise, max_failures=5, reset_interval=60, **hooks))
    bare_manager.register(make_plugin("steady", work=lambda self: "ok"))
    assert set(bare_manager.start_all()) == {"chaos"}
    assert bare_manager.entries["chaos"].state == "failed"
    assert not bare_manager.restart("chaos"), "still broken"

    broken["on"] = False
    assert bare_manager.restart("chaos")
    broken["on"] = True  # now every call fails, from many threads at once
    outcomes: dict[str, int] = {"error": 0, "open": 0, "steady": 0}
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(200):
            try:
                bare_manager.call("chaos", "work")
            except PluginCallError:
                kind = "error"
            except CircuitOpen:
                kind = "open"
            assert bare_manager.call("steady", "work") == "ok"
            with lock:
                outcomes[kind] += 1
                outcomes["steady"] += 1

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    breaker = bare_manager.entries["chaos"].breaker
    assert breaker.state == "open"
    assert outcomes["steady"] == 1600 and outcomes["open"] > 1000
    assert 5 <= outcomes["error"] <= 5 + 8, "only the calls in flight when it opened got through"
    assert bare_manager.check_health()["chaos"].healthy is False

    broken["on"] = False
    breaker.opened_at -= 61  # the reset interval has passed
    assert bare_manager.call("chaos", "work") == "fine"
    assert breaker.state == "closed"
    assert bare_manager.entries["chaos"].active == 0
