"""The built-in `etcd` and `grpc` plugins, run by a real plugin manager."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from plugins_app.contract import Plugin
from plugins_app.discovery import services
from plugins_app.discovery.plugins.etcd import EtcdPlugin
from plugins_app.discovery.plugins.grpc import GrpcPlugin
from plugins_app.discovery.registry import DatabaseRegistry, EtcdRegistry
from plugins_app.host import PluginManager


class EchoPlugin(Plugin):
    """Another plugin adding a servicer to the grpc plugin's server."""

    name = "echo"
    version = "1.0.0"
    dependencies = ("grpc>=1,<2",)
    permissions = ("services:get",)

    def start(self, ctx: Any) -> None:
        def say(request: bytes, context: Any) -> bytes:
            return b"echo:" + request

        handler = grpc.method_handlers_generic_handler("demo.Echo", {
            "Say": grpc.unary_unary_rpc_method_handler(say),
        })
        self.server = ctx.get_service("grpc")
        self.server.add_servicer(lambda servicer, server: server.add_generic_rpc_handlers((servicer,)),
                                 handler, "demo.Echo")

    def stop(self, ctx: Any) -> None:
        self.server.remove_servicer("demo.Echo")


def manager_with(tmp_path, configs: dict[str, dict[str, Any]], *classes: type[Plugin]) -> PluginManager:
    manager = PluginManager(node="test-node", persist=False, publish_events=False, data_root=tmp_path,
                            configs=configs)
    for cls in classes:
        manager.register(cls)
    return manager


def listed_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    [response] = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    return {service.name for service in response.list_services_response.service}


def test_grpc_plugin_serves_health_reflection_and_added_servicers(tmp_path):
    manager = manager_with(tmp_path, {}, GrpcPlugin, EchoPlugin)
    assert manager.start("grpc")
    plugin = manager.entries["grpc"].instance
    address = plugin.address()
    assert address.startswith("127.0.0.1:") and not address.endswith(":0")
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING
        assert listed_services(channel) == {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}

        assert manager.start("echo")
        say = channel.unary_unary("/demo.Echo/Say")
        assert say(b"hi", timeout=5) == b"echo:hi"
        assert health.Check(health_pb2.HealthCheckRequest(service="demo.Echo"), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING
        assert "demo.Echo" in listed_services(channel)
        assert manager.entries["grpc"].instance.health().details["services"] == sorted(listed_services(channel))

        manager.stop("echo")
        assert health.Check(health_pb2.HealthCheckRequest(service="demo.Echo"), timeout=5).status == \
            health_pb2.HealthCheckResponse.NOT_SERVING
        assert "demo.Echo" not in listed_services(channel)
    manager.stop_all()
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)


def test_grpc_plugin_refuses_a_bad_port(tmp_path):
    manager = manager_with(tmp_path, {"grpc": {"port": 70000}}, GrpcPlugin)
    assert manager.start("grpc") is False
    assert manager.entries["grpc"].state == "failed"


def test_etcd_plugin_is_idle_without_endpoints(tmp_path, settings):
    settings.CHAMELEON = {**settings.CHAMELEON, "ETCD_ENDPOINTS": []}
    manager = manager_with(tmp_path, {}, EtcdPlugin)
    assert manager.start("etcd")
    status = manager.entries["etcd"].instance.health()
    assert status.healthy and "not configured" in status.message
    manager.stop_all()


def test_etcd_plugin_gives_a_client_and_moves_the_registry_to_etcd(tmp_path, etcd_endpoints, transactional_db):
    prefix = f"/chameleon-test/{uuid.uuid4().hex}"
    previous = services.set_registry(DatabaseRegistry())
    manager = manager_with(tmp_path, {"etcd": {"endpoints": etcd_endpoints, "prefix": prefix, "registry": True}},
                           EtcdPlugin)
    try:
        assert manager.start("etcd")
        plugin = manager.entries["etcd"].instance
        assert plugin.health().healthy and plugin.health().message.startswith("etcd ")
        assert isinstance(services.get_registry(), EtcdRegistry)
        services.register_instance(id="via-plugin", name="plugged", endpoint="10.0.0.1:80", ttl=30)
        assert plugin.get(f"{prefix}/ids/via-plugin") == "plugged"
        assert manager.services.get("etcd") is plugin.client
        manager.stop("etcd")
        assert isinstance(services.get_registry(), DatabaseRegistry)
    finally:
        manager.stop_all()
        cleanup = EtcdRegistry(etcd_endpoints, prefix=prefix)
        cleanup.client.delete_prefix(prefix + "/")
        cleanup.close()
        services.set_registry(previous)
