"""App configuration for service discovery (its own label, so it has its own migrations)."""

from django.apps import AppConfig


class DiscoveryConfig(AppConfig):
    name = "plugins_app.discovery"
    label = "discovery"
    verbose_name = "Services"
    default_auto_field = "django.db.models.BigAutoField"
