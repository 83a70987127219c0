"""The circuit breaker state machine, driven by a fake clock (no timers involved)."""

from __future__ import annotations

from plugins_app.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **kwargs) -> CircuitBreaker:
    return CircuitBreaker(**{"max_failures": 3, "reset_interval": 10.0, "half_open_probes": 2, **kwargs},
                          clock=clock)


def test_consecutive_failures_open_it_and_a_success_resets_the_count():
    clock = Clock()
    cb = breaker(clock)
    cb.record_failure()
    cb.record_failure()
    cb.record_success()
    cb.record_failure()
    cb.record_failure()
    assert cb.state == "closed"
    cb.record_failure()
    assert cb.state == "open"
    assert not cb.allow()


def test_after_the_interval_only_a_limited_number_of_probes_pass():
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 9.9
    assert not cb.allow()
    clock.now += 0.2
    assert cb.allow() and cb.state == "half_open"
    assert cb.allow()
    assert not cb.allow(), "a third probe while two are out"


def test_a_successful_probe_closes_it():
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 10
    assert cb.allow()
    cb.record_success()
    assert cb.state == "closed" and cb.failures == 0
    assert cb.allow()


def test_a_failure_while_half_open_reopens_it_and_restarts_the_interval():
    clock = Clock()
    changes: list[str] = []
    cb = breaker(clock)
    cb.on_change = changes.append
    for _ in range(3):
        cb.record_failure()
    clock.now += 10
    assert cb.allow()
    cb.record_failure()
    assert cb.state == "open"
    clock.now += 5
    assert not cb.allow(), "the interval starts again from the failed probe"
    clock.now += 5
    assert cb.allow()
    assert changes == ["open", "half_open", "open", "half_open"]
