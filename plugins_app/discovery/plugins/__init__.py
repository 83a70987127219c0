"""Built-in plugins of service management: `etcd` (client, registry and config back end) and `grpc`."""
