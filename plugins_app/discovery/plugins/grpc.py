"""Built-in `grpc` plugin: a gRPC server with the standard health service and reflection.

Other plugins add servicers through the `grpc` service: `ctx.get_service("grpc")
.add_servicer(add_FooServicer_to_server, FooServicer(), "pkg.Foo")` -- the service is
served at once, reported SERVING by the health service and listed by reflection; stopping
the plugin that added it should call `remove_servicer("pkg.Foo")` (reported NOT_SERVING).
The port defaults to 0 (a free one, since web and worker nodes both host plugins); the
bound address is in `health()` details and `address()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from plugins_app.contract import HealthStatus, Plugin


class GrpcPlugin(Plugin):
    """Runs the server while the plugin runs; `address()` and `services()` are callable."""

    name = "grpc"
    version = "1.0.0"
    description = "gRPC server with the standard health service and reflection; plugins add servicers."
    permissions = ("services:register",)
    config_schema = {
        "type": "object",
        "properties": {
            "host": {"type": "string", "minLength": 1, "default": "127.0.0.1"},
            "port": {"type": "integer", "minimum": 0, "maximum": 65535, "default": 0},
            "max_workers": {"type": "integer", "minimum": 1, "maximum": 256, "default": 8},
            "reflection": {"type": "boolean", "default": True},
        },
        "additionalProperties": False,
    }

    def initialize(self, ctx: Any, config: dict[str, Any]) -> None:
        self.config = config
        self.server = None
        self.port = 0
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def start(self, ctx: Any) -> None:
        import grpc
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        from grpc_reflection.v1alpha import reflection

        self._health_pb2 = health_pb2
        self.server = grpc.server(ThreadPoolExecutor(max_workers=self.config["max_workers"],
                                                     thread_name_prefix="chameleon-grpc"))
        self.health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, self.server)
        self._names = {health.SERVICE_NAME}
        self._reflection_servicer = None
        if self.config["reflection"]:
            from grpc_reflection.v1alpha import reflection_pb2_grpc

            self._names.add(reflection.SERVICE_NAME)
            self._reflection_servicer = reflection.ReflectionServicer(self._names)
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server(self._reflection_servicer, self.server)
        self.port = self.server.add_insecure_port(f"{self.config['host']}:{self.config['port']}")
        if not self.port:
            raise RuntimeError(f"Cannot bind {self.config['host']}:{self.config['port']}")
        self.server.start()
        self.health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        ctx.register_service("grpc", self)

    def stop(self, ctx: Any) -> None:
        if self.server is not None:
            self.health_servicer.enter_graceful_shutdown()
            self.server.stop(grace=2).wait(5)
            self.server = None

    def add_servicer(self, add_to_server: Callable[[Any, Any], None], servicer: Any, service_name: str) -> None:
        """Serve `servicer` (with the generated `add_XServicer_to_server`) as `service_name` now."""
        if self.server is None:
            raise RuntimeError("the grpc plugin is not running")
        with self._lock:
            add_to_server(servicer, self.server)
            self._names.add(service_name)
            self._refresh_reflection()
        self.health_servicer.set(service_name, self._health_pb2.HealthCheckResponse.SERVING)

    def remove_servicer(self, service_name: str) -> None:
        """Report `service_name` NOT_SERVING (grpcio cannot unregister handlers from a running server)."""
        with self._lock:
            self._names.discard(service_name)
            self._refresh_reflection()
        self.health_servicer.set(service_name, self._health_pb2.HealthCheckResponse.NOT_SERVING)

    def _refresh_reflection(self) -> None:
        # grpcio-reflection takes its service list once, at construction, and a second
        # reflection servicer cannot be added to a running server (the first handler wins),
        # so the running servicer's list is updated in place.
        if self._reflection_servicer is not None:
            self._reflection_servicer._service_names = tuple(sorted(self._names))

    def address(self) -> str:
        return f"{self.config['host']}:{self.port}" if self.server is not None else ""

    def services(self) -> list[str]:
        return sorted(self._names)

    def health(self) -> HealthStatus:
        if self.server is None:
            return HealthStatus(False, "server not running")
        return HealthStatus(True, f"serving on {self.address()}", {"address": self.address(),
                                                                     "services": self.services()})


plugin = GrpcPlugin
