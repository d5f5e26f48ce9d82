"""The durable log: appends, checkpoints, proofs, tiles and lookups on every backend."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.log.conftest import NOTE_KEY, ORIGIN, STH_KEY, Clock, entry, open_log, store_hash
from vega.core import checkpoint, merkle, tiles, tlog
from vega.core.signing import is_valid_signature
from vega.errors import FormatError, StorageError
from vega.server.db import Database, open_database
from vega.server.log import log as log_module
from vega.server.log.log import (
    MAX_LOOKUP_BYTES,
    MAX_LOOKUP_ENTRIES,
    MAX_LOOKUP_EVENTS,
    LogEntry,
    Sequencer,
    StoredCheckpoint,
    TransparencyLog,
)


def all_checkpoints(log: TransparencyLog) -> list[StoredCheckpoint]:
    out = []
    for size in range(log.latest().size + 1):
        cp = log.checkpoint_at(size)
        if cp is not None:
            out.append(cp)
    return out


def check_note(cp: StoredCheckpoint) -> None:
    parsed, _ = checkpoint.open_checkpoint(cp.note, NOTE_KEY.verifier, origin=ORIGIN)
    assert (parsed.size, parsed.root_hash) == (cp.size, cp.root)


def check_sth(cp: StoredCheckpoint) -> None:
    check_note(cp)
    sth = json.loads(cp.sth)
    assert sth["size"] == cp.size
    assert sth["rootHash"] == cp.root.hex()
    assert sth["timestamp"] == cp.timestamp_ms
    message = f"vega-sth:v1:{cp.size}:{cp.root.hex()}:{cp.timestamp_ms}".encode()
    assert is_valid_signature(STH_KEY.public, message, sth["signature"])


def test_empty_log_has_a_signed_checkpoint_of_size_zero(log: TransparencyLog) -> None:
    cp = log.latest()
    assert cp.size == 0
    assert cp.root == merkle.EMPTY_ROOT
    check_sth(cp)
    assert log.entry(0) is None
    assert log.tile(0, 0, 1) is None
    assert log.entries_tile(0, 1) is None


def test_a_bad_origin_is_refused(database: Database) -> None:
    with pytest.raises(FormatError):
        TransparencyLog(database, "two\nlines", NOTE_KEY, STH_KEY, Clock())


def test_reopening_keeps_the_log(database: Database) -> None:
    first = open_log(database)
    first.append([entry(i) for i in range(5)])
    again = open_log(database)
    assert again.latest() == first.latest()
    assert again.append([entry(5)]) == [5]


def test_append_stores_exact_bytes_and_roots_match_the_reference(log: TransparencyLog) -> None:
    entries = [entry(i) for i in range(37)]
    assert log.append(entries[:10]) == list(range(10))
    assert log.append(entries[10:11]) == [10]
    assert log.append(entries[11:]) == list(range(11, 37))
    for i, e in enumerate(entries):
        assert log.entry(i) == e.data
    assert log.entry(37) is None
    hashes = [merkle.leaf_hash(e.data) for e in entries]
    sizes = [cp.size for cp in all_checkpoints(log)]
    assert sizes == [0, 10, 11, 37]
    for size in sizes:
        cp = log.checkpoint_at(size)
        assert cp is not None
        assert cp.root == merkle.root_from_leaf_hashes(hashes[:size])
        check_sth(cp)
    assert log.checkpoint_at(12) is None


def test_appends_are_idempotent_by_dedupe_key(log: TransparencyLog) -> None:
    batch = [entry(0), entry(1), entry(0)]
    assert log.append(batch) == [0, 1, 0]
    head = log.latest()
    assert log.append(batch) == [0, 1, 0]
    assert log.latest() == head  # nothing new: no new checkpoint
    changed = LogEntry(data=b'{"other":1}', dedupe_key=entry(1).dedupe_key)
    assert log.append([entry(2), changed]) == [2, 1]
    assert log.entry(1) == entry(1).data
    assert log.latest().size == 3
    assert log.append([]) == []
    # long keys (an attestation's key holds a narinfo fingerprint) work the same
    long_a = LogEntry(data=b'{"long":1}', dedupe_key="attest:" + "a" * 5000)
    long_b = LogEntry(data=b'{"long":2}', dedupe_key="attest:" + "a" * 4999 + "b")
    assert log.append([long_a, long_b, long_a]) == [3, 4, 3]
    assert log.append([long_b]) == [4]


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 40), min_size=1, max_size=6))
def test_every_checkpoint_is_consistent_with_every_later_one(database: Database, cuts: list[int]) -> None:
    log = open_log(database)
    start = log.latest().size
    for n in cuts:
        log.append([entry(start + j) for j in range(n)])
        start += n
    cps = all_checkpoints(log)
    for a in cps:
        for b in cps:
            if a.size <= b.size:
                proof = log.consistency_proof(a.size, b.size)
                assert (proof.first, proof.second) == (a.size, b.size)
                merkle.verify_consistency(a.size, b.size, proof.proof, a.root, b.root)


def test_inclusion_proofs_verify_at_every_size(log: TransparencyLog) -> None:
    entries = [entry(i) for i in range(70)]
    for i in range(0, 70, 9):
        log.append(entries[i : i + 9])
    for cp in all_checkpoints(log)[1:]:
        for i in range(cp.size):
            p = log.inclusion_proof(i, cp.size)
            assert p is not None
            assert (p.index, p.size, p.root) == (i, cp.size, cp.root)
            assert p.leaf_hash == merkle.leaf_hash(entries[i].data)
            merkle.verify_inclusion(p.leaf_hash, i, cp.size, p.proof, cp.root)
    latest = log.inclusion_proof(3)
    assert latest is not None
    assert latest.size == 70
    assert log.inclusion_proof(70) is None
    assert log.inclusion_proof(20, 10) is None
    # any size up to the log's, not only issued ones
    p = log.inclusion_proof(5, 13)
    assert p is not None
    assert p.root == merkle.root_from_leaf_hashes([merkle.leaf_hash(e.data) for e in entries[:13]])


@pytest.mark.parametrize(
    "call",
    [
        lambda log: log.entry(-1),
        lambda log: log.inclusion_proof(-1),
        lambda log: log.inclusion_proof(0, 0),
        lambda log: log.inclusion_proof(0, 4),
        lambda log: log.consistency_proof(-1, 2),
        lambda log: log.consistency_proof(2, 1),
        lambda log: log.consistency_proof(1, 4),
        lambda log: log.tile(-1, 0),
        lambda log: log.tile(0, -1),
        lambda log: log.tile(0, 0, 0),
        lambda log: log.tile(0, 0, 257),
        lambda log: log.entries_tile(0, 300),
        lambda log: log.lookup("not-a-hash"),
        lambda log: log.lookup("e" * 32),
    ],
)
def test_reads_reject_bad_arguments(log: TransparencyLog, call: object) -> None:
    log.append([entry(i) for i in range(3)])
    with pytest.raises(FormatError):
        call(log)  # type: ignore[operator]


@pytest.mark.parametrize(
    "bad",
    [
        LogEntry(data=b"\xff", dedupe_key="k"),
        LogEntry(data=b"x" * (tiles.MAX_ENTRY_BYTES + 1), dedupe_key="k"),
        LogEntry(data=b"{}", dedupe_key=""),
        LogEntry(data=b"{}", dedupe_key="k", store_hashes=("short",)),
    ],
)
def test_append_rejects_malformed_entries_and_appends_nothing(log: TransparencyLog, bad: LogEntry) -> None:
    with pytest.raises(FormatError):
        log.append([entry(0), bad])
    with pytest.raises(FormatError):
        Sequencer(log).append([bad])
    assert log.latest().size == 0


def test_tiles_are_the_stored_hashes(log: TransparencyLog) -> None:
    entries = [entry(i) for i in range(600)]
    log.append(entries[:300])
    log.append(entries[300:])
    leaf_hashes = [merkle.leaf_hash(e.data) for e in entries]
    assert log.tile(0, 0) == b"".join(leaf_hashes[:256])
    assert log.tile(0, 1) == b"".join(leaf_hashes[256:512])
    assert log.tile(0, 2, 88) == b"".join(leaf_hashes[512:600])
    assert log.tile(0, 2) is None
    assert log.tile(0, 2, 89) is None
    roots = [merkle.root_from_leaf_hashes(leaf_hashes[k * 256 : (k + 1) * 256]) for k in range(2)]
    assert log.tile(1, 0, 2) == b"".join(roots)
    assert log.tile(1, 0, 3) is None
    assert log.tile(2, 0, 1) is None
    bundle = log.entries_tile(1)
    assert bundle is not None
    got, pos = [], 0
    while pos < len(bundle):
        n = int.from_bytes(bundle[pos : pos + 2], "big")
        got.append(bundle[pos + 2 : pos + 2 + n])
        pos += 2 + n
    assert got == [e.data for e in entries[256:512]]
    assert log.entries_tile(2, 88) is not None
    assert log.entries_tile(2, 89) is None


def test_lookup_returns_every_entry_of_a_build_proven_at_one_checkpoint(log: TransparencyLog) -> None:
    log.append([entry(i) for i in range(10, 30)])
    build = [entry(100, build=7), entry(101, build=7, event="attestation")]
    log.append([*build, entry(102)])
    log.append([entry(i) for i in range(200, 233)])
    revoked = entry(103, build=7, event="revocation")
    log.append([revoked])
    result = log.lookup(store_hash(7))
    head = log.latest()
    assert result.checkpoint == head
    assert not result.truncated
    assert [e.index for e in result.entries] == [20, 21, 56]
    assert [e.data for e in result.entries] == [build[0].data, build[1].data, revoked.data]
    for e in result.entries:
        merkle.verify_inclusion(merkle.leaf_hash(e.data), e.index, head.size, e.proof, head.root)
    assert log.lookup(store_hash(12345)).entries == ()


def test_an_entry_may_index_several_builds(log: TransparencyLog) -> None:
    a, b = store_hash(1), store_hash(2)
    log.append([LogEntry(data=b'{"both":1}', dedupe_key="both", store_hashes=(a, b, a))])
    assert [e.index for e in log.lookup(a).entries] == [0]
    assert [e.index for e in log.lookup(b).entries] == [0]


def test_checkpoint_time_never_goes_backwards(database: Database) -> None:
    clock = Clock()
    log = open_log(database, clock)
    log.append([entry(0)])
    before = log.latest().timestamp_ms
    clock.ms -= 10_000
    log.append([entry(1)])
    assert log.latest().timestamp_ms == before


def test_sequencer_batches_concurrent_appends_from_threads(log: TransparencyLog) -> None:
    seq = Sequencer(log, max_batch=16)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for k in range(10):
                # every thread also appends one shared event: it is logged once
                got = seq.append([entry(1000 * t + k), entry(0)])
                results.setdefault(t, []).extend(got)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    head = log.latest()
    assert head.size == 8 * 10 + 1
    own = sorted(i for got in results.values() for i in got[0::2])
    assert own == sorted(set(own))
    assert len(own) == 80
    assert {i for got in results.values() for i in got[1::2]} == {log.lookup(store_hash(0)).entries[0].index}
    for n, got in results.items():
        for k, i in enumerate(got[0::2]):
            assert log.entry(i) == entry(1000 * n + k).data
    for cp in all_checkpoints(log):
        merkle.verify_consistency(
            cp.size, head.size, log.consistency_proof(cp.size, head.size).proof, cp.root, head.root
        )


def test_sequencer_reports_a_failed_batch_to_its_callers(database: Database) -> None:
    log = open_log(database)
    seq = Sequencer(log)
    database.close()
    with database.transaction() as tx:
        tx.execute("DROP TABLE log_store_index")
    with pytest.raises(Exception, match="database error"):
        seq.append([entry(1)])
    assert log.latest().size == 0


def test_independent_handles_append_without_losing_or_duplicating(
    database: Database, database_url: tuple[str, str | None]
) -> None:
    open_log(database)
    url, schema = database_url
    handles = [open_database(url, schema=schema) for _ in range(3)]
    logs = [open_log(h) for h in handles]
    got: list[list[int]] = [[] for _ in logs]

    def worker(n: int) -> None:
        for k in range(15):
            got[n].extend(logs[n].append([entry(100 * n + k), entry(9999)]))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for h in handles:
        h.close()
    own = [i for g in got for i in g[0::2]]
    assert sorted(own) == sorted(set(own))
    assert len(own) == 45
    assert len({i for g in got for i in g[1::2]}) == 1
    log = open_log(database)
    assert log.latest().size == 46


def test_a_damaged_store_is_reported_not_papered_over(database: Database) -> None:
    log = open_log(database)
    log.append([entry(i) for i in range(300)])
    with database.transaction() as tx:
        tx.execute("DELETE FROM log_nodes WHERE node = ?", (6,))  # leaf hash 3
        tx.execute("DELETE FROM log_leaves WHERE idx = ?", (299,))
    with pytest.raises(StorageError, match=r"tree node \(0, 3\) is not stored"):
        log.inclusion_proof(3)
    with pytest.raises(StorageError, match="tile 0/0 has 255 of 256"):
        log.tile(0, 0)
    with pytest.raises(StorageError, match="entry bundle 1 has 43 of 44"):
        log.entries_tile(1, 44)
    with pytest.raises(StorageError, match="do not match the checkpoint"):
        log.append([entry(1000)])
    assert log.latest().size == 300
    with database.transaction() as tx:
        tx.execute("UPDATE log_nodes SET hash = ? WHERE node = ?", (b"\x00" * 32, 255))  # node (8, 0)
    with pytest.raises(StorageError, match="does not reproduce checkpoint 300"):
        open_log(database)


def test_lookup_is_bounded_and_says_so(log: TransparencyLog) -> None:
    sh = store_hash(42)
    big = b'{"pad":"' + b"x" * (tiles.MAX_ENTRY_BYTES - 20) + b'"}'
    n = MAX_LOOKUP_BYTES // len(big) + 2
    log.append([LogEntry(data=big, dedupe_key=f"big:{i}", store_hashes=(sh,)) for i in range(n)])
    found = log.lookup(sh)
    assert found.truncated
    assert 0 < len(found.entries) < n
    assert sum(len(e.data) for e in found.entries) <= MAX_LOOKUP_BYTES
    assert [e.index for e in found.entries] == list(range(len(found.entries)))
    many = store_hash(43)
    log.append([LogEntry(data=b"{}", dedupe_key=f"small:{i}", store_hashes=(many,)) for i in range(1001)])
    found = log.lookup(many)
    assert found.truncated
    assert len(found.entries) == 1000


def test_sequencer_commits_each_call_whole(log: TransparencyLog) -> None:
    seq = Sequencer(log, max_batch=4)
    calls: list[list[int]] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for k in range(6):
            n = 5 if k == 0 else 3  # the first call is larger than max_batch
            got = seq.append([entry(10_000 * t + 10 * k + j) for j in range(n)])
            with lock:
                calls.append(got)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sizes = {cp.size for cp in all_checkpoints(log)}
    assert len(calls) == 36
    for got in calls:
        # no checkpoint falls inside a call: its entries committed in one transaction
        assert not any(min(got) < s <= max(got) for s in sizes)
    assert sorted(i for got in calls for i in got) == list(range(6 * (5 + 5 * 3)))
    assert seq.append([]) == []


def test_promotions_and_revocations_are_never_crowded_out(log: TransparencyLog) -> None:
    """Issue 14: thousands of attestations of one path must not hide its promotion or revocation."""
    sh = store_hash(44)
    log.append([entry(0, build=44, event="promotion")])
    log.append([entry(10 + i, build=44, event="attestation") for i in range(MAX_LOOKUP_ENTRIES + 50)])
    log.append([entry(1, build=44, event="revocation")])
    found = log.lookup(sh)
    assert found.truncated
    events = [json.loads(e.data)["event"] for e in found.entries]
    assert events.count("promotion") == 1
    assert events.count("revocation") == 1
    revocation = MAX_LOOKUP_ENTRIES + 51
    assert found.entries[-1].index == revocation
    assert [e.index for e in found.entries] == sorted(e.index for e in found.entries)
    assert found.events is not None
    assert found.events.indexes == (0, revocation)
    cp = found.checkpoint
    message = tlog.events_message(sh, cp.size, cp.root, [0, revocation])
    assert is_valid_signature(STH_KEY.public, message, found.events.signature)
    for e in found.entries:
        merkle.verify_inclusion(merkle.leaf_hash(e.data), e.index, cp.size, e.proof, cp.root)


def test_too_many_events_give_no_statement(log: TransparencyLog) -> None:
    log.append([entry(i, build=45) for i in range(MAX_LOOKUP_EVENTS + 1)])
    found = log.lookup(store_hash(45))
    assert found.events is None
    assert found.truncated
    assert len(found.entries) == MAX_LOOKUP_EVENTS + 1  # returned, but without a statement


def test_events_logged_before_the_index_existed_are_indexed_at_open(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 2 adds the event index; a log written before it is backfilled once, in ranges."""
    monkeypatch.setattr(log_module, "_BACKFILL_BATCH", 2)
    log = open_log(database)
    a, b = store_hash(46), store_hash(47)
    revocation = b'{"v":1,"event":"revocation","storePath":"/nix/store/x","reason":"r","at":1}'
    log.append(
        [
            entry(0, build=46),
            entry(1, build=46, event="attestation"),
            entry(2, build=46, event="attestation"),
            LogEntry(data=revocation, dedupe_key="both", store_hashes=(a, b)),  # index 3, two builds
            entry(4, build=47),
        ]
    )
    with database.transaction() as tx:
        tx.execute("DELETE FROM log_event_index")
        tx.execute("INSERT INTO log_event_backfill (pending) VALUES (1)")
    first = open_log(database).lookup(a).events
    assert first is not None
    assert first.indexes == (0, 3)
    reopened = open_log(database)  # the backfill ran once: nothing is indexed twice
    assert [reopened.lookup(h).events.indexes for h in (a, b)] == [(0, 3), (3, 4)]  # type: ignore[union-attr]
