"""PostgreSQL with Django's connection pool in web processes only (see core.db).

`OPTIONS["pool"]` in the settings configures the pool; it is used only once the process
called `core.db.reuse_connections()`. A Celery prefork worker must not inherit a pool
(its connections and threads belong to the parent), so everywhere else connections are
opened and closed as without a pool.
"""

from __future__ import annotations

from typing import Any

from django_prometheus.db.backends.postgresql import base

from core.db import reusing_connections


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> Any:
        return super().pool if reusing_connections() else None

    def _close(self) -> None:
        # A connection opened before the process turned reuse on is not the pool's.
        if self.connection is not None and getattr(self.connection, "_pool", None) is None:
            with self.wrap_database_errors:
                self.connection.close()
            return
        super()._close()
