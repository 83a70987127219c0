"""The Celery application, configured from Django's `CELERY_*` settings (worker and beat)."""

import os
import sys

from celery import Celery

from chameleon_site.env import exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chameleon_site.settings")
exit_on_config_error()

def _is_celery_worker(argv: list[str]) -> bool:
    """True in `celery ... worker` (also `python -m celery`), not in pytest or manage.py."""
    program = os.path.basename(argv[0]) if argv else ""
    is_celery = program == "celery" or argv[0].endswith(os.path.join("celery", "__main__.py"))
    return is_celery and "worker" in argv[1:]


if _is_celery_worker(sys.argv) and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    # The prefork pool records metrics in child processes; prometheus_client's
    # multiprocess mode lets the worker's heartbeat report what all of them counted.
    # It must be chosen before prometheus_client is first imported, hence here.
    from core.metrics_dir import prepare_multiprocess_dir

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = prepare_multiprocess_dir()

app = Celery("chameleon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
