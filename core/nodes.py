"""This process as a node: its name, and the heartbeat thread that keeps its row alive.

`start_node(kind)` is called once by each long-running process: the ASGI module (web),
the Celery `worker_ready` signal (worker) and `beat_init` (beat). Every beat writes the
node's latest metric families too, so /metrics on the web node can show them.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading

from django.db import close_old_connections, connection

from core.conf import chameleon_settings

logger = logging.getLogger("chameleon.nodes")

_current: NodeHeartbeat | None = None
#: The web node forgets long-gone nodes on its first beat and every this many after.
PRUNE_EVERY_BEATS = 720


def service_name() -> str:
    return chameleon_settings.SERVICE_NAME


def current_node_name() -> str:
    """The name of the node this process runs as, or '' when it is not a node (CLI, tests)."""
    return _current.node_name if _current is not None else ""


def make_node_name(kind: str) -> str:
    configured = chameleon_settings.NODE_NAME
    base = f"{configured}-{kind}" if configured else f"{kind}@{socket.gethostname()}"
    return f"{base}:{os.getpid()}"


class NodeHeartbeat(threading.Thread):
    """Writes this node's heartbeat every `CHAMELEON_HEARTBEAT_INTERVAL` seconds."""

    def __init__(self, kind: str) -> None:
        super().__init__(name=f"chameleon-heartbeat-{kind}", daemon=True)
        self.kind = kind
        self.node_name = make_node_name(kind)
        self._stopping = threading.Event()
        self.beats = 0

    def beat(self) -> None:
        from core import services
        from core.metrics import local_snapshot

        try:
            services.record_heartbeat(self.node_name, self.kind, metrics=local_snapshot())
            self.beats += 1
            if self.kind == "web" and self.beats % PRUNE_EVERY_BEATS == 1:
                services.prune_nodes()
        except Exception:  # a database hiccup must not kill the heartbeat
            logger.exception("Heartbeat of node %s failed", self.node_name)
        finally:
            close_old_connections()

    def run(self) -> None:
        # The first beat registers the node; it runs here, not in start_node(), because
        # an ASGI server may import the application inside its event loop.
        self.beat()
        while not self._stopping.wait(chameleon_settings.HEARTBEAT_INTERVAL):
            self.beat()
        connection.close()

    def shutdown(self) -> None:
        from core import services

        if self._stopping.is_set():
            return
        self._stopping.set()
        try:
            services.mark_node_stopped(self.node_name)
            logger.info("Node %s stopped", self.node_name)
        except Exception:
            logger.exception("Could not mark node %s stopped", self.node_name)
        finally:
            connection.close()


def identify_node(kind: str) -> NodeHeartbeat:
    """Name this process as a node of `kind` without starting to heartbeat.

    A Celery worker calls this before it forks its pool, so that task code in the child
    processes knows the node it runs on.
    """
    global _current
    if _current is None:
        _current = NodeHeartbeat(kind)
    return _current


def start_node(kind: str) -> NodeHeartbeat:
    """Register this process as a node of `kind` and start heartbeating (idempotent)."""
    heartbeat = identify_node(kind)
    if heartbeat.ident is None:
        heartbeat.start()
        atexit.register(heartbeat.shutdown)
        logger.info("Node %s joined", heartbeat.node_name)
    return heartbeat


def stop_node() -> None:
    if _current is not None:
        _current.shutdown()
