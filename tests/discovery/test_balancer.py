"""Load-balancing sequences, as tables, and `resolve()` over discovered healthy instances."""

from __future__ import annotations

import random

import pytest

from plugins_app.discovery import services
from plugins_app.discovery.balancer import Balancer, UnknownStrategy
from plugins_app.discovery.registry import Instance


def instances(**weights: int) -> list[Instance]:
    return [Instance(id=name, name="svc", endpoint=f"{name}:80", weight=weight) for name, weight in weights.items()]


@pytest.mark.parametrize(
    "weights, picks, expected",
    [
        ({"A": 1}, 3, "AAA"),
        ({"A": 1, "B": 1, "C": 1}, 7, "ABCABCA"),
        ({"A": 3, "B": 1}, 8, "AABAAABA"),  # smooth: A A B A, not A A A B
        ({"A": 5, "B": 1, "C": 1}, 7, "AABACAA"),  # nginx's documented example
        ({"A": 2, "B": 2}, 4, "ABAB"),
        ({"A": 0, "B": 1}, 3, "BBB"),  # weight 0 takes no traffic
    ],
)
def test_smooth_weighted_round_robin_sequences(weights, picks, expected):
    balancer, candidates = Balancer(), instances(**weights)
    assert "".join(balancer.pick("svc", candidates, "weighted_round_robin").id for _ in range(picks)) == expected


@pytest.mark.parametrize(
    "names, picks, expected",
    [("A", 3, "AAA"), ("AB", 5, "ABABA"), ("ABC", 6, "ABCABC")],
)
def test_round_robin_sequences(names, picks, expected):
    balancer, candidates = Balancer(), instances(**dict.fromkeys(names, 1))
    assert "".join(balancer.pick("svc", candidates, "round_robin").id for _ in range(picks)) == expected


def test_round_robin_state_is_per_service():
    balancer, candidates = Balancer(), instances(A=1, B=1)
    assert balancer.pick("one", candidates).id == "A"
    assert balancer.pick("two", candidates).id == "A"
    assert balancer.pick("one", candidates).id == "B"


def test_least_connections_prefers_the_least_loaded():
    balancer, candidates = Balancer(), instances(A=1, B=1, C=1)
    a = balancer.pick("svc", candidates, "least_connections")
    balancer.acquire(a)
    b = balancer.pick("svc", candidates, "least_connections")
    balancer.acquire(b)
    c = balancer.pick("svc", candidates, "least_connections")
    balancer.acquire(c)
    assert [a.id, b.id, c.id] == ["A", "B", "C"]
    balancer.acquire(a)
    balancer.acquire(c)
    assert balancer.pick("svc", candidates, "least_connections").id == "B"
    balancer.release(a)
    balancer.release(a)
    assert balancer.pick("svc", candidates, "least_connections").id == "A"
    assert (balancer.connections("A"), balancer.connections("B"), balancer.connections("C")) == (0, 1, 2)


def test_random_uses_every_instance_and_only_those():
    balancer, candidates = Balancer(rng=random.Random(7)), instances(A=1, B=1, C=1)
    picked = [balancer.pick("svc", candidates, "random").id for _ in range(300)]
    assert set(picked) == {"A", "B", "C"}
    assert min(picked.count(name) for name in "ABC") > 60


def test_no_candidates_and_unknown_strategy():
    assert Balancer().pick("svc", [], "round_robin") is None
    with pytest.raises(UnknownStrategy):
        Balancer().pick("svc", instances(A=1), "fastest")


def test_resolve_balances_over_healthy_discovered_instances(registry):
    a = services.register_instance(id="a", name="api", endpoint="10.0.0.1:80", weight=3, ttl=30)
    b = services.register_instance(id="b", name="api", endpoint="10.0.0.2:80", weight=1, ttl=30)
    sick = services.register_instance(id="c", name="api", endpoint="10.0.0.3:80", ttl=30, check={"type": "tcp"})
    registry.set_health(sick.id, "unhealthy", "down", sick.registered_at)
    from tests.fixtures.services import wait_for

    wait_for(lambda: {i.id for i in services.discover("api")} == {"a", "b"}, 5, "healthy instances discovered")
    assert "".join(services.resolve("api", "weighted_round_robin").id for _ in range(4)) == "aaba"
    assert "".join(services.resolve("api", "round_robin").id for _ in range(4)) == "abab"
    with services.acquire("api") as held:
        assert services.balancer.connections(held.id) == 1
        assert services.resolve("api", "least_connections").id != held.id
    assert services.balancer.connections(held.id) == 0
    services.deregister_instance(a.id)
    services.deregister_instance(b.id)
    wait_for(lambda: services.discover("api") == [], 5, "all healthy instances gone")
    with pytest.raises(services.NoHealthyInstance):
        services.resolve("api")
