"""App configuration for the event bus (its own label, so it has its own migrations)."""

from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "plugins_app.events"
    label = "events"
    verbose_name = "Events"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from plugins_app.events.registry import register_builtin_event_types

        register_builtin_event_types()
