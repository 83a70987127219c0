"""How a published event travels: local mailboxes, after-commit, storage, transport, receivers.

`publish_event()` is the body of `plugins_app.events.publish()`. Cluster events are
stored (the dashboard's and the API's history), then sent by the `Outbound` sender to the
configured transport; `Inbound` receivers bring other processes' events into this
process's bus. Receivers start in node processes (web, worker) when something subscribes,
or explicitly with `start_inbound()`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from core.nodes import current_node_name
from plugins_app.events import SCOPES, check_topic, get_bus
from plugins_app.events import envelope as envelope_module
from plugins_app.events.bus import Subscription
from plugins_app.events.envelope import Event, InvalidEvent

logger = logging.getLogger("chameleon.events")

_lock = threading.Lock()
_outbound: Any = None
_inbound: Any = None


_thread_state = threading.local()


def _in_transaction() -> bool:
    """True inside an atomic block the code opened (not the one a test case wraps around it)."""
    # Django keeps one connection object per thread; looking it up costs more than the
    # rest of publish(), so each thread remembers its own.
    connection = getattr(_thread_state, "connection", None)
    if connection is None:
        try:
            connection = _thread_state.connection = connections[DEFAULT_DB_ALIAS]
        except Exception:  # noqa: BLE001 - no database configured
            return False
    if not connection.in_atomic_block:
        return False
    return not all(getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def publish_event(
    topic: str, data: dict[str, Any] | None, *, source: str, scope: str, after_commit: bool | None
) -> Event:
    check_topic(topic)
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise InvalidEvent("Event data must be a JSON object (a dict).")
    if scope not in SCOPES:
        raise InvalidEvent(f"Unknown event scope {scope!r}; use one of {', '.join(SCOPES)}.")
    event = Event(topic, data, source, node=current_node_name(), scope=scope)
    if after_commit is not False and _in_transaction():
        transaction.on_commit(lambda: emit(event))
    else:
        emit(event)
    return event


def emit(event: Event) -> None:
    """Deliver to this process's subscribers and, for cluster events, store and send."""
    bus = get_bus()
    bus.published += 1
    if not bus._started:
        bus._ensure_started()  # its watchdog reports the published count
    if event.scope == "local":
        bus.dispatch(event)
        return
    # With receivers running, group subscriptions get their share through the transport
    # (once per cluster) rather than here.
    bus.dispatch(event, groups=_inbound is None)
    outbound().submit(event)


_transport_override: Any = None


def _make_transport() -> Any:
    if _transport_override is not None:
        return _transport_override()
    from plugins_app.events.transports import make_transport

    return make_transport()


def use_transport(factory: Any) -> None:
    """Make this process's bus use `factory()` as its transport (None: back to the settings).

    The built-in `kafka` plugin uses this to carry events while it runs.
    """
    global _transport_override
    inbound_was_running = _inbound is not None
    reset()
    _transport_override = factory
    if inbound_was_running:
        start_inbound()


def outbound():
    global _outbound
    if _outbound is None or _outbound.pid_changed():
        with _lock:
            if _outbound is None or _outbound.pid_changed():
                from plugins_app.events.transports.outbound import Outbound

                _outbound = Outbound(_make_transport())
    return _outbound


def inbound():
    return _inbound


def start_inbound() -> Any:
    """Start receiving other processes' events into this process's bus (idempotent)."""
    global _inbound
    with _lock:
        if _inbound is None or _inbound.pid_changed():
            from plugins_app.events.transports.inbound import Inbound

            _inbound = Inbound(_make_transport(), get_bus())
            _inbound.start()
            _start_retention()
        for group in get_bus().groups():
            _inbound.ensure_group(group)
        receiver = _inbound
    # A receiving node sweeps the outbox too (orphaned events of dead publishers), whether
    # or not it publishes anything itself.
    try:
        outbound().start()
    except Exception:  # noqa: BLE001 - receiving must not depend on it
        logger.warning("Could not start the event sender (outbox sweeper)", exc_info=True)
    return receiver


RETENTION_INTERVAL_SECONDS = 3600.0
_retention_pid: int | None = None


def _start_retention() -> None:
    """On web nodes, remove events older than EVENT_RETENTION_DAYS every hour (in batches)."""
    import os

    from core import nodes

    global _retention_pid
    current = nodes._current
    if current is None or current.kind != "web" or _retention_pid == os.getpid():
        return
    _retention_pid = os.getpid()

    def run() -> None:
        from django.db import close_old_connections

        from plugins_app.events.services import purge_expired_events

        while True:
            try:
                purge_expired_events()
                close_old_connections()
            except Exception:  # noqa: BLE001 - try again next hour
                logger.exception("Event retention cleanup failed")
            time.sleep(RETENTION_INTERVAL_SECONDS)

    threading.Thread(target=run, name="chameleon-events-retention", daemon=True).start()


def stop_inbound() -> None:
    global _inbound
    with _lock:
        if _inbound is not None:
            _inbound.stop()
            _inbound = None


def subscribed(subscription: Subscription) -> None:
    """A new subscription: in a node process, make sure other nodes' events reach it."""
    from core.nodes import current_node_name

    if _inbound is not None and not _inbound.pid_changed():
        if subscription.group:
            _inbound.ensure_group(subscription.group)
    elif current_node_name():
        start_inbound()


def flush(timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    sent = _outbound is None or _outbound.flush(timeout)
    return get_bus().flush(max(0.0, deadline - time.monotonic())) and sent


def process_origin() -> str:
    """This process's token (changes in a forked child): its own events are not received back."""
    return envelope_module._prefix


def running_in_event_loop() -> bool:
    return asyncio._get_running_loop() is not None


def reset() -> None:
    """Forget the transport objects so the next use reads the settings again (tests)."""
    global _outbound
    stop_inbound()
    with _lock:
        if _outbound is not None and _outbound.transport is not None:
            _outbound.close()
        _outbound = None
