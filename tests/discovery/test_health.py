"""Health checks against real listeners on loopback: http (2xx), tcp (connect), custom checks."""

from __future__ import annotations

import socket
import threading

import pytest

from plugins_app.discovery import health, services
from tests.discovery.conftest import topics_for
from tests.fixtures.services import wait_for


def health_after_checks(instance_id: str, expected: str) -> bool:
    services.run_due_checks(wait=True)
    return services.get_instance(instance_id).health == expected


def test_http_check_follows_the_status_code(registry, http_listener, service_events):
    url = f"http://127.0.0.1:{http_listener.server_port}/healthz"
    instance = services.register_instance(
        name="web", endpoint=url, ttl=30, check={"type": "http", "interval": 0.1, "timeout": 2}
    )
    wait_for(lambda: health_after_checks(instance.id, "healthy"), 5, "2xx makes the instance healthy")
    assert http_listener.requests >= 1
    http_listener.status = 503
    wait_for(lambda: health_after_checks(instance.id, "unhealthy"), 5, "503 makes the instance unhealthy")
    [listed] = services.list_instances(name="web")
    assert listed.health == "unhealthy" and "HTTP 503" in listed.health_message
    assert listed.last_check is not None
    assert services.discover("web") == []
    http_listener.status = 204
    wait_for(lambda: health_after_checks(instance.id, "healthy"), 5, "recovered with 204")
    wait_for(
        lambda: [t for t in topics_for(service_events, instance.id) if t[0] == "service.health_changed"]
        == [("service.health_changed", "healthy"), ("service.health_changed", "unhealthy"),
            ("service.health_changed", "healthy")],
        5, "one health_changed event per transition",
    )


def test_tcp_check_follows_the_listener(registry, tcp_listener, service_events):
    port = tcp_listener.getsockname()[1]
    instance = services.register_instance(
        name="db", endpoint=f"127.0.0.1:{port}", ttl=30, check={"type": "tcp", "interval": 0.1, "timeout": 1}
    )
    wait_for(lambda: health_after_checks(instance.id, "healthy"), 5, "connectable port is healthy")
    tcp_listener.close()
    wait_for(lambda: health_after_checks(instance.id, "unhealthy"), 5, "closed port is unhealthy")
    assert "connect" in services.get_instance(instance.id).health_message
    wait_for(lambda: ("service.health_changed", "unhealthy") in topics_for(service_events, instance.id), 5,
             "transition evented")


def test_custom_check_registered_by_a_plugin(registry):
    state = {"ok": True}
    health.register_check("test-flag", lambda instance: (state["ok"], f"flag for {instance.name}"), replace=True)
    try:
        instance = services.register_instance(
            name="queue", endpoint="q:1", ttl=30, check={"type": "custom", "name": "test-flag", "interval": 0.1}
        )
        wait_for(lambda: health_after_checks(instance.id, "healthy"), 5, "custom check passing")
        state["ok"] = False
        wait_for(lambda: health_after_checks(instance.id, "unhealthy"), 5, "custom check failing")
        assert services.get_instance(instance.id).health_message == "flag for queue"
    finally:
        health.unregister_check("test-flag")


def test_custom_check_that_raises_or_hangs_is_unhealthy(registry):
    release = threading.Event()

    def hangs(instance):
        release.wait(10)
        return True

    def raises(instance):
        raise RuntimeError("backend down")

    health.register_check("test-hangs", hangs, replace=True)
    health.register_check("test-raises", raises, replace=True)
    try:
        slow = services.register_instance(
            name="slow", endpoint="s:1", ttl=30,
            check={"type": "custom", "name": "test-hangs", "interval": 5, "timeout": 0.2},
        )
        broken = services.register_instance(
            name="broken", endpoint="b:1", ttl=30, check={"type": "custom", "name": "test-raises"}
        )
        services.run_due_checks(wait=True)
        assert "timed out" in services.get_instance(slow.id).health_message
        assert services.get_instance(slow.id).health == "unhealthy"
        assert services.get_instance(broken.id).health == "unhealthy"
        assert "RuntimeError: backend down" in services.get_instance(broken.id).health_message
    finally:
        release.set()
        health.unregister_check("test-hangs")
        health.unregister_check("test-raises")


def test_unregistered_custom_check_is_reported_not_hidden(registry):
    instance = services.register_instance(
        name="ghost", endpoint="g:1", ttl=30, check={"type": "custom", "name": "nobody-registered-this"}
    )
    services.run_due_checks(wait=True)
    stored = services.get_instance(instance.id)
    assert stored.health == "unhealthy" and "no custom check named" in stored.health_message


@pytest.mark.parametrize(
    "check, message",
    [
        ({"type": "ping"}, "type must be one of"),
        ({"type": "http", "interval": 0}, "interval must be a positive"),
        ({"type": "tcp", "timeout": "soon"}, "timeout must be a positive"),
        ({"type": "custom"}, "needs the name"),
        ({"type": "http", "url": "file:///etc/passwd"}, "http:// or https://"),
    ],
)
def test_invalid_checks_are_refused(check, message):
    with pytest.raises(ValueError, match=message):
        health.validate_check(check)


def test_http_check_against_a_port_nobody_listens_on():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    instance = services.Instance(id="x", name="x", endpoint=f"http://127.0.0.1:{port}/",
                                 check={"type": "http", "timeout": 1})
    result = health.run_check(instance)
    assert not result.ok and f"127.0.0.1:{port}" in result.message
