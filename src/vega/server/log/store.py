"""The transparency log's tables and the SQL that reads and writes them.

Four tables (migrations of component ``log``), written only by
:class:`vega.server.log.log.TransparencyLog` inside one transaction per batch:

``log_leaves``        ``idx`` → the exact leaf bytes, their leaf hash, and a unique dedupe key
``log_nodes``         node ``(level, idx)`` → hash of the complete subtree over leaves
                      ``[idx << level, (idx + 1) << level)`` (level 0 = leaf hashes), keyed
                      by its in-order position ``((2 * idx + 1) << level) - 1`` (leaf ``j``
                      is ``2j``, a parent sits between its children), so any root or proof
                      reads O(log n) rows by primary key, and the lower nodes of one proof
                      share a few database pages
``log_checkpoints``   every issued tree head: size, root, time (ms), C2SP note, STH JSON
``log_store_index``   store-path hash → leaf index, so the entries of a build are one lookup
``log_event_index``   store-path hash → leaf index of its promotions and revocations only
                      (migration 2, ADR 0012): a build's verdict-deciding entries are found
                      by one primary-key range read, however many attestations share its hash

Invariant: every row of ``log_checkpoints`` has ``size`` ≤ the number of stored
leaves and ``root`` = MTH of the first ``size`` stored leaves (the append that
issues it writes the leaves, nodes and checkpoint in one transaction).

Edge: the metadata database (through :mod:`vega.server.db`).
Spec: protocol.md §2.7, §5; house-style.md §4.9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vega.core.merkle import NodeId
from vega.errors import StorageError
from vega.server.db import Migration, Tx

__all__ = [
    "MAX_LEAVES",
    "MIGRATIONS",
    "StoredCheckpoint",
    "checkpoint_at",
    "event_indexes",
    "find_dedupe_keys",
    "indexed_leaves",
    "insert_checkpoint",
    "insert_event_index",
    "insert_index",
    "insert_leaves",
    "insert_nodes",
    "latest_checkpoint",
    "lookup_indexes",
    "read_leaves",
    "read_level",
    "read_nodes",
    "stored_size",
    "take_event_backfill",
]

MIGRATIONS = (
    Migration(
        "log",
        1,
        (
            "CREATE TABLE log_leaves ("
            " idx {bigint} PRIMARY KEY,"
            " data {blob} NOT NULL,"
            " leaf_hash {blob} NOT NULL,"
            " dedupe_key {text} NOT NULL UNIQUE)",
            "CREATE TABLE log_nodes (node {bigint} PRIMARY KEY, hash {blob} NOT NULL)",
            "CREATE TABLE log_checkpoints ("
            " size {bigint} PRIMARY KEY,"
            " root {blob} NOT NULL,"
            " timestamp_ms {bigint} NOT NULL,"
            " note {text} NOT NULL,"
            " sth {text} NOT NULL)",
            "CREATE TABLE log_store_index ("
            " store_hash {text} NOT NULL,"
            " idx {bigint} NOT NULL,"
            " PRIMARY KEY (store_hash, idx))",
        ),
    ),
    Migration(
        "log",
        2,
        (
            "CREATE TABLE log_event_index ("
            " store_hash {text} NOT NULL,"
            " idx {bigint} NOT NULL,"
            " PRIMARY KEY (store_hash, idx))",
            # The leaves logged before this migration are indexed once, at the next open.
            "CREATE TABLE log_event_backfill (pending INTEGER NOT NULL)",
            "INSERT INTO log_event_backfill (pending) VALUES (1)",
        ),
    ),
)
"""The log's schema, for :meth:`vega.server.db.Database.migrate`."""

MAX_LEAVES = 1 << 48
"""The log holds fewer leaves than this (node keys stay far below 2**63)."""

# Bound on the number of ``?`` per statement (SQLite's default limit is 32766;
# PostgreSQL's 65535); small enough for both.
_CHUNK = 400


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCheckpoint:
    """One issued tree head, as stored."""

    size: int
    """Number of leaves it covers."""
    root: bytes
    """MTH of those leaves (32 bytes)."""
    timestamp_ms: int
    """When it was issued (epoch milliseconds), also the STH's ``timestamp``."""
    note: str
    """The C2SP signed checkpoint note, exactly as served."""
    sth: str
    """The original STH JSON object (protocol.md §5.1), exactly as served."""


def read_nodes(tx: Tx, ids: Sequence[NodeId]) -> list[bytes]:
    """Return the stored hashes of ``ids``, in order, in as few queries as possible.

    Raises:
        StorageError: a node is not stored (the tree and its readers disagree).
    """
    keys = [((2 * index + 1) << level) - 1 for level, index in ids]
    got = _fetch_nodes(tx, keys)
    try:
        return [got[k] for k in keys]
    except KeyError:
        missing = next(node for node, k in zip(ids, keys, strict=True) if k not in got)
        raise StorageError(f"transparency log: tree node {missing} is not stored") from None


def _fetch_nodes(tx: Tx, keys: Sequence[int]) -> dict[int, bytes]:
    want = list(dict.fromkeys(keys))
    got: dict[int, bytes] = {}
    for start in range(0, len(want), _CHUNK):
        part = want[start : start + _CHUNK]
        marks = ", ".join("?" * len(part))
        sql = f"SELECT node, hash FROM log_nodes WHERE node IN ({marks})"  # noqa: S608 - placeholders only
        got.update((int(key), bytes(h)) for key, h in tx.fetchall(sql, part))
    return got


def stored_size(tx: Tx) -> int:
    """Return the number of stored leaves."""
    row = tx.fetchone("SELECT MAX(idx) FROM log_leaves")
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def find_dedupe_keys(tx: Tx, keys: Sequence[str]) -> dict[str, int]:
    """Return the index of each key in ``keys`` that is already stored."""
    found: dict[str, int] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), _CHUNK):
        part = unique[start : start + _CHUNK]
        marks = ", ".join("?" * len(part))
        sql = f"SELECT dedupe_key, idx FROM log_leaves WHERE dedupe_key IN ({marks})"  # noqa: S608 - placeholders only
        for key, idx in tx.fetchall(sql, part):
            found[str(key)] = int(idx)
    return found


def insert_leaves(tx: Tx, rows: Sequence[tuple[int, bytes, bytes, str]]) -> None:
    """Insert ``(index, data, leaf hash, dedupe key)`` rows."""
    tx.executemany("INSERT INTO log_leaves (idx, data, leaf_hash, dedupe_key) VALUES (?, ?, ?, ?)", rows)


def insert_nodes(tx: Tx, rows: Sequence[tuple[NodeId, bytes]]) -> None:
    """Insert ``((level, index), hash)`` rows."""
    tx.executemany(
        "INSERT INTO log_nodes (node, hash) VALUES (?, ?)",
        [(((2 * index + 1) << level) - 1, h) for (level, index), h in rows],
    )


def insert_index(tx: Tx, rows: Sequence[tuple[str, int]]) -> None:
    """Insert ``(store-path hash, leaf index)`` rows."""
    tx.executemany("INSERT INTO log_store_index (store_hash, idx) VALUES (?, ?)", rows)


def insert_event_index(tx: Tx, rows: Sequence[tuple[str, int]]) -> None:
    """Insert ``(store-path hash, leaf index)`` rows of promotions and revocations."""
    tx.executemany("INSERT INTO log_event_index (store_hash, idx) VALUES (?, ?)", rows)


def take_event_backfill(tx: Tx) -> bool:
    """Claim the one-off backfill of ``log_event_index`` (migration 2): True once, then False."""
    return tx.execute("DELETE FROM log_event_backfill") > 0


def indexed_leaves(tx: Tx, start: int, end: int) -> list[tuple[str, int, bytes]]:
    """Return the ``(store-path hash, index, leaf bytes)`` rows of leaves ``[start, end)``.

    Read from ``log_store_index`` for the backfill, one range at a time.
    """
    rows = tx.fetchall(
        "SELECT s.store_hash, s.idx, l.data FROM log_store_index s JOIN log_leaves l ON l.idx = s.idx"
        " WHERE s.idx >= ? AND s.idx < ?",
        (start, end),
    )
    return [(str(h), int(i), bytes(d)) for h, i, d in rows]


def insert_checkpoint(tx: Tx, cp: StoredCheckpoint) -> None:
    """Record an issued tree head."""
    tx.execute(
        "INSERT INTO log_checkpoints (size, root, timestamp_ms, note, sth) VALUES (?, ?, ?, ?, ?)",
        (cp.size, cp.root, cp.timestamp_ms, cp.note, cp.sth),
    )


_CHECKPOINT_COLUMNS = "size, root, timestamp_ms, note, sth"


def latest_checkpoint(tx: Tx) -> StoredCheckpoint | None:
    """Return the largest issued tree head, or None before the first one."""
    row = tx.fetchone(f"SELECT {_CHECKPOINT_COLUMNS} FROM log_checkpoints ORDER BY size DESC LIMIT 1")  # noqa: S608 - constant
    return None if row is None else _checkpoint(row)


def checkpoint_at(tx: Tx, size: int) -> StoredCheckpoint | None:
    """Return the tree head issued for exactly ``size`` leaves, if any."""
    row = tx.fetchone(f"SELECT {_CHECKPOINT_COLUMNS} FROM log_checkpoints WHERE size = ?", (size,))  # noqa: S608 - constant
    return None if row is None else _checkpoint(row)


def _checkpoint(row: tuple[object, ...]) -> StoredCheckpoint:
    size, root, ts, note, sth = row
    return StoredCheckpoint(
        size=int(size),  # type: ignore[call-overload]
        root=bytes(root),  # type: ignore[call-overload]
        timestamp_ms=int(ts),  # type: ignore[call-overload]
        note=str(note),
        sth=str(sth),
    )


def read_leaves(tx: Tx, start: int, end: int) -> list[bytes]:
    """Return the data of leaves ``[start, end)``, in order (fewer if not stored)."""
    rows = tx.fetchall("SELECT data FROM log_leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
    return [bytes(r[0]) for r in rows]


def read_level(tx: Tx, level: int, start: int, end: int) -> list[bytes]:
    """Return the hashes of nodes ``(level, i)``, ``start <= i < end``, in order; missing ones left out."""
    keys = [((2 * i + 1) << level) - 1 for i in range(start, end)]
    got = _fetch_nodes(tx, keys)
    return [got[k] for k in keys if k in got]


def lookup_indexes(tx: Tx, store_hash: str, below: int, limit: int) -> list[int]:
    """Return at most ``limit`` indexes below ``below`` of the leaves indexed under ``store_hash``."""
    rows = tx.fetchall(
        "SELECT idx FROM log_store_index WHERE store_hash = ? AND idx < ? ORDER BY idx LIMIT ?",
        (store_hash, below, limit),
    )
    return [int(r[0]) for r in rows]


def event_indexes(tx: Tx, store_hash: str, below: int, limit: int) -> list[int]:
    """Return at most ``limit`` indexes below ``below`` of the promotions and revocations of a build."""
    rows = tx.fetchall(
        "SELECT idx FROM log_event_index WHERE store_hash = ? AND idx < ? ORDER BY idx LIMIT ?",
        (store_hash, below, limit),
    )
    return [int(r[0]) for r in rows]
