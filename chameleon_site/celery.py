"""The Celery application, configured from Django's `CELERY_*` settings (worker and beat)."""

import os
import sys

from celery import Celery

from chameleon_site.env import exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chameleon_site.settings")
exit_on_config_error()

if "worker" in sys.argv[1:] and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    # The prefork pool records metrics in child processes; prometheus_client's
    # multiprocess mode lets the worker's heartbeat report what all of them counted.
    # It must be chosen before prometheus_client is first imported, hence here.
    from core.metrics_dir import prepare_multiprocess_dir

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = prepare_multiprocess_dir()

app = Celery("chameleon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
