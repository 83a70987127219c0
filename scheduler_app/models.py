"""Scheduler models (added by the scheduler issue)."""
