"""Cross-cutting foundation: audit log, nodes and heartbeats, health, metrics, logging, API base."""
