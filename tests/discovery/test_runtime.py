"""The service-management thread checks health on each instance's interval and expires instances."""

from __future__ import annotations

import pytest

from plugins_app.discovery import services
from plugins_app.discovery.runtime import DiscoveryRuntime
from tests.discovery.conftest import topics_for
from tests.fixtures.services import wait_for


@pytest.fixture
def runtime():
    thread = DiscoveryRuntime(tick=0.05, monitor_interval=3600, alert_interval=3600, mirror_config=False)
    thread.start()
    yield thread
    thread.stop()


def test_runtime_checks_health_on_the_interval(registry, runtime, http_listener, service_events):
    instance = services.register_instance(
        name="web", endpoint=f"http://127.0.0.1:{http_listener.server_port}/", ttl=30,
        check={"type": "http", "interval": 0.1, "timeout": 1},
    )
    wait_for(lambda: services.get_instance(instance.id).health == "healthy", 5, "first check by the thread")
    http_listener.status = 500
    wait_for(lambda: services.get_instance(instance.id).health == "unhealthy", 5, "failing check by the thread")
    wait_for(lambda: ("service.health_changed", "unhealthy") in topics_for(service_events, instance.id), 5,
             "transition evented")


def test_runtime_expires_instances_by_itself(registry, runtime, service_events):
    instance = services.register_instance(name="temp", endpoint="10.9.9.9:1", ttl=1)
    wait_for(lambda: ("service.deregistered", "expired") in topics_for(service_events, instance.id), 15,
             "expiry reported without anyone listing")


def test_runtime_collects_metrics_and_fires_alerts_on_its_interval(registry):
    from plugins_app.discovery.models import Alert, AlertRule

    AlertRule.objects.create(name="any-instance", metric="chameleon_service_instances",
                             labels={"service": "ticker"}, condition="gte", threshold=1, duration=0)
    thread = DiscoveryRuntime(tick=0.05, monitor_interval=0.1, alert_interval=0.1, mirror_config=False)
    thread.start()
    try:
        instance = services.register_instance(name="ticker", endpoint="10.0.0.1:80", ttl=30)
        wait_for(lambda: Alert.objects.filter(rule__name="any-instance", state="firing").exists(), 10,
                 "the thread to collect the count and fire the rule")
        services.deregister_instance(instance.id)
        wait_for(lambda: Alert.objects.filter(rule__name="any-instance", state="resolved").exists(), 10,
                 "the thread to resolve it")
    finally:
        thread.stop()
