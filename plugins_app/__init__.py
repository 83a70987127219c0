"""The plugin runtime: contract, registry, lifecycle, event bus, config center, services."""
