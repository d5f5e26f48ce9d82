"""The durable transparency log: batched atomic appends, signed tree heads, proofs and tiles.

An append of a batch is one database transaction holding the log's lock: it
inserts the new leaves, the tree nodes they complete (``core.merkle``'s
``stored_nodes_for_append``), the store-path index rows, and a newly signed
checkpoint (C2SP note and original STH) for the new size. So a crash leaves
either nothing of the batch or all of it, every issued checkpoint describes a
prefix of the stored tree, and acknowledgment (``append`` returning) means the
batch is committed. Appends are O(batch + log n): only the O(log n) hashes of
the old tree's right border are read.

Reads never recompute the tree: a root or proof reads O(log n) stored nodes in
one query (``core.merkle`` over :func:`store.read_nodes`; the upper levels,
shared by every proof and immutable, are cached in memory), a tile is one
primary-key query for its 256 stored hashes, an entry bundle one range scan of
leaves.

:class:`Sequencer` groups concurrent appends from many threads into one
transaction (group commit); each call's entries commit together and the call
returns when they have.

Spec: protocol.md §2.7 (tree, STH message), §5 (read API); C2SP tlog-checkpoint,
tlog-tiles; house-style.md §4.9.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vega.core import checkpoint, merkle, nixbase32, note, signing, tiles, tlog
from vega.core.logapi import EventStatement, LookupEntry
from vega.core.merkle import NodeId
from vega.core.note import SignerKey
from vega.core.signing import SecretKey
from vega.errors import FormatError, StorageError
from vega.server.db import Database, Tx
from vega.server.log import store
from vega.server.log.store import StoredCheckpoint

__all__ = [
    "MAX_LOOKUP_BYTES",
    "MAX_LOOKUP_ENTRIES",
    "MAX_LOOKUP_EVENTS",
    "ConsistencyProof",
    "InclusionProof",
    "LogEntry",
    "Lookup",
    "LookupEntry",
    "Sequencer",
    "StoredCheckpoint",
    "TransparencyLog",
]

MAX_LOOKUP_ENTRIES = 1000
"""Most entries one lookup returns (the oldest first)."""
MAX_LOOKUP_BYTES = 3 << 20
"""Most entry and proof bytes one lookup returns, below the client's 4 MiB body limit (protocol.md §5)."""

MAX_LOOKUP_EVENTS = 32
"""Most promotions and revocations of one build a lookup returns with a signed statement.

Only the control plane writes these (one per promoted fingerprint, one revocation per path), so
a real build has a handful; beyond this the lookup has no statement and clients answer "unknown".
"""
_EVENT_KINDS = frozenset({"promotion", "revocation"})
_BACKFILL_BATCH = 5000

_LOCK_KEY = 0x766C6F67  # "vlog": the log's writer lock (PostgreSQL advisory lock id)
# Dedupe keys longer than this are stored as "sha256:<hex>" of their UTF-8 bytes
# (PostgreSQL's B-tree index entries are limited to about 2.7 kB).
_MAX_STORED_KEY = 128
# Nodes of level >= 6 are 1/32 of all nodes; a bounded dict of them (cleared when
# full, ~40 MB at most) keeps the upper levels every proof shares in memory.
_CACHE_MIN_LEVEL = 6
_CACHE_MAX = 1 << 18
_STORE_HASH = re.compile(f"[{nixbase32.ALPHABET}]{{32}}")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry to append."""

    data: bytes
    """The leaf bytes, exactly as hashed and served: UTF-8 JSON text (protocol.md §5.2)."""
    dedupe_key: str
    """Identifies the event: appending an entry whose key is logged returns the existing index."""
    store_hashes: tuple[str, ...] = ()
    """Store-path hashes (32 nix32 characters) this entry is about, for :meth:`TransparencyLog.lookup`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InclusionProof:
    """An RFC 9162 inclusion proof of one entry in the tree of ``size`` leaves."""

    index: int
    size: int
    leaf_hash: bytes
    root: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsistencyProof:
    """An RFC 9162 consistency proof from the tree of ``first`` leaves to that of ``second``."""

    first: int
    second: int
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Lookup:
    """Every entry indexed under one store-path hash, proven at one checkpoint."""

    checkpoint: StoredCheckpoint
    entries: tuple[LookupEntry, ...]
    truncated: bool
    """More entries exist than :data:`MAX_LOOKUP_ENTRIES` and :data:`MAX_LOOKUP_BYTES` allow."""
    events: EventStatement | None = None
    """Signed: every promotion and revocation of the build (all in ``entries``); None past
    :data:`MAX_LOOKUP_EVENTS`."""


class TransparencyLog:
    """The log over one database. Thread-safe; several processes may share the database."""

    def __init__(
        self,
        db: Database,
        origin: str,
        note_signer: SignerKey,
        sth_key: SecretKey,
        now: Callable[[], int],
    ) -> None:
        """Open the log, creating its tables and the empty tree's checkpoint if missing.

        Args:
            db: the database.
            origin: the C2SP checkpoint origin line (the log's name, e.g. ``vega.example/log``).
            note_signer: signs checkpoint notes (the log key, not the narinfo key).
            sth_key: signs the original STH message (protocol.md §2.7: ``vega-cache-1``).
            now: clock, epoch milliseconds.

        Raises:
            FormatError: ``origin`` cannot be a checkpoint origin.
            StorageError: the database failed, or its tree does not reproduce the
                latest checkpoint.
        """
        checkpoint.Checkpoint(origin, 0, merkle.EMPTY_ROOT)  # FormatError for a bad origin, now
        self._db = db
        self._origin = origin
        self._note_signer = note_signer
        self._sth_key = sth_key
        self._now = now
        self._cache: dict[NodeId, bytes] = {}
        db.migrate(store.MIGRATIONS)
        with db.transaction(write=False) as tx:
            latest = store.latest_checkpoint(tx)
            # Recovery check: the stored tree must reproduce the last signed root.
            if latest is not None and merkle.tree_root(latest.size, _Reader(tx, {})) != latest.root:
                raise StorageError(
                    f"transparency log: the stored tree does not reproduce checkpoint {latest.size}"
                )
        if latest is None:
            with db.lock(_LOCK_KEY) as tx:
                if store.latest_checkpoint(tx) is None:
                    store.insert_checkpoint(tx, self._issue(0, merkle.EMPTY_ROOT, now()))
        with db.lock(_LOCK_KEY) as tx:
            # Migration 2: index the promotions and revocations logged before it, once.
            if store.take_event_backfill(tx):
                size = store.stored_size(tx)
                for start in range(0, size, _BACKFILL_BATCH):
                    rows = store.indexed_leaves(tx, start, start + _BACKFILL_BATCH)
                    store.insert_event_index(tx, [(h, i) for h, i, data in rows if _is_event(data)])

    # -- writes ---------------------------------------------------------------

    def append(self, entries: Sequence[LogEntry]) -> list[int]:
        """Append a batch atomically and issue a checkpoint covering it.

        Entries whose ``dedupe_key`` is already logged (or repeated in the
        batch) add nothing and get the existing index. When the batch adds
        nothing, no checkpoint is issued.

        Returns:
            The index of each entry, in order.

        Raises:
            FormatError: an entry is malformed (nothing is appended).
            StorageError: the database failed (nothing is appended).
        """
        for e in entries:
            _check_entry(e)
        if not entries:
            return []
        with self._db.lock(_LOCK_KEY) as tx:
            head = _require(store.latest_checkpoint(tx))
            size = head.size
            keys = [_stored_key(e.dedupe_key) for e in entries]
            existing = store.find_dedupe_keys(tx, keys)
            out: list[int] = []
            fresh: list[tuple[LogEntry, str]] = []
            for e, key in zip(entries, keys, strict=True):
                if key not in existing:
                    existing[key] = size + len(fresh)
                    fresh.append((e, key))
                out.append(existing[key])
            if not fresh:
                return out
            if size + len(fresh) > store.MAX_LEAVES:
                raise StorageError(f"transparency log: full ({size} leaves)")
            if store.stored_size(tx) != size:
                raise StorageError(
                    f"transparency log: stored leaves do not match the checkpoint of size {size}"
                )
            known = _border(tx, size)

            def read(ids: Sequence[NodeId]) -> list[bytes]:
                return [known[i] for i in ids]

            leaves: list[tuple[int, bytes, bytes, str]] = []
            nodes: list[tuple[NodeId, bytes]] = []
            index_rows: list[tuple[str, int]] = []
            event_rows: list[tuple[str, int]] = []
            for offset, (e, key) in enumerate(fresh):
                i = size + offset
                h = merkle.leaf_hash(e.data)
                leaves.append((i, e.data, h, key))
                for node_id, node in merkle.stored_nodes_for_append(i, h, read):
                    known[node_id] = node
                    nodes.append((node_id, node))
                index_rows.extend((s, i) for s in dict.fromkeys(e.store_hashes))
                if _is_event(e.data):
                    event_rows.extend((s, i) for s in dict.fromkeys(e.store_hashes))
            new_size = size + len(fresh)
            root = merkle.tree_root(new_size, read)
            store.insert_leaves(tx, leaves)
            store.insert_nodes(tx, nodes)
            store.insert_index(tx, index_rows)
            store.insert_event_index(tx, event_rows)
            # NOTE: a checkpoint's time never goes backwards, whatever the clock does.
            store.insert_checkpoint(tx, self._issue(new_size, root, max(self._now(), head.timestamp_ms)))
        return out

    def _issue(self, size: int, root: bytes, timestamp_ms: int) -> StoredCheckpoint:
        head = checkpoint.Checkpoint(self._origin, size, root)
        signed = checkpoint.sign_checkpoint(head, self._note_signer)
        note_text = note.format_note(signed).decode("utf-8")
        sth = json.dumps(
            tlog.sign_sth(size, root, timestamp_ms, self._sth_key).to_json(), separators=(",", ":")
        )
        return StoredCheckpoint(size=size, root=root, timestamp_ms=timestamp_ms, note=note_text, sth=sth)

    # -- reads ----------------------------------------------------------------

    def latest(self) -> StoredCheckpoint:
        """Return the newest checkpoint (size 0 for an empty log)."""
        with self._db.transaction(write=False) as tx:
            return _require(store.latest_checkpoint(tx))

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """Return the checkpoint issued for exactly ``size`` leaves, or None if none was."""
        with self._db.transaction(write=False) as tx:
            return store.checkpoint_at(tx, size)

    def entry(self, index: int) -> bytes | None:
        """Return the data of entry ``index``, or None if the log is not that long.

        Raises:
            FormatError: a negative index.
        """
        _check_count("index", index)
        with self._db.transaction(write=False) as tx:
            got = store.read_leaves(tx, index, index + 1)
        return got[0] if got else None

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof | None:
        """Prove entry ``index`` in the tree of ``size`` leaves (default: the latest checkpoint's).

        Returns:
            The proof, or None when ``index`` is not below ``size``.

        Raises:
            FormatError: a negative argument, a zero size, or a size beyond the log's.
        """
        _check_count("index", index)
        with self._db.transaction(write=False) as tx:
            latest = _require(store.latest_checkpoint(tx)).size
            size = latest if size is None else size
            _check_size(size, latest)
            if index >= size:
                return None
            # one query: the proof's nodes, the root's and the leaf's
            reader = _Reader(tx, self._cache, prefetch=[*_border_ids(size), (0, index)])
            proof = merkle.prove_inclusion(index, size, reader)
            root = merkle.tree_root(size, reader)
            (leaf,) = reader([(0, index)])
        return InclusionProof(index=index, size=size, leaf_hash=leaf, root=root, proof=proof)

    def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        """Prove that the tree of ``first`` leaves is a prefix of the tree of ``second`` leaves.

        Raises:
            FormatError: not ``0 <= first <= second <= latest size``.
        """
        _check_count("first", first)
        _check_count("second", second)
        if first > second:
            raise FormatError(f"first ({first}) must not exceed second ({second})")
        with self._db.transaction(write=False) as tx:
            latest = _require(store.latest_checkpoint(tx)).size
            if second > latest:
                raise FormatError(f"second ({second}) exceeds the log size {latest}")
            proof = merkle.prove_consistency(first, second, _Reader(tx, self._cache))
        return ConsistencyProof(first=first, second=second, proof=proof)

    def tile(self, level: int, index: int, width: int = tiles.TILE_WIDTH) -> bytes | None:
        """Return the C2SP hash tile ``level``/``index`` of ``width`` hashes, read as stored.

        Returns:
            The concatenated 32-byte hashes, or None when the latest checkpoint
            does not cover ``width`` hashes of that tile yet.

        Raises:
            FormatError: coordinates outside C2SP's (level 0..63, width 1..256).
        """
        nodes = tiles.Tile(level, index, width).nodes()
        node_level, start = nodes[0]
        with self._db.transaction(write=False) as tx:
            latest = _require(store.latest_checkpoint(tx)).size
            if start + width > latest >> node_level:
                return None
            hashes = store.read_level(tx, node_level, start, start + width)
        if len(hashes) != width:
            raise StorageError(f"transparency log: tile {level}/{index} has {len(hashes)} of {width} hashes")
        return b"".join(hashes)

    def entries_tile(self, index: int, width: int = tiles.TILE_WIDTH) -> bytes | None:
        """Return the C2SP entry bundle ``index`` of ``width`` entries, read as stored.

        Returns:
            The bundle, or None when the latest checkpoint does not cover it yet.

        Raises:
            FormatError: a negative index, or a width outside 1..256.
        """
        tiles.EntryBundle(index, width)
        start = index * tiles.TILE_WIDTH
        with self._db.transaction(write=False) as tx:
            latest = _require(store.latest_checkpoint(tx)).size
            if start + width > latest:
                return None
            leaves = store.read_leaves(tx, start, start + width)
        if len(leaves) != width:
            raise StorageError(f"transparency log: entry bundle {index} has {len(leaves)} of {width} entries")
        return tiles.format_entry_bundle(leaves)

    def lookup(self, store_hash: str) -> Lookup:
        """Return the entries about a build, each with its inclusion proof at the latest checkpoint.

        Every promotion and revocation comes first (read from their own index, so no number of
        other entries can crowd them out) with a signed statement listing them; the other entries
        (attestations) fill the rest of :data:`MAX_LOOKUP_ENTRIES` and :data:`MAX_LOOKUP_BYTES`,
        oldest first. ``entries`` are returned in log order.

        Raises:
            FormatError: ``store_hash`` is not 32 nix32 characters.
        """
        _check_store_hash(store_hash)
        with self._db.transaction(write=False) as tx:
            head = _require(store.latest_checkpoint(tx))
            events = store.event_indexes(tx, store_hash, head.size, MAX_LOOKUP_EVENTS + 1)
            complete = len(events) <= MAX_LOOKUP_EVENTS
            events = events[:MAX_LOOKUP_EVENTS]
            others = store.lookup_indexes(tx, store_hash, head.size, MAX_LOOKUP_ENTRIES + len(events) + 1)
            reader = _Reader(tx, self._cache)

            def proven(i: int) -> LookupEntry:
                (data,) = store.read_leaves(tx, i, i + 1)
                return LookupEntry(index=i, data=data, proof=merkle.prove_inclusion(i, head.size, reader))

            def cost(e: LookupEntry) -> int:
                return len(e.data) + 70 * len(e.proof)  # as JSON: text and quoted hex hashes

            # NOTE: every event fits: MAX_LOOKUP_EVENTS entries of at most 64 KiB stay under the budget.
            chosen = {i: proven(i) for i in events}
            budget = MAX_LOOKUP_BYTES - sum(cost(e) for e in chosen.values())
            truncated = not complete
            rest = [i for i in others if i not in chosen]
            for n, i in enumerate(rest):
                e = proven(i) if n < MAX_LOOKUP_ENTRIES else None
                if e is None or cost(e) > budget:
                    truncated = True
                    break
                budget -= cost(e)
                chosen[i] = e
        statement = None
        if complete:
            message = tlog.events_message(store_hash, head.size, head.root, events)
            statement = EventStatement(indexes=tuple(events), signature=signing.sign(self._sth_key, message))
        entries = tuple(chosen[i] for i in sorted(chosen))
        return Lookup(checkpoint=head, entries=entries, truncated=truncated, events=statement)


class Sequencer:
    """Group commit: concurrent :meth:`append` calls share one transaction.

    A caller that finds no batch in flight commits everything queued (whole
    calls, up to ``max_batch`` entries, and at least one call) on behalf of all
    waiting callers; the others wait for it. One call's entries always commit
    together. Every caller returns only after its own entries have committed,
    or raises the error of the batch that held them.
    """

    def __init__(self, log: TransparencyLog, *, max_batch: int = 4096) -> None:
        self._log = log
        self._max_batch = max_batch
        self._cv = threading.Condition()
        self._queue: list[_Call] = []
        self._busy = False

    def append(self, entries: Sequence[LogEntry]) -> list[int]:
        """Append ``entries`` atomically (possibly within a larger batch) and return their indexes.

        Raises:
            FormatError: an entry is malformed (checked before queueing, so it fails only this caller).
            StorageError: the batch holding these entries failed to commit.
        """
        for e in entries:
            _check_entry(e)
        if not entries:
            return []
        call = _Call(entries)
        with self._cv:
            self._queue.append(call)
        while True:
            with self._cv:
                while not call.done and self._busy:
                    self._cv.wait()
                if call.done:
                    return call.result()
                self._busy = True
                batch = self._take()
            self._commit(batch)

    def _take(self) -> list[_Call]:
        """Dequeue whole calls: at least one, and at most ``max_batch`` entries unless one call has more."""
        n, count = 0, 0
        for call in self._queue:
            if n and count + len(call.entries) > self._max_batch:
                break
            n += 1
            count += len(call.entries)
        batch, self._queue = self._queue[:n], self._queue[n:]
        return batch

    def _commit(self, batch: list[_Call]) -> None:
        try:
            indexes = self._log.append([e for call in batch for e in call.entries])
        except BaseException as e:
            for call in batch:
                call.error = e
        else:
            pos = 0
            for call in batch:
                call.indexes = indexes[pos : pos + len(call.entries)]
                pos += len(call.entries)
        finally:
            with self._cv:
                for call in batch:
                    call.done = True
                self._busy = False
                self._cv.notify_all()


class _Call:
    """One caller's entries waiting in a :class:`Sequencer`, and their outcome."""

    __slots__ = ("done", "entries", "error", "indexes")

    def __init__(self, entries: Sequence[LogEntry]) -> None:
        self.entries = list(entries)
        self.done = False
        self.indexes: list[int] = []
        self.error: BaseException | None = None

    def result(self) -> list[int]:
        if self.error is not None:
            raise self.error
        return self.indexes


def _require(cp: StoredCheckpoint | None) -> StoredCheckpoint:
    if cp is None:
        raise StorageError("transparency log: no checkpoint stored (tables created by another version?)")
    return cp


class _Reader:
    """A :data:`merkle.HashReader` over one transaction that remembers what it read.

    ``prefetch`` nodes are read along with the first request, so several
    computations over one tree (proof, root, leaf) cost one query. Nodes at
    level :data:`_CACHE_MIN_LEVEL` and above also go to the log's shared
    ``cache``: a stored node never changes, so a cached hash is never stale,
    and the few upper nodes every proof shares stay out of the database.
    """

    def __init__(self, tx: Tx, cache: dict[NodeId, bytes], prefetch: Sequence[NodeId] = ()) -> None:
        self._tx = tx
        self._cache = cache
        self._prefetch = list(prefetch)
        self._known: dict[NodeId, bytes] = {}

    def __call__(self, ids: Sequence[NodeId]) -> list[bytes]:
        known, cache = self._known, self._cache
        need = []
        for i in dict.fromkeys([*ids, *self._prefetch]):
            if i not in known:
                h = cache.get(i)
                if h is None:
                    need.append(i)
                else:
                    known[i] = h
        self._prefetch = []
        if need:
            if len(cache) > _CACHE_MAX:
                cache.clear()
            for i, h in zip(need, store.read_nodes(self._tx, need), strict=True):
                known[i] = h
                if i[0] >= _CACHE_MIN_LEVEL:
                    cache[i] = h
        return [known[i] for i in ids]


def _border_ids(size: int) -> list[NodeId]:
    """Return the complete subtrees of ``[0, size)``, largest first: MTH(size) folds them."""
    ids: list[NodeId] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            ids.append((level, start >> level))
            start += 1 << level
    return ids


def _border(tx: Tx, size: int) -> dict[NodeId, bytes]:
    """Read the complete subtrees of ``[0, size)`` (the only old nodes an append needs)."""
    ids = _border_ids(size)
    return dict(zip(ids, store.read_nodes(tx, ids), strict=True)) if ids else {}


def _is_event(data: bytes) -> bool:
    """Whether leaf bytes are a promotion or revocation (as leniently as clients read them)."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("event") in _EVENT_KINDS


def _check_entry(e: LogEntry) -> None:
    if len(e.data) > tiles.MAX_ENTRY_BYTES:
        raise FormatError(f"log entry: {len(e.data)} bytes exceeds {tiles.MAX_ENTRY_BYTES}")
    try:
        e.data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError("log entry: data is not UTF-8") from err
    if not e.dedupe_key:
        raise FormatError("log entry: the dedupe key must not be empty")
    for s in e.store_hashes:
        _check_store_hash(s)


def _stored_key(key: str) -> str:
    if len(key) <= _MAX_STORED_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _check_store_hash(s: str) -> None:
    if not _STORE_HASH.fullmatch(s):
        raise FormatError(f"not a store-path hash (32 nix32 characters): {s[:80]!r}")


def _check_count(name: str, n: int) -> None:
    if n < 0:
        raise FormatError(f"{name} must be non-negative, got {n}")


def _check_size(size: int, latest: int) -> None:
    if not 0 < size <= latest:
        raise FormatError(f"size must be between 1 and the log size {latest}, got {size}")
