"""Foundation Celery tasks."""

import os
import socket

from celery import shared_task

from core.nodes import current_node_name


@shared_task(name="core.ping")
def ping(payload: str = "") -> dict:
    """Answer with where it ran: proves a message sent by the web reached a worker."""
    return {"payload": payload, "node": current_node_name(), "hostname": socket.gethostname(), "pid": os.getpid()}
