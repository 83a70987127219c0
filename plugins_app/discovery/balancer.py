"""Load-balancing strategies: round_robin, random, smooth weighted_round_robin, least_connections.

A `Balancer` keeps per-service state (the round-robin position, the smooth weights'
current values, connections held through `acquire`/`release`) for this process and
picks one of the candidates it is given, in the order given.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Sequence

from plugins_app.discovery.registry import Instance

STRATEGIES = ("round_robin", "random", "weighted_round_robin", "least_connections")


class UnknownStrategy(ValueError):
    pass


class Balancer:
    """Picks instances of each service by one of `STRATEGIES`; thread-safe."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = rng or random.Random()
        self._positions: dict[str, int] = defaultdict(int)
        self._current: dict[str, dict[str, int]] = defaultdict(dict)
        self._connections: dict[str, int] = defaultdict(int)

    def pick(self, service: str, candidates: Sequence[Instance], strategy: str = "round_robin") -> Instance | None:
        if strategy not in STRATEGIES:
            raise UnknownStrategy(f"strategy must be one of {', '.join(STRATEGIES)}")
        if not candidates:
            return None
        with self._lock:
            return getattr(self, f"_{strategy}")(service, candidates)

    def _round_robin(self, service: str, candidates: Sequence[Instance]) -> Instance:
        position = self._positions[service]
        self._positions[service] = position + 1
        return candidates[position % len(candidates)]

    def _random(self, service: str, candidates: Sequence[Instance]) -> Instance:
        return self._rng.choice(list(candidates))

    def _weighted_round_robin(self, service: str, candidates: Sequence[Instance]) -> Instance:
        # nginx's smooth weighted round robin: every pick adds each weight to its current
        # value, takes the largest (first on ties) and subtracts the total from it; 3:1
        # gives A A B A, spreading the heavy instance out instead of A A A B.
        current = self._current[service]
        live = {instance.id for instance in candidates}
        for gone in set(current) - live:
            del current[gone]
        total, best = 0, None
        for instance in candidates:
            weight = max(0, int(instance.weight))
            current[instance.id] = current.get(instance.id, 0) + weight
            total += weight
            if best is None or current[instance.id] > current[best.id]:
                best = instance
        if total == 0:
            return self._round_robin(service, candidates)
        current[best.id] -= total
        return best

    def _least_connections(self, service: str, candidates: Sequence[Instance]) -> Instance:
        # Fewest held connections; among ties, the first after the previous pick, so idle
        # instances share the load instead of the first one taking it all.
        fewest = min(self._connections[instance.id] for instance in candidates)
        key = f"{service}#least"
        start = self._positions[key]
        for offset in range(len(candidates)):
            index = (start + offset) % len(candidates)
            if self._connections[candidates[index].id] == fewest:
                self._positions[key] = index + 1
                return candidates[index]
        raise AssertionError("unreachable: some candidate has the fewest connections")

    def acquire(self, instance: Instance) -> None:
        with self._lock:
            self._connections[instance.id] += 1

    def release(self, instance: Instance) -> None:
        with self._lock:
            if self._connections[instance.id] > 0:
                self._connections[instance.id] -= 1

    def connections(self, instance_id: str) -> int:
        with self._lock:
            return self._connections[instance_id]

    def reset(self) -> None:
        with self._lock:
            self._positions.clear()
            self._current.clear()
            self._connections.clear()
