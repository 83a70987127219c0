"""A per-plugin circuit breaker: closed / open / half-open, driven by calls (no timer thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitState:
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    #: Values of the `plugin_circuit_state` gauge.
    GAUGE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitBreaker:
    """Counts consecutive failures; `max_failures` of them open the circuit.

    While open, calls are refused until `reset_interval` has passed since it opened; the
    next call then finds it half-open and at most `half_open_probes` calls go through as
    probes. A successful probe closes it; a failed probe re-opens it (and restarts the
    interval). Time is read at call time, so no thread runs per breaker.
    """

    __slots__ = ("max_failures", "reset_interval", "half_open_probes", "state", "failures", "opened_at",
                 "_probes", "_lock", "_clock", "on_change")

    def __init__(self, max_failures: int = 5, reset_interval: float = 30.0, half_open_probes: int = 1,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.max_failures = max_failures
        self.reset_interval = reset_interval
        self.half_open_probes = half_open_probes
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._probes = 0
        self._lock = threading.Lock()
        self._clock = clock
        self.on_change = on_change

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(state)

    def allow(self) -> bool:
        """May a call go through now? Takes a probe slot when half-open."""
        if self.state == CircuitState.CLOSED:
            return True
        with self._lock:
            if self.state == CircuitState.OPEN:
                if self._clock() - self.opened_at < self.reset_interval:
                    return False
                self._probes = 0
                self._set(CircuitState.HALF_OPEN)
            if self.state == CircuitState.HALF_OPEN:
                if self._probes >= self.half_open_probes:
                    return False
                self._probes += 1
                return True
            return True

    def record_success(self) -> None:
        if self.state == CircuitState.CLOSED:
            self.failures = 0
            return
        with self._lock:
            self.failures = 0
            self._probes = 0
            self._set(CircuitState.CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == CircuitState.HALF_OPEN or self.failures >= self.max_failures:
                self.opened_at = self._clock()
                self._probes = 0
                self._set(CircuitState.OPEN)

    def reset(self) -> None:
        with self._lock:
            self.failures = 0
            self._probes = 0
            self._set(CircuitState.CLOSED)

    def retry_in(self) -> float:
        return max(0.0, self.reset_interval - (self._clock() - self.opened_at)) if self.state == CircuitState.OPEN else 0.0
