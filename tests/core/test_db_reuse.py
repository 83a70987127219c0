"""Database connections kept between requests in web processes (core/db): SQLite's idle list and
Django's PostgreSQL pool, both used only after `reuse_connections()`."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from django.db import connection, connections

import core.db
from core.db.backends.sqlite3 import base as sqlite_base

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reuse(monkeypatch) -> Iterator[None]:
    monkeypatch.setattr(core.db, "_reuse", True)
    yield
    if connection.vendor == "sqlite":
        with sqlite_base.DatabaseWrapper._idle_lock:
            for idle in sqlite_base.DatabaseWrapper._idle.values():
                while idle:
                    idle.pop().close()


def wrapper():
    """A connection object of its own, as another request's thread would have."""
    return connections.create_connection("default")


def raw(db) -> object:
    db.ensure_connection()
    return db.connection


def in_thread(function):
    result: list = []
    thread = threading.Thread(target=lambda: result.append(function()))
    thread.start()
    thread.join()
    return result[0]


sqlite_only = pytest.mark.skipif("connection.vendor != 'sqlite'")
postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'")


@sqlite_only
def test_without_reuse_a_closed_sqlite_connection_is_closed():
    first = wrapper()
    kept = raw(first)
    first.close()
    assert raw(wrapper()) is not kept


@sqlite_only
def test_the_next_request_gets_the_connection_the_last_one_closed(reuse):
    first = wrapper()
    kept = raw(first)
    first.close()
    # Another request, in another thread, gets it back: no connect, no schema parse.
    assert in_thread(lambda: raw(wrapper())) is kept


@sqlite_only
def test_a_reused_connection_is_in_autocommit_with_foreign_keys_on(reuse):
    first = wrapper()
    with first.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys = OFF")
    first.close()
    second = wrapper()
    with second.cursor() as cursor:
        assert cursor.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert second.get_autocommit()
    second.close()


@sqlite_only
def test_an_uncommitted_transaction_is_rolled_back_not_handed_on(reuse):
    first = wrapper()
    first.set_autocommit(False)
    with first.cursor() as cursor:
        cursor.execute("INSERT INTO auth_group (name) VALUES ('half-done')")
    kept = first.connection
    first.close()
    second = wrapper()
    assert raw(second) is kept and not kept.in_transaction
    with second.cursor() as cursor:
        assert cursor.execute("SELECT count(*) FROM auth_group WHERE name = 'half-done'").fetchone()[0] == 0
    second.close()


@sqlite_only
def test_a_connection_closed_inside_an_atomic_block_is_not_handed_on(reuse):
    first = wrapper()
    kept = raw(first)
    first.in_atomic_block = True  # closed in the middle of `atomic()`
    first.close()
    first.in_atomic_block = False
    assert raw(wrapper()) is not kept


@sqlite_only
def test_a_forked_child_does_not_use_its_parents_connections(reuse, monkeypatch):
    first = wrapper()
    kept = raw(first)
    first.close()
    monkeypatch.setattr(sqlite_base.DatabaseWrapper, "_idle_pid", os.getpid() + 1)  # as after fork
    assert raw(wrapper()) is not kept
    kept.close()  # the parent's, which this test owns


@sqlite_only
def test_no_more_than_max_idle_connections_are_kept(reuse, monkeypatch):
    monkeypatch.setattr(sqlite_base, "MAX_IDLE", 2)
    opened = [wrapper() for _ in range(3)]
    raws = [raw(db) for db in opened]
    for db in opened:
        db.close()
    idle = sqlite_base.DatabaseWrapper._idle[str(connection.settings_dict["NAME"])]
    assert [id(conn) for conn in idle] == [id(conn) for conn in raws[:2]]


@postgres_only
def test_postgres_connections_come_from_djangos_pool_only_in_web_processes(monkeypatch):
    pytest.importorskip("psycopg_pool")
    assert connection.settings_dict["OPTIONS"].get("pool"), "settings configure the pool"
    assert wrapper().pool is None  # not a web process: Celery workers fork, no pool there

    before = wrapper()
    raw(before)  # opened before this process turned reuse on
    monkeypatch.setattr(core.db, "_reuse", True)
    before.close()  # closed for real, not handed to a pool it never came from
    first, second = wrapper(), wrapper()
    try:
        kept = raw(first)
        assert first.pool is not None and kept._pool is first.pool
        first.close()
        assert not kept.closed  # back in the pool for the next request
        assert raw(second)._pool is first.pool
    finally:
        second.close()
        first.close_pool()
