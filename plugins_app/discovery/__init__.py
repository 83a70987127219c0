"""Service registry, health checks, discovery and load balancing (SPEC §6)."""
