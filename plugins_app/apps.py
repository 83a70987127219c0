"""App configuration for the plugin runtime."""

from django.apps import AppConfig


class PluginsAppConfig(AppConfig):
    name = "plugins_app"
    verbose_name = "Plugins"
    default_auto_field = "django.db.models.BigAutoField"
