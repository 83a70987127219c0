"""App configuration for the plugin runtime: connects its signal receivers."""

from django.apps import AppConfig


class PluginsAppConfig(AppConfig):
    name = "plugins_app"
    verbose_name = "Plugins"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from plugins_app import signals  # noqa: F401 - connects receivers
