"""Shared, import-stable record of what reloaded plugin versions did (test helper)."""

EVENTS: list[str] = []
