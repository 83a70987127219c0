"""Management commands of the plugin runtime."""
