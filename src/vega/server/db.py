"""One SQL access layer over DB-API for SQLite (default) and PostgreSQL.

SQL is written once with ``?`` placeholders and portable types; the small
dialect shim here translates placeholders for psycopg and the few type names
that differ (``{blob}``, ``{bigint}`` in migration text). Connections are per
thread. Writes on SQLite are serialised by ``BEGIN IMMEDIATE`` with a busy
timeout (one writer at a time, WAL for concurrent readers); on PostgreSQL each
transaction is a normal read-committed transaction and callers take
``lock()`` when they need one writer.

SQLite runs with ``synchronous=FULL``: a commit is on disk before it is
acknowledged, so even a power loss cannot take back a checkpoint the log
already signed and served (see docs/adr/0003).

Edge: the metadata database. Errors are translated to StorageError.
Spec: house-style.md §4.9 (one SQL implementation, migrations in both dialects).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from vega.errors import ConfigError, StorageError

__all__ = ["Database", "Migration", "Tx", "open_database"]

Dialect = Literal["sqlite", "postgres"]
Row = tuple[Any, ...]

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"blob": "BLOB", "bigint": "INTEGER", "text": "TEXT"},
    "postgres": {"blob": "BYTEA", "bigint": "BIGINT", "text": "TEXT"},
}
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema step of one component (e.g. ``("log", 1, [...])``)."""

    component: str
    """Which part of the server owns the tables."""
    version: int
    """Applied in increasing order, once."""
    statements: tuple[str, ...]
    """DDL with ``{blob}``/``{bigint}``/``{text}`` type placeholders."""


class Tx:
    """A transaction: ``execute``/``fetchone``/``fetchall`` with ``?`` placeholders."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cur = cursor
        self.dialect: Dialect = dialect
        """Which SQL dialect this transaction speaks."""

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        self._cur.execute(self._sql(sql), tuple(params))
        return int(self._cur.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""
        if rows:
            self._cur.executemany(self._sql(sql), [tuple(r) for r in rows])

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Run a query and return its first row, or None."""
        self._cur.execute(self._sql(sql), tuple(params))
        row = self._cur.fetchone()
        return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query and return all its rows."""
        self._cur.execute(self._sql(sql), tuple(params))
        return [tuple(r) for r in self._cur.fetchall()]


class Database:
    """A thread-safe handle: one connection per thread, transactions as context managers."""

    def __init__(self, dialect: Dialect, connect: Any, *, schema: str | None = None) -> None:
        self.dialect: Dialect = dialect
        """``sqlite`` or ``postgres``."""
        self._connect = connect
        self._local = threading.local()
        self._all: weakref.WeakSet[_Holder] = weakref.WeakSet()
        self._guard = threading.Lock()
        self._write_lock = threading.RLock()
        self.schema = schema
        """PostgreSQL schema (search_path) used for every connection, if any."""

    def _conn(self) -> Any:
        holder = getattr(self._local, "holder", None)
        if holder is None:
            # NOTE: the holder lives in the thread's local storage only, so when the
            # thread ends its connection is closed instead of leaking a descriptor.
            holder = _Holder(self._connect())
            self._local.holder = holder
            with self._guard:
                self._all.add(holder)
        return holder.conn

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        """A transaction that commits on success and rolls back on any exception.

        On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so the
        single writer is chosen up front rather than failing at commit.
        """
        conn = self._conn()
        try:
            if self.dialect == "sqlite":
                cur = conn.cursor()
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                tx = Tx(cur, self.dialect)
                try:
                    yield tx
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            else:
                with conn.transaction(), conn.cursor() as cur:
                    yield Tx(cur, self.dialect)
        except (sqlite3.Error, _pg_errors()) as e:
            raise StorageError(f"database error: {type(e).__name__}") from e

    @contextmanager
    def lock(self, key: int) -> Iterator[Tx]:
        """A write transaction holding an exclusive lock named by ``key``.

        SQLite's ``BEGIN IMMEDIATE`` is already exclusive among writers; on
        PostgreSQL this takes a transaction-scoped advisory lock.
        """
        with self._write_lock, self.transaction(write=True) as tx:
            if self.dialect == "postgres":
                tx.execute("SELECT pg_advisory_xact_lock(?)", (key,))
            yield tx

    def migrate(self, migrations: Sequence[Migration]) -> None:
        """Apply each migration not yet applied, each in its own transaction."""
        with self.lock(0x76656761) as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version INTEGER NOT NULL,"
                " PRIMARY KEY (component, version))"
            )
        for m in sorted(migrations, key=lambda m: (m.component, m.version)):
            with self.lock(0x76656761) as tx:
                done = tx.fetchone(
                    "SELECT 1 FROM schema_migrations WHERE component = ? AND version = ?",
                    (m.component, m.version),
                )
                if done:
                    continue
                for statement in m.statements:
                    tx.execute(statement.format(**_TYPES[self.dialect]))
                tx.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (?, ?)",
                    (m.component, m.version),
                )

    def close(self) -> None:
        """Close every connection this handle opened."""
        with self._guard:
            holders = list(self._all)
            self._all = weakref.WeakSet()
        for holder in holders:
            holder.close()
        self._local = threading.local()


class _Holder:
    """One thread's connection; closed when the thread's local storage is released."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort
            self.conn.close()

    def __del__(self) -> None:
        self.close()


def _pg_errors() -> type[Exception]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the postgres extra is not installed
        return sqlite3.Error
    return psycopg.Error


def open_database(url: str, *, schema: str | None = None) -> Database:
    """Open ``sqlite:///abs/path.db``, a bare path, or ``postgresql://...``.

    Args:
        url: where the database is.
        schema: a PostgreSQL schema to create (if missing) and use; ignored for SQLite.

    Raises:
        ConfigError: the URL is not one of the supported forms.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return _open_postgres(url, schema)
    path = url
    if url.startswith("sqlite:"):
        parts = urlsplit(url)
        path = unquote(parts.path)
        if not path:
            raise ConfigError(f"database URL has no path: {url!r}")
    elif "://" in url:
        raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")
    return _open_sqlite(Path(path))


def _open_sqlite(path: Path) -> Database:
    path.parent.mkdir(parents=True, exist_ok=True)

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    return Database("sqlite", connect)


def _open_postgres(url: str, schema: str | None) -> Database:
    try:
        import psycopg
    except ImportError as e:  # pragma: no cover - the postgres extra is not installed
        raise ConfigError(
            "PostgreSQL support is not installed", next_steps=["pip install 'vega[postgres]'"]
        ) from e
    if schema is not None and not _IDENT.fullmatch(schema):
        raise ConfigError(f"invalid PostgreSQL schema name {schema!r}")

    def connect() -> Any:
        try:
            conn = psycopg.connect(url, autocommit=True)
        except psycopg.OperationalError as e:
            raise ConfigError(
                f"cannot connect to PostgreSQL at {_redacted(url)}: {_first_line(e)}",
                next_steps=[
                    "check that PostgreSQL is running and reachable from this host",
                    "check database_url (VEGA_SERVER_DATABASE_URL or database_url_file)",
                ],
            ) from None
        if schema is not None:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(f'SET search_path TO "{schema}"')
        return conn

    return Database("postgres", connect, schema=schema)


def _redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
