"""App configuration for service discovery (its own label, so it has its own migrations)."""

from django.apps import AppConfig


class DiscoveryConfig(AppConfig):
    name = "plugins_app.discovery"
    label = "discovery"
    verbose_name = "Services"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from plugins_app import events
        from plugins_app.discovery import services

        # Another node's register / deregister / health change drops our cached instances.
        events.subscribe("service.#", services.invalidate_on_event)
