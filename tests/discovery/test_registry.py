"""The registry contract, run against both back ends: the database and a real etcd."""

from __future__ import annotations

import time

import pytest

from plugins_app.discovery import services
from plugins_app.discovery.registry import InstanceNotFound
from tests.discovery.conftest import topics_for
from tests.fixtures.services import wait_for


def test_registered_instance_is_listed_with_its_fields(registry, service_events):
    instance = services.register_instance(
        name="billing", endpoint="http://10.0.0.5:8000", version="1.2.0", metadata={"zone": "a"}, ttl=30
    )
    stored = services.get_instance(instance.id)
    assert (stored.name, stored.endpoint, stored.version, stored.metadata) == (
        "billing", "http://10.0.0.5:8000", "1.2.0", {"zone": "a"},
    )
    assert stored.health == "healthy"  # no check: healthy while it heartbeats
    assert stored.registered_at is not None and stored.expires_at > stored.registered_at
    assert [item.id for item in services.list_instances(name="billing")] == [instance.id]
    wait_for(lambda: ("service.registered", "healthy") in topics_for(service_events, instance.id), 5,
             "service.registered event")


def test_deregistered_instance_is_gone_and_evented(registry, service_events):
    instance = services.register_instance(name="billing", endpoint="10.0.0.5:8000", ttl=30)
    services.deregister_instance(instance.id)
    assert services.list_instances(name="billing") == []
    with pytest.raises(InstanceNotFound):
        services.heartbeat_instance(instance.id)
    with pytest.raises(InstanceNotFound):
        services.deregister_instance(instance.id)
    wait_for(lambda: ("service.deregistered", "deregistered") in topics_for(service_events, instance.id), 5,
             "service.deregistered event")


def test_instance_without_heartbeats_expires_and_is_evented(registry, service_events):
    services.discover("short-lived")  # the etcd back end reports expiries from its watch
    instance = services.register_instance(name="short-lived", endpoint="10.0.0.9:80", ttl=1)
    assert [item.id for item in services.list_instances(name="short-lived")] == [instance.id]
    wait_for(lambda: services.list_instances(name="short-lived") == [], 15, "the instance to expire")
    with pytest.raises(InstanceNotFound):
        services.heartbeat_instance(instance.id)
    wait_for(lambda: ("service.deregistered", "expired") in topics_for(service_events, instance.id), 10,
             "service.deregistered with reason expired")
    assert services.discover("short-lived") == []


def test_heartbeats_keep_an_instance_past_its_ttl(registry):
    instance = services.register_instance(name="steady", endpoint="10.0.0.7:80", ttl=2)
    started = time.monotonic()

    def beat_for_two_ttls() -> bool:
        services.heartbeat_instance(instance.id)
        return time.monotonic() - started > 4

    wait_for(beat_for_two_ttls, 20, "heartbeating for two TTLs", interval=0.3)
    assert [item.id for item in services.list_instances(name="steady")] == [instance.id]
    assert services.get_instance(instance.id).last_heartbeat > instance.registered_at


def test_reregistering_an_id_replaces_the_instance(registry, service_events):
    services.register_instance(id="api-1", name="api", endpoint="10.0.0.1:80", version="1", ttl=30)
    services.register_instance(id="api-1", name="api", endpoint="10.0.0.2:80", version="2", ttl=30)
    [only] = services.list_instances(name="api")
    assert (only.endpoint, only.version) == ("10.0.0.2:80", "2")
    wait_for(lambda: ("service.deregistered", "replaced") in topics_for(service_events, "api-1"), 5,
             "the replaced instance reported")
    assert ("service.deregistered", "expired") not in topics_for(service_events, "api-1")


def test_discovery_cache_follows_registrations(registry):
    assert services.discover("search") == []
    first = services.register_instance(name="search", endpoint="10.0.1.1:80", ttl=30)
    wait_for(lambda: [item.id for item in services.discover("search")] == [first.id], 5, "first instance discovered")
    second = services.register_instance(name="search", endpoint="10.0.1.2:80", ttl=30)
    wait_for(lambda: {item.id for item in services.discover("search")} == {first.id, second.id}, 5,
             "second instance discovered")
    services.deregister_instance(first.id)
    wait_for(lambda: [item.id for item in services.discover("search")] == [second.id], 5,
             "deregistered instance dropped from discovery")


def test_unhealthy_instances_are_listed_but_not_discovered(registry):
    good = services.register_instance(name="pay", endpoint="10.0.2.1:80", ttl=30)
    bad = services.register_instance(name="pay", endpoint="10.0.2.2:80", ttl=30, check={"type": "tcp"})
    assert services.get_instance(bad.id).health == "unknown"
    registry.set_health(bad.id, "unhealthy", "refused", bad.registered_at)
    services.get_registry().invalidate("pay")
    listed = {item.id: item.health for item in services.list_instances(name="pay")}
    assert listed == {good.id: "healthy", bad.id: "unhealthy"}
    wait_for(lambda: [item.id for item in services.discover("pay")] == [good.id], 5, "only the healthy one discovered")
    assert {item.id for item in services.discover("pay", include_unhealthy=True)} == {good.id, bad.id}
    assert services.resolve("pay").id == good.id


def test_database_cache_is_refreshed_by_another_nodes_change_event(transactional_db):
    from plugins_app import events
    from plugins_app.discovery.models import ServiceInstance
    from plugins_app.discovery.registry import DatabaseRegistry

    previous = services.set_registry(DatabaseRegistry())
    try:
        instance = services.register_instance(name="cache", endpoint="10.3.0.1:80", ttl=60)
        wait_for(lambda: [item.id for item in services.discover("cache")] == [instance.id], 5, "cached")
        # Delivery is asynchronous: let the registration's own event land before the check
        # below, or it would clear the cache early and hide whether the change event does.
        assert events.flush()
        services.discover("cache")
        # Another node marks it unhealthy: its row changes, this process's cache does not know yet.
        ServiceInstance.objects.filter(id=instance.id).update(health="unhealthy")
        assert [item.id for item in services.discover("cache")] == [instance.id]
        events.publish("service.health_changed", {"id": instance.id, "name": "cache", "health": "unhealthy"},
                       source="system")
        wait_for(lambda: services.discover("cache") == [], 5, "the change event to invalidate the cache")
    finally:
        services.set_registry(previous)


def test_etcd_watch_sees_another_nodes_registration(etcd_endpoints):
    import uuid

    from plugins_app.discovery.registry import EtcdRegistry

    prefix = f"/chameleon-test/{uuid.uuid4().hex}"
    here, there = EtcdRegistry(etcd_endpoints, prefix=prefix), EtcdRegistry(etcd_endpoints, prefix=prefix)
    try:
        assert here.discover("remote") == []  # loads the cache and starts the watch
        from plugins_app.discovery.registry import Instance

        there.register(Instance(id="r1", name="remote", endpoint="10.4.0.1:80", health="healthy", ttl=30))
        wait_for(lambda: [item.id for item in here.discover("remote")] == ["r1"], 5, "watch delivers the put")
        there.set_health("r1", "unhealthy", "down", there.get("r1").registered_at)
        wait_for(lambda: [item.health for item in here.discover("remote")] == ["unhealthy"], 5, "health change")
        there.deregister("r1")
        wait_for(lambda: here.discover("remote") == [], 5, "watch delivers the delete")
    finally:
        here.client.delete_prefix(prefix + "/")
        here.close()
        there.close()
