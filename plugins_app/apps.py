"""App configuration for the plugin runtime: connects its signal receivers."""

from django.apps import AppConfig


class PluginsAppConfig(AppConfig):
    name = "plugins_app"
    verbose_name = "Plugins"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from plugins_app import logs, signals  # noqa: F401 - connects receivers

        logs.install()
        from plugins_app.events.registry import register_event_type

        for topic, description in (
            ("plugin.command", "An operator asked the nodes to start/stop/restart/reload a plugin, or to canary, "
                               "promote or roll back its new code."),
            ("user.login", "A user signed in."),
            ("user.welcome", "The hello plugin welcomed a user who signed in."),
            ("notification.sent", "The notification plugin sent a notification."),
        ):
            register_event_type(topic, description, owner="plugins_app", replace=True)
