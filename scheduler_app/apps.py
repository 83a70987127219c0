"""App configuration for the scheduler: registers the built-in task handlers."""

from django.apps import AppConfig


class SchedulerAppConfig(AppConfig):
    name = "scheduler_app"
    verbose_name = "Scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from scheduler_app import handlers, tasks  # noqa: F401 - registers the Celery tasks

        handlers.register_builtin_handlers()
