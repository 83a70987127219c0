"""The scheduler: task definitions, run history, Celery execution on beat and workers."""
