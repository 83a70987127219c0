"""Signal receivers: a Celery worker hosts plugins (as the web process does from asgi.py); logins become events."""

from __future__ import annotations

from typing import Any

from celery import signals as celery_signals
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


@celery_signals.worker_ready.connect
def worker_hosts_plugins(**kwargs: Any) -> None:
    from plugins_app.node import start_plugin_host

    start_plugin_host("worker")


@celery_signals.worker_process_init.connect
def pool_child_hosts_privately(**kwargs: Any) -> None:
    from plugins_app.node import want_private_host

    want_private_host()


@celery_signals.worker_shutdown.connect
def worker_stops_plugins(**kwargs: Any) -> None:
    from plugins_app.node import stop_plugin_host

    stop_plugin_host()


@receiver(user_logged_in)
def publish_user_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from plugins_app import events

    events.publish("user.login", {"user": user.get_username()}, source=f"api:{user.get_username()}")
