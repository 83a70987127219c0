"""App configuration for the scheduler: registers the built-in and configured task handlers."""

import importlib

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class SchedulerAppConfig(AppConfig):
    name = "scheduler_app"
    verbose_name = "Scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.conf import chameleon_settings
        from scheduler_app import handlers, tasks  # noqa: F401 - registers the Celery tasks

        handlers.register_builtin_handlers()
        # Modules that register handlers when imported (CHAMELEON_SCHEDULER_HANDLER_MODULES).
        for module in chameleon_settings.SCHEDULER_HANDLER_MODULES:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"CHAMELEON_SCHEDULER_HANDLER_MODULES: cannot import {module!r} ({exc})") from None
