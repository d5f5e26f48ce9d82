"""The cache Store: SQL written once (``?`` placeholders) for SQLite and PostgreSQL.

Every write is idempotent: inserts are "insert if absent" on a natural key
(object key; namespace + hash; store hash + attester + fingerprint; ...), so a
retried request changes nothing. Writers that must see a consistent set of
attestations (decide, then promote) hold :meth:`Store.lock_path`, which is
one write transaction with a per-store-path lock.

Edge: the metadata database (through ``vega.server.db``).
Spec: protocol.md §4.2-§4.5, §6.1, §7.1; house-style.md §4.9.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from vega.core.promotion import AttestationRecord, BuildProvenance, Lane
from vega.server.db import Database, Migration, Tx

__all__ = [
    "MIGRATIONS",
    "SHARED",
    "AttestationRow",
    "CacheCounts",
    "ObjectRecord",
    "PromotionRecord",
    "ReproRow",
    "Store",
]

SHARED = ""
"""The namespace of the shared tier (the control-plane root)."""

_V2_COLUMNS = (
    "hash_part, attester_id, fingerprint, tenant, lane, owner_id, is_trust_root, weight, sig,"
    " attested_at_ms, continent, flake_ref, attr, rev, dir, store_path, nar_hash, narinfo"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "cache",
        1,
        (
            "CREATE TABLE cache_objects ("
            " object_key TEXT PRIMARY KEY, size {bigint} NOT NULL, created_at_ms {bigint} NOT NULL,"
            " nar_hash TEXT, nar_size {bigint})",
            "CREATE TABLE cache_narinfos ("
            " namespace TEXT NOT NULL, hash_part TEXT NOT NULL, narinfo TEXT NOT NULL,"
            " fingerprint TEXT NOT NULL, object_key TEXT NOT NULL, updated_at_ms {bigint} NOT NULL,"
            " PRIMARY KEY (namespace, hash_part))",
            "CREATE INDEX cache_narinfos_hash ON cache_narinfos (hash_part)",
            "CREATE TABLE cache_attestations ("
            " hash_part TEXT NOT NULL, attester_id TEXT NOT NULL, fingerprint TEXT NOT NULL,"
            " tenant TEXT, lane TEXT NOT NULL, owner_id TEXT, is_trust_root INTEGER NOT NULL,"
            " weight {bigint} NOT NULL, sig TEXT NOT NULL, attested_at_ms {bigint} NOT NULL,"
            " continent TEXT, flake_ref TEXT, attr TEXT, rev TEXT, dir TEXT,"
            " store_path TEXT NOT NULL, nar_hash TEXT NOT NULL, narinfo TEXT NOT NULL,"
            " PRIMARY KEY (hash_part, attester_id, fingerprint))",
            "CREATE TABLE cache_promotions ("
            " hash_part TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, store_path TEXT NOT NULL,"
            " nar_hash TEXT NOT NULL, agreed_since_ms {bigint} NOT NULL, promoted_at_ms {bigint} NOT NULL)",
            "CREATE TABLE cache_revocations ("
            " hash_part TEXT PRIMARY KEY, reason TEXT NOT NULL, revoked_at_ms {bigint} NOT NULL)",
            "CREATE TABLE cache_repro_queue ("
            " hash_part TEXT PRIMARY KEY, store_path TEXT NOT NULL, nar_hash TEXT NOT NULL,"
            " flake_ref TEXT NOT NULL, attr TEXT NOT NULL, rev TEXT NOT NULL, dir TEXT,"
            " queued_at_ms {bigint} NOT NULL, attempts INTEGER NOT NULL,"
            " retired_at_ms {bigint}, retired_reason TEXT)",
            "CREATE TABLE cache_dispatch_failures ("
            " hash_part TEXT NOT NULL, attester_id TEXT NOT NULL, reason TEXT NOT NULL,"
            " reported_at_ms {bigint} NOT NULL, PRIMARY KEY (hash_part, attester_id, reason))",
        ),
    ),
    Migration(
        "cache",
        2,
        (
            # The SHA-256 of the stored bytes (``sha256:<nix32>``) and how nar_hash/nar_size were
            # obtained: "upload" (computed while the PUT streamed through) or "read" (read back).
            "ALTER TABLE cache_objects ADD COLUMN file_hash TEXT",
            "ALTER TABLE cache_objects ADD COLUMN nar_source TEXT",
        ),
    ),
    Migration(
        "cache",
        3,
        (
            # What the orphan sweep asks per object: is it served, promoted, or CI evidence?
            "CREATE INDEX cache_narinfos_object ON cache_narinfos (object_key)",
            "CREATE INDEX cache_attestations_nar ON cache_attestations (nar_hash)",
            "CREATE INDEX cache_promotions_nar ON cache_promotions (nar_hash)",
        ),
    ),
    Migration(
        # A component of its own so it never collides with another ``cache`` version.
        "repro",
        1,
        (
            # The failure's class and a redacted excerpt (changes-0.19.md), both optional.
            "ALTER TABLE cache_dispatch_failures ADD COLUMN diagnosis TEXT",
            "ALTER TABLE cache_dispatch_failures ADD COLUMN excerpt TEXT",
        ),
    ),
    Migration(
        # A component of its own (sorted after ``cache``), so it never collides with a ``cache`` version.
        "cache-fpkey",
        1,
        (
            # Keyed by a bounded fingerprint key (ADR 0012): a fingerprint lists every reference, so
            # a large closure's is far over PostgreSQL's B-tree entry limit (~2.7 kB). Rows copied
            # from version 2 keep their fingerprint as key; Store() rewrites the long ones once.
            "CREATE TABLE cache_attestations_v3 ("
            " hash_part TEXT NOT NULL, attester_id TEXT NOT NULL, fingerprint TEXT NOT NULL,"
            " tenant TEXT, lane TEXT NOT NULL, owner_id TEXT, is_trust_root INTEGER NOT NULL,"
            " weight {bigint} NOT NULL, sig TEXT NOT NULL, attested_at_ms {bigint} NOT NULL,"
            " continent TEXT, flake_ref TEXT, attr TEXT, rev TEXT, dir TEXT,"
            " store_path TEXT NOT NULL, nar_hash TEXT NOT NULL, narinfo TEXT NOT NULL,"
            " fingerprint_key TEXT NOT NULL,"
            " PRIMARY KEY (hash_part, attester_id, fingerprint_key))",
            f"INSERT INTO cache_attestations_v3 ({_V2_COLUMNS}, fingerprint_key)"  # noqa: S608 - constant columns
            f" SELECT {_V2_COLUMNS}, fingerprint FROM cache_attestations",
            "DROP TABLE cache_attestations",
            "ALTER TABLE cache_attestations_v3 RENAME TO cache_attestations",
            "CREATE TABLE cache_rekey_pending (pending INTEGER NOT NULL)",
            "INSERT INTO cache_rekey_pending (pending) VALUES (1)",
            # cache 3's index went with the old table
            "CREATE INDEX cache_attestations_nar ON cache_attestations (nar_hash)",
        ),
    ),
)
"""The ``cache`` component's schema."""


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """A stored NAR object."""

    key: str
    """``nar/<nix32>.nar.zst``."""
    size: int
    """Compressed bytes."""
    nar_hash: str | None
    """``sha256:<nix32>`` of the NAR once the server decompressed and hashed it."""
    nar_size: int | None
    """Bytes of the NAR, likewise."""
    file_hash: str | None = None
    """``sha256:<nix32>`` of the stored bytes, as the server computed them (None before ``cache`` 2)."""
    nar_source: str | None = None
    """How ``nar_hash``/``nar_size`` were computed: ``"upload"`` (during the PUT) or ``"read"``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationRow:
    """An attestation as stored: the policy's record plus what the server needs to publish."""

    record: AttestationRecord
    """What the promotion policy reads."""
    hash_part: str
    """Store-path hash."""
    store_path: str
    """``/nix/store/<hash>-<name>``."""
    nar_hash: str
    """``sha256:<nix32>``."""
    narinfo: str
    """The unsigned narinfo text this attester's object makes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionRecord:
    """A store path signed into the shared tier."""

    hash_part: str
    fingerprint: str
    store_path: str
    nar_hash: str
    agreed_since_ms: int
    promoted_at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReproRow:
    """An output waiting for an independent reproduction."""

    hash_part: str
    store_path: str
    nar_hash: str
    flake_ref: str
    attr: str
    rev: str
    dir: str | None
    queued_at_ms: int
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheCounts:
    """Totals for metrics."""

    objects: int
    attestations: int
    promotions: int
    narinfos: int


_MAX_FINGERPRINT_KEY = 128


def fingerprint_key(fingerprint: str) -> str:
    """The attestation key of a fingerprint: itself when short, else ``sha256:<hex>`` of it."""
    if len(fingerprint) <= _MAX_FINGERPRINT_KEY:
        return fingerprint
    return "sha256:" + hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).hexdigest()


def _lock_key(hash_part: str) -> int:
    return int.from_bytes(
        hashlib.sha256(b"vega-cache:" + hash_part.encode()).digest()[:8], "big", signed=True
    )


_ORPHAN = (
    "o.created_at_ms < ?"
    " AND NOT EXISTS (SELECT 1 FROM cache_narinfos n WHERE n.object_key = o.object_key)"
    " AND NOT EXISTS (SELECT 1 FROM cache_promotions p WHERE p.nar_hash = o.nar_hash)"
    " AND NOT EXISTS (SELECT 1 FROM cache_attestations a WHERE a.nar_hash = o.nar_hash AND a.lane <> 'owner')"
)
"""An object nothing needs (``o`` is ``cache_objects``; the parameter is the age cutoff)."""

_ATT_COLUMNS = (
    "hash_part, attester_id, fingerprint, tenant, lane, owner_id, is_trust_root, weight, sig,"
    " attested_at_ms, continent, flake_ref, attr, rev, dir, store_path, nar_hash, narinfo"
)


class Store:
    """The cache metadata over one database; methods take the transaction they run in."""

    def __init__(self, db: Database) -> None:
        """Wrap ``db`` and apply the ``cache`` migrations."""
        self.db = db
        """The database."""
        db.migrate(MIGRATIONS)
        with db.transaction() as tx:
            # Once after migration cache-fpkey 1: long fingerprints copied as their own key get the short one.
            if tx.execute("DELETE FROM cache_rekey_pending") == 0:
                return
            long = tx.fetchall(
                "SELECT hash_part, attester_id, fingerprint FROM cache_attestations"
                " WHERE fingerprint = fingerprint_key AND LENGTH(fingerprint) > ?",
                (_MAX_FINGERPRINT_KEY,),
            )
            tx.executemany(
                "UPDATE cache_attestations SET fingerprint_key = ?"
                " WHERE hash_part = ? AND attester_id = ? AND fingerprint_key = ?",
                [(fingerprint_key(fp), h, a, fp) for h, a, fp in long],
            )

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read transaction."""
        with self.db.transaction(write=False) as tx:
            yield tx

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A write transaction."""
        with self.db.transaction(write=True) as tx:
            yield tx

    @contextmanager
    def lock_path(self, hash_part: str) -> Iterator[Tx]:
        """A write transaction holding the lock of one store path (serialises decide + promote)."""
        with self.db.lock(_lock_key(hash_part)) as tx:
            yield tx

    # -- objects ---------------------------------------------------------------

    def put_object(self, tx: Tx, key: str, size: int, now_ms: int) -> None:
        """Record a stored object (no-op when known)."""
        if tx.fetchone("SELECT 1 FROM cache_objects WHERE object_key = ?", (key,)) is None:
            tx.execute(
                "INSERT INTO cache_objects (object_key, size, created_at_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (object_key) DO NOTHING",
                (key, size, now_ms),
            )

    def get_object(self, tx: Tx, key: str) -> ObjectRecord | None:
        """The object record, or None."""
        row = tx.fetchone(
            "SELECT object_key, size, nar_hash, nar_size, file_hash, nar_source"
            " FROM cache_objects WHERE object_key = ?",
            (key,),
        )
        if row is None:
            return None
        return ObjectRecord(
            row[0], int(row[1]), row[2], None if row[3] is None else int(row[3]), row[4], row[5]
        )

    def set_object_nar(
        self,
        tx: Tx,
        key: str,
        nar_hash: str,
        nar_size: int,
        *,
        file_hash: str | None = None,
        source: str = "read",
    ) -> None:
        """Remember the NAR hash and size (and the file hash) the server computed for an object."""
        tx.execute(
            "UPDATE cache_objects SET nar_hash = ?, nar_size = ?, file_hash = ?, nar_source = ?"
            " WHERE object_key = ?",
            (nar_hash, nar_size, file_hash, source, key),
        )

    # -- narinfos --------------------------------------------------------------

    def put_narinfo(
        self,
        tx: Tx,
        namespace: str,
        hash_part: str,
        narinfo: str,
        fingerprint: str,
        object_key: str,
        now_ms: int,
    ) -> None:
        """Publish (or replace) a signed narinfo in a namespace."""
        tx.execute(
            "INSERT INTO cache_narinfos"
            " (namespace, hash_part, narinfo, fingerprint, object_key, updated_at_ms)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, hash_part) DO UPDATE SET"
            " narinfo = excluded.narinfo, fingerprint = excluded.fingerprint,"
            " object_key = excluded.object_key, updated_at_ms = excluded.updated_at_ms",
            (namespace, hash_part, narinfo, fingerprint, object_key, now_ms),
        )

    def get_narinfo(self, tx: Tx, namespace: str, hash_part: str) -> str | None:
        """The narinfo text in a namespace, or None."""
        row = tx.fetchone(
            "SELECT narinfo FROM cache_narinfos WHERE namespace = ? AND hash_part = ?", (namespace, hash_part)
        )
        return None if row is None else str(row[0])

    def delete_narinfo(self, tx: Tx, namespace: str, hash_part: str) -> None:
        """Stop serving a narinfo in a namespace."""
        tx.execute("DELETE FROM cache_narinfos WHERE namespace = ? AND hash_part = ?", (namespace, hash_part))

    def namespaces_of(self, tx: Tx, hash_part: str) -> list[str]:
        """Every namespace serving the store path, sorted (the shared tier is ``""``)."""
        rows = tx.fetchall(
            "SELECT namespace FROM cache_narinfos WHERE hash_part = ? ORDER BY namespace", (hash_part,)
        )
        return [str(r[0]) for r in rows]

    def list_namespace(self, tx: Tx, namespace: str, after: str, limit: int) -> list[tuple[str, str, int]]:
        """``(hash_part, narinfo, updated_at_ms)`` of one namespace, by hash, after ``after``."""
        rows = tx.fetchall(
            "SELECT hash_part, narinfo, updated_at_ms FROM cache_narinfos"
            " WHERE namespace = ? AND hash_part > ? ORDER BY hash_part LIMIT ?",
            (namespace, after, limit),
        )
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def orphan_objects(self, tx: Tx, created_before_ms: int, limit: int) -> list[str]:
        """Objects older than ``created_before_ms`` that nothing needs (docs/server-api.md).

        Needed: served by any namespace (the shared tier included), the NAR of a promoted path,
        or evidence of a CI or reproducer attestation. What is left: uploads never attested, and
        owner pushes their owner deleted.
        """
        rows = tx.fetchall(
            f"SELECT o.object_key FROM cache_objects o WHERE {_ORPHAN} ORDER BY o.object_key LIMIT ?",  # noqa: S608 - a constant
            (created_before_ms, limit),
        )
        return [str(r[0]) for r in rows]

    def is_orphan(self, tx: Tx, key: str, created_before_ms: int) -> bool:
        """Whether one object is still an orphan in the sense of :meth:`orphan_objects`."""
        row = tx.fetchone(
            f"SELECT 1 FROM cache_objects o WHERE o.object_key = ? AND {_ORPHAN}",  # noqa: S608 - a constant
            (key, created_before_ms),
        )
        return row is not None

    def delete_object(self, tx: Tx, key: str) -> None:
        """Forget an object's record (the bytes go separately)."""
        tx.execute("DELETE FROM cache_objects WHERE object_key = ?", (key,))

    # -- attestations ----------------------------------------------------------

    def add_attestation(self, tx: Tx, row: AttestationRow) -> bool:
        """Record an attestation; False when this attester already attested this fingerprint."""
        r = row.record
        key = (row.hash_part, r.attester_id, fingerprint_key(r.fingerprint))
        if tx.fetchone(
            "SELECT 1 FROM cache_attestations"
            " WHERE hash_part = ? AND attester_id = ? AND fingerprint_key = ?",
            key,
        ):
            return False
        p = r.provenance
        tx.execute(
            f"INSERT INTO cache_attestations ({_ATT_COLUMNS}, fingerprint_key)"  # noqa: S608 - constant columns
            f" VALUES ({', '.join('?' * 19)})",
            (
                row.hash_part,
                r.attester_id,
                r.fingerprint,
                r.tenant,
                r.lane,
                r.owner_id,
                int(r.is_trust_root),
                r.weight,
                r.sig,
                r.attested_at_ms,
                r.continent,
                None if p is None else p.flake_ref,
                None if p is None else p.attr,
                None if p is None else p.rev,
                None if p is None else p.dir,
                row.store_path,
                row.nar_hash,
                row.narinfo,
                key[2],
            ),
        )
        return True

    def attestations(self, tx: Tx, hash_part: str) -> list[AttestationRow]:
        """Every attestation of a store path, oldest first."""
        rows = tx.fetchall(
            f"SELECT {_ATT_COLUMNS} FROM cache_attestations WHERE hash_part = ?"  # noqa: S608 - constant columns
            " ORDER BY attested_at_ms, attester_id, fingerprint",
            (hash_part,),
        )
        out = []
        for row in rows:
            provenance = (
                None
                if row[11] is None
                else BuildProvenance(flake_ref=row[11], attr=row[12] or "", rev=row[13] or "", dir=row[14])
            )
            lane: Lane = row[4]
            record = AttestationRecord(
                attester_id=row[1],
                tenant=row[3],
                lane=lane,
                fingerprint=row[2],
                is_trust_root=bool(row[6]),
                weight=int(row[7]),
                sig=row[8],
                attested_at_ms=int(row[9]),
                provenance=provenance,
                continent=row[10],
                owner_id=row[5],
            )
            out.append(
                AttestationRow(
                    record=record, hash_part=row[0], store_path=row[15], nar_hash=row[16], narinfo=row[17]
                )
            )
        return out

    # -- promotions and revocations -----------------------------------------------

    def get_promotion(self, tx: Tx, hash_part: str) -> PromotionRecord | None:
        """The store path's promotion, or None."""
        row = tx.fetchone(
            "SELECT hash_part, fingerprint, store_path, nar_hash, agreed_since_ms, promoted_at_ms"
            " FROM cache_promotions WHERE hash_part = ?",
            (hash_part,),
        )
        if row is None:
            return None
        return PromotionRecord(
            hash_part=row[0],
            fingerprint=row[1],
            store_path=row[2],
            nar_hash=row[3],
            agreed_since_ms=int(row[4]),
            promoted_at_ms=int(row[5]),
        )

    def add_promotion(self, tx: Tx, p: PromotionRecord) -> bool:
        """Record a promotion; False when the store path is already promoted."""
        if self.get_promotion(tx, p.hash_part) is not None:
            return False
        tx.execute(
            "INSERT INTO cache_promotions (hash_part, fingerprint, store_path, nar_hash, agreed_since_ms,"
            " promoted_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (p.hash_part, p.fingerprint, p.store_path, p.nar_hash, p.agreed_since_ms, p.promoted_at_ms),
        )
        return True

    def revoke(self, tx: Tx, hash_part: str, reason: str, now_ms: int) -> bool:
        """Revoke a store path; False when already revoked."""
        if self.is_revoked(tx, hash_part):
            return False
        tx.execute(
            "INSERT INTO cache_revocations (hash_part, reason, revoked_at_ms) VALUES (?, ?, ?)",
            (hash_part, reason, now_ms),
        )
        return True

    def is_revoked(self, tx: Tx, hash_part: str) -> bool:
        """Whether the store path is revoked."""
        return tx.fetchone("SELECT 1 FROM cache_revocations WHERE hash_part = ?", (hash_part,)) is not None

    def unpromoted(self, tx: Tx, limit: int) -> list[str]:
        """Store paths with shared-tier evidence that are neither promoted nor revoked."""
        rows = tx.fetchall(
            "SELECT a.hash_part FROM cache_attestations a"
            " WHERE a.lane <> 'owner'"
            " AND NOT EXISTS (SELECT 1 FROM cache_promotions p WHERE p.hash_part = a.hash_part)"
            " AND NOT EXISTS (SELECT 1 FROM cache_revocations r WHERE r.hash_part = a.hash_part)"
            " GROUP BY a.hash_part ORDER BY MAX(a.attested_at_ms) DESC, a.hash_part LIMIT ?",
            (limit,),
        )
        return [str(r[0]) for r in rows]

    # -- reproduction queue --------------------------------------------------------

    def enqueue_repro(self, tx: Tx, row: ReproRow) -> bool:
        """Queue an output for reproduction; False when it was ever queued."""
        if tx.fetchone("SELECT 1 FROM cache_repro_queue WHERE hash_part = ?", (row.hash_part,)):
            return False
        tx.execute(
            "INSERT INTO cache_repro_queue (hash_part, store_path, nar_hash, flake_ref, attr, rev, dir,"
            " queued_at_ms, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.hash_part,
                row.store_path,
                row.nar_hash,
                row.flake_ref,
                row.attr,
                row.rev,
                row.dir,
                row.queued_at_ms,
                row.attempts,
            ),
        )
        return True

    def repro_queue(self, tx: Tx, limit: int, max_attempts: int) -> list[ReproRow]:
        """Open candidates with fewer than ``max_attempts`` failures, oldest first."""
        rows = tx.fetchall(
            "SELECT hash_part, store_path, nar_hash, flake_ref, attr, rev, dir, queued_at_ms, attempts"
            " FROM cache_repro_queue WHERE retired_at_ms IS NULL AND attempts < ?"
            " ORDER BY queued_at_ms, hash_part LIMIT ?",
            (max_attempts, limit),
        )
        return [
            ReproRow(
                hash_part=r[0],
                store_path=r[1],
                nar_hash=r[2],
                flake_ref=r[3],
                attr=r[4],
                rev=r[5],
                dir=r[6],
                queued_at_ms=int(r[7]),
                attempts=int(r[8]),
            )
            for r in rows
        ]

    def is_queued(self, tx: Tx, hash_part: str) -> bool:
        """Whether the store path is an open (not retired) reproduction candidate."""
        return (
            tx.fetchone(
                "SELECT 1 FROM cache_repro_queue WHERE hash_part = ? AND retired_at_ms IS NULL", (hash_part,)
            )
            is not None
        )

    def retire_repro(self, tx: Tx, hash_part: str, reason: str, now_ms: int) -> None:
        """Take a candidate off the queue for good."""
        tx.execute(
            "UPDATE cache_repro_queue SET retired_at_ms = ?, retired_reason = ?"
            " WHERE hash_part = ? AND retired_at_ms IS NULL",
            (now_ms, reason, hash_part),
        )

    def add_dispatch_failure(
        self,
        tx: Tx,
        hash_part: str,
        attester_id: str,
        reason: str,
        now_ms: int,
        diagnosis: str | None = None,
        excerpt: str | None = None,
    ) -> bool:
        """Record one reproducer's failure report; False when this run already reported it."""
        if tx.fetchone(
            "SELECT 1 FROM cache_dispatch_failures WHERE hash_part = ? AND attester_id = ? AND reason = ?",
            (hash_part, attester_id, reason),
        ):
            return False
        tx.execute(
            "INSERT INTO cache_dispatch_failures"
            " (hash_part, attester_id, reason, reported_at_ms, diagnosis, excerpt) VALUES (?, ?, ?, ?, ?, ?)",
            (hash_part, attester_id, reason, now_ms, diagnosis, excerpt),
        )
        if reason == "build-failed":
            tx.execute(
                "UPDATE cache_repro_queue SET attempts = attempts + 1 WHERE hash_part = ?", (hash_part,)
            )
        return True

    def dispatch_failures(self, tx: Tx, hash_part: str) -> list[tuple[str, str | None, str | None]]:
        """``(reason, diagnosis, excerpt)`` of every failure report for ``hash_part``, oldest first."""
        rows = tx.fetchall(
            "SELECT reason, diagnosis, excerpt FROM cache_dispatch_failures WHERE hash_part = ?"
            " ORDER BY reported_at_ms, attester_id",
            (hash_part,),
        )
        return [
            (str(r[0]), None if r[1] is None else str(r[1]), None if r[2] is None else str(r[2]))
            for r in rows
        ]

    # -- metrics ------------------------------------------------------------------

    def counts(self, tx: Tx) -> CacheCounts:
        """Totals of each kind of record."""

        def count(table: str) -> int:
            row = tx.fetchone(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - constant table names
            return int(row[0]) if row else 0

        return CacheCounts(
            objects=count("cache_objects"),
            attestations=count("cache_attestations"),
            promotions=count("cache_promotions"),
            narinfos=count("cache_narinfos"),
        )
