"""Database connections kept between requests in web processes (core.db.backends).

Under ASGI Django runs each request in a thread of its own, so its thread-local connection
is opened and closed for every request (CONN_MAX_AGE cannot keep it: the thread is gone).
That costs a new PostgreSQL session, or for SQLite the schema parse and the WAL files
re-created and checkpointed on every request (~4 ms here). The web process calls
`reuse_connections()` once at start-up (chameleon_site/asgi.py) and its backends then hand
closed connections to the next request: Django's own pool for PostgreSQL
(`OPTIONS["pool"]`, psycopg_pool), a small idle list for SQLite. Other processes (Celery
workers, which fork; beat; the CLI; tests) keep Django's connection per use.
"""

from __future__ import annotations

_reuse = False


def reuse_connections() -> None:
    """Let this process's database backends keep connections between requests."""
    global _reuse
    _reuse = True


def reusing_connections() -> bool:
    return _reuse
