"""The SQL access layer behaves the same on every backend."""

from __future__ import annotations

import threading

import pytest

from vega.errors import ConfigError, StorageError
from vega.server.db import Database, Migration, open_database

M1 = Migration("t", 1, ("CREATE TABLE kv (k {text} PRIMARY KEY, v {blob} NOT NULL, n {bigint})",))
M2 = Migration("t", 2, ("ALTER TABLE kv ADD COLUMN extra {text}",))


def test_migrations_apply_once_in_order(database: Database) -> None:
    database.migrate([M2, M1])
    database.migrate([M1, M2])
    with database.transaction() as tx:
        tx.execute("INSERT INTO kv (k, v, n, extra) VALUES (?, ?, ?, ?)", ("a", b"\x00\xff", 2**40, "x"))
        assert tx.fetchone("SELECT v, n, extra FROM kv WHERE k = ?", ("a",)) == (b"\x00\xff", 2**40, "x")
        rows = tx.fetchall(
            "SELECT version FROM schema_migrations WHERE component = ? ORDER BY version", ("t",)
        )
    assert rows == [(1,), (2,)]


def test_exception_rolls_back(database: Database) -> None:
    database.migrate([M1])

    def failing_write() -> None:
        with database.transaction() as tx:
            tx.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", b"1"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_write()
    with database.transaction(write=False) as tx:
        assert tx.fetchone("SELECT count(*) FROM kv") == (0,)


def test_database_errors_become_storage_errors(database: Database) -> None:
    database.migrate([M1])
    with database.transaction() as tx:
        tx.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", b"1"))
    with pytest.raises(StorageError, match="database error"), database.transaction() as tx:
        tx.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", b"2"))


def test_concurrent_locked_increments_are_serialised(database: Database) -> None:
    database.migrate([M1])
    with database.transaction() as tx:
        tx.execute("INSERT INTO kv (k, v, n) VALUES (?, ?, ?)", ("c", b"", 0))

    def bump() -> None:
        for _ in range(20):
            with database.lock(7) as tx:
                (n,) = tx.fetchone("SELECT n FROM kv WHERE k = ?", ("c",)) or (0,)
                tx.executemany("UPDATE kv SET n = ? WHERE k = ?", [(n + 1, "c")])

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with database.transaction(write=False) as tx:
        assert tx.fetchone("SELECT n FROM kv WHERE k = ?", ("c",)) == (80,)


def test_unsupported_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unsupported database URL"):
        open_database("mysql://x/y")
    with pytest.raises(ConfigError, match="no path"):
        open_database("sqlite:")


def test_connections_of_finished_threads_are_closed(database: Database) -> None:
    """A thread per request (TestClient without ``with``) must not leak connections."""
    database.migrate([M1])

    def read() -> None:
        with database.transaction(write=False) as tx:
            tx.fetchone("SELECT count(*) FROM kv")

    for _ in range(50):
        t = threading.Thread(target=read)
        t.start()
        t.join()
    import gc

    gc.collect()
    assert len(database._all) <= 2
