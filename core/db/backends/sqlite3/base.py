"""SQLite with idle connections kept for the next request of a web process (see core.db)."""

from __future__ import annotations

import os
import threading
from typing import Any, ClassVar

from django_prometheus.db.backends.sqlite3 import base

from core.db import reusing_connections

#: Idle connections kept per database file; more concurrent requests than this open
#: (and then close) connections of their own.
MAX_IDLE = 16


class DatabaseWrapper(base.DatabaseWrapper):
    """Closing hands the raw connection to the next `connect()` of this process instead.

    A connection is kept only when it is outside any transaction (rolled back if one is
    open) and goes to one request at a time; on reuse it gets what Django sets on every
    connect (autocommit) and foreign-key checks back on. Nothing is kept across fork:
    a child process starts with no idle connections.
    """

    _idle: ClassVar[dict[str, list[Any]]] = {}
    _idle_pid: ClassVar[int] = os.getpid()
    _idle_lock: ClassVar[threading.Lock] = threading.Lock()

    def _idle_list(self) -> list[Any]:
        cls = type(self)
        if cls._idle_pid != os.getpid():  # forked: the parent's connections are not ours
            cls._idle, cls._idle_pid = {}, os.getpid()
        return cls._idle.setdefault(str(self.settings_dict["NAME"]), [])

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if reusing_connections() and not self.is_in_memory_db():
            with self._idle_lock:
                idle = self._idle_list()
                conn = idle.pop() if idle else None
            if conn is not None:
                # The one setting a connection's user may have changed (loaddata, migrate).
                conn.execute("PRAGMA foreign_keys = ON")
                return conn
        return super().get_new_connection(conn_params)

    def _close(self) -> None:
        conn = self.connection
        if conn is not None and reusing_connections() and not self.in_atomic_block and self._keep(conn):
            return
        super()._close()

    def _keep(self, conn: Any) -> bool:
        try:
            if conn.in_transaction:
                conn.rollback()
        except Exception:
            return False
        with self._idle_lock:
            idle = self._idle_list()
            if len(idle) >= MAX_IDLE:
                return False
            idle.append(conn)
        return True
