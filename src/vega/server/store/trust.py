"""Trust edges and view tokens in SQL (SQLite and PostgreSQL), migration component ``trust``.

* ``trust_edges``: one row per edge *generation*: adding an edge that is not active inserts a new
  row, revoking sets ``revoked_at_ms`` on the active one, so the history is kept (protocol.md
  §4.8 ``revokedAt``). Identity of an edge: ``(consumer, builder, scope kind, scope name)``.
* ``view_tokens``: one row per consumer with the current token's nonce and the SHA-256 of the
  token. The token itself is never stored (it is an HMAC of the nonce under a key derived from
  the master seed, so a copy of the database alone does not give working tokens); rotation
  replaces the row, so the old token stops working at once.

Spec: protocol.md §4.7, §4.8; issue 8.
"""

from __future__ import annotations

from dataclasses import dataclass

from vega.core.trust import TrustEdge, TrustScope
from vega.server.db import Database, Migration, Tx

__all__ = ["MIGRATIONS", "TrustStore", "ViewTokenRow"]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "trust",
        1,
        (
            "CREATE TABLE trust_edges ("
            " consumer_id TEXT NOT NULL, builder_id TEXT NOT NULL, scope_kind TEXT NOT NULL,"
            " scope_name TEXT NOT NULL, generation INTEGER NOT NULL,"
            " accept_unreproducible INTEGER NOT NULL, created_at_ms {bigint} NOT NULL,"
            " revoked_at_ms {bigint},"
            " PRIMARY KEY (consumer_id, builder_id, scope_kind, scope_name, generation))",
            "CREATE TABLE view_tokens ("
            " consumer_id TEXT PRIMARY KEY, nonce TEXT NOT NULL, token_hash TEXT NOT NULL,"
            " issued_at_ms {bigint} NOT NULL)",
            "CREATE UNIQUE INDEX view_tokens_hash ON view_tokens (token_hash)",
        ),
    ),
)
"""The ``trust`` component's schema."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewTokenRow:
    """A consumer's current view token, as stored."""

    consumer_id: str
    nonce: str
    token_hash: str
    issued_at_ms: int


def _key(scope: TrustScope) -> tuple[str, str]:
    return scope.kind, scope.name or ""


class TrustStore:
    """Edges and view tokens over one database; methods take the transaction they run in."""

    def __init__(self, db: Database) -> None:
        """Wrap ``db`` and apply the ``trust`` migrations."""
        self.db = db
        db.migrate(MIGRATIONS)

    # -- edges ------------------------------------------------------------------------

    def add_edge(self, tx: Tx, consumer: str, edge: TrustEdge, now_ms: int) -> bool:
        """Activate an edge (idempotent); an active one takes the new ``accept_unreproducible``.

        Returns:
            True when a new generation was created.
        """
        kind, name = _key(edge.scope)
        where = " WHERE consumer_id = ? AND builder_id = ? AND scope_kind = ? AND scope_name = ?"
        params = (consumer, edge.builder, kind, name)
        active = tx.fetchone(
            "SELECT generation FROM trust_edges" + where + " AND revoked_at_ms IS NULL",  # noqa: S608 - constant
            params,
        )
        if active is not None:
            tx.execute(
                "UPDATE trust_edges SET accept_unreproducible = ?" + where + " AND generation = ?",  # noqa: S608
                (int(edge.accept_unreproducible), *params, int(active[0])),
            )
            return False
        top = tx.fetchone("SELECT MAX(generation) FROM trust_edges" + where, params)  # noqa: S608 - constant
        generation = 0 if top is None or top[0] is None else int(top[0]) + 1
        tx.execute(
            "INSERT INTO trust_edges (consumer_id, builder_id, scope_kind, scope_name, generation,"
            " accept_unreproducible, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*params, generation, int(edge.accept_unreproducible), now_ms),
        )
        return True

    def revoke_edge(self, tx: Tx, consumer: str, builder: str, scope: TrustScope, now_ms: int) -> bool:
        """Revoke the active edge, if any (idempotent). True when one was revoked."""
        kind, name = _key(scope)
        n = tx.execute(
            "UPDATE trust_edges SET revoked_at_ms = ? WHERE consumer_id = ? AND builder_id = ?"
            " AND scope_kind = ? AND scope_name = ? AND revoked_at_ms IS NULL",
            (now_ms, consumer, builder, kind, name),
        )
        return n > 0

    def edges(self, tx: Tx, consumer: str, *, active_only: bool = False) -> list[TrustEdge]:
        """The consumer's edges, oldest first (revoked generations too unless ``active_only``)."""
        columns = "SELECT builder_id, scope_kind, scope_name, accept_unreproducible, revoked_at_ms"
        order = " ORDER BY created_at_ms, builder_id, scope_kind, scope_name, generation"
        where = " FROM trust_edges WHERE consumer_id = ?"
        active = " AND revoked_at_ms IS NULL"
        sql = columns + where + (active if active_only else "") + order
        rows = tx.fetchall(sql, (consumer,))
        return [
            TrustEdge(
                builder=str(r[0]),
                scope=TrustScope(r[1], str(r[2]) or None),
                accept_unreproducible=bool(r[3]),
                revoked_at_ms=None if r[4] is None else int(r[4]),
            )
            for r in rows
        ]

    # -- view tokens -------------------------------------------------------------------

    def view_token(self, tx: Tx, consumer: str) -> ViewTokenRow | None:
        """The consumer's current token row, or None."""
        row = tx.fetchone(
            "SELECT consumer_id, nonce, token_hash, issued_at_ms FROM view_tokens WHERE consumer_id = ?",
            (consumer,),
        )
        return (
            None
            if row is None
            else ViewTokenRow(
                consumer_id=str(row[0]), nonce=str(row[1]), token_hash=str(row[2]), issued_at_ms=int(row[3])
            )
        )

    def set_view_token(self, tx: Tx, row: ViewTokenRow) -> None:
        """Issue or replace the consumer's token (the old one stops working with this commit)."""
        tx.execute("DELETE FROM view_tokens WHERE consumer_id = ?", (row.consumer_id,))
        tx.execute(
            "INSERT INTO view_tokens (consumer_id, nonce, token_hash, issued_at_ms) VALUES (?, ?, ?, ?)",
            (row.consumer_id, row.nonce, row.token_hash, row.issued_at_ms),
        )

    def consumer_of(self, tx: Tx, token_hash: str) -> ViewTokenRow | None:
        """The token row whose hash is ``token_hash``, or None."""
        row = tx.fetchone(
            "SELECT consumer_id, nonce, token_hash, issued_at_ms FROM view_tokens WHERE token_hash = ?",
            (token_hash,),
        )
        return (
            None
            if row is None
            else ViewTokenRow(
                consumer_id=str(row[0]), nonce=str(row[1]), token_hash=str(row[2]), issued_at_ms=int(row[3])
            )
        )
