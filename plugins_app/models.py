"""Plugin runtime models (added by the plugin runtime issue)."""
