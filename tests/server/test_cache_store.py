"""The cache Store over every backend (one conformance suite): idempotent writes, reads, queue, counts."""

from __future__ import annotations

import threading

import pytest

from vega.core.promotion import AttestationRecord, BuildProvenance
from vega.server.db import Database
from vega.server.store import SHARED, AttestationRow, PromotionRecord, ReproRow, Store

H = "0" * 31 + "1"
H2 = "0" * 31 + "2"
KEY = "nar/" + "1" * 52 + ".nar.zst"


def row(
    attester: str, fp: str = "fp-a", *, at: int = 10, lane: str = "gh-actions", hash_part: str = H
) -> AttestationRow:
    return AttestationRow(
        record=AttestationRecord(
            attester_id=attester,
            tenant="alice/hello",
            lane=lane,  # type: ignore[arg-type]
            fingerprint=fp,
            is_trust_root=True,
            weight=1,
            sig="sub",
            attested_at_ms=at,
            provenance=BuildProvenance(
                flake_ref="github:alice/hello", attr="default", rev="a" * 40, dir="sub"
            ),
            continent="XX",
            owner_id="12",
        ),
        hash_part=hash_part,
        store_path=f"/nix/store/{hash_part}-x",
        nar_hash="sha256:" + "2" * 52,
        narinfo="StorePath: ...\n",
    )


@pytest.fixture
def store(database: Database) -> Store:
    s = Store(database)
    Store(database)  # migrations are idempotent
    return s


def test_objects(store: Store) -> None:
    with store.write() as tx:
        assert store.get_object(tx, KEY) is None
        store.put_object(tx, KEY, 10, 1)
        store.put_object(tx, KEY, 10, 2)
        store.set_object_nar(tx, KEY, "sha256:x", 20)
    with store.read() as tx:
        obj = store.get_object(tx, KEY)
    assert obj is not None
    assert (obj.size, obj.nar_hash, obj.nar_size) == (10, "sha256:x", 20)


def test_narinfos_per_namespace(store: Store) -> None:
    with store.write() as tx:
        store.put_narinfo(tx, "alice/hello", H, "one", "fp", KEY, 1)
        store.put_narinfo(tx, "alice/hello", H, "two", "fp", KEY, 2)  # replaced
        store.put_narinfo(tx, SHARED, H, "shared", "fp", KEY, 3)
        store.put_narinfo(tx, "owner:5", H, "owner", "fp", KEY, 3)
    with store.read() as tx:
        assert store.get_narinfo(tx, "alice/hello", H) == "two"
        assert store.get_narinfo(tx, "bob/x", H) is None
        assert store.namespaces_of(tx, H) == ["", "alice/hello", "owner:5"]
    with store.write() as tx:
        store.delete_narinfo(tx, SHARED, H)
    with store.read() as tx:
        assert store.get_narinfo(tx, SHARED, H) is None


def test_attestations_are_deduplicated_and_round_trip(store: Store) -> None:
    with store.lock_path(H) as tx:
        assert store.add_attestation(tx, row("r1", at=20)) is True
        assert store.add_attestation(tx, row("r1", at=99)) is False
        assert store.add_attestation(tx, row("r1", "fp-b", at=30)) is True
        assert store.add_attestation(tx, row("r0", at=5, lane="vega-repro")) is True
    with store.read() as tx:
        rows = store.attestations(tx, H)
    assert [(r.record.attester_id, r.record.fingerprint) for r in rows] == [
        ("r0", "fp-a"),
        ("r1", "fp-a"),
        ("r1", "fp-b"),
    ]
    assert rows[1] == row("r1", at=20)
    assert rows[0].record.lane == "vega-repro"
    with store.read() as tx:
        assert store.unpromoted(tx, 10) == [H]
        assert store.counts(tx).attestations == 3


def test_promotions_and_revocations(store: Store) -> None:
    p = PromotionRecord(
        hash_part=H,
        fingerprint="fp",
        store_path="/nix/store/x",
        nar_hash="n",
        agreed_since_ms=1,
        promoted_at_ms=2,
    )
    with store.lock_path(H) as tx:
        store.add_attestation(tx, row("r1"))
        assert store.add_promotion(tx, p) is True
        assert store.add_promotion(tx, p) is False
        assert store.get_promotion(tx, H) == p
        assert store.get_promotion(tx, H2) is None
        assert store.unpromoted(tx, 10) == []
        assert store.revoke(tx, H2, "why", 3) is True
        assert store.revoke(tx, H2, "why", 4) is False
        assert store.is_revoked(tx, H2)
        assert not store.is_revoked(tx, H)


def test_reproduction_queue(store: Store) -> None:
    def cand(h: str, at: int) -> ReproRow:
        return ReproRow(
            hash_part=h,
            store_path="/nix/store/x",
            nar_hash="n",
            flake_ref="github:a/b",
            attr="default",
            rev="a" * 40,
            dir=None,
            queued_at_ms=at,
            attempts=0,
        )

    with store.write() as tx:
        assert store.enqueue_repro(tx, cand(H2, 2)) is True
        assert store.enqueue_repro(tx, cand(H, 1)) is True
        assert store.enqueue_repro(tx, cand(H, 9)) is False
        assert [c.hash_part for c in store.repro_queue(tx, 10, 3)] == [H, H2]
        assert store.add_dispatch_failure(tx, H, "run1", "build-failed", 5) is True
        assert store.add_dispatch_failure(tx, H, "run1", "build-failed", 6) is False
        assert store.repro_queue(tx, 10, 3)[0].attempts == 1
        assert [c.hash_part for c in store.repro_queue(tx, 10, 1)] == [H2]
        store.retire_repro(tx, H2, "reproduced", 7)
        assert [c.hash_part for c in store.repro_queue(tx, 10, 3)] == [H]
        assert [c.hash_part for c in store.repro_queue(tx, 1, 3)] == [H]


def test_concurrent_writers_on_one_path_lose_nothing(store: Store) -> None:
    def work(i: int) -> None:
        for j in range(10):
            with store.lock_path(H) as tx:
                store.add_attestation(tx, row(f"r{i}-{j}"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.read() as tx:
        assert len(store.attestations(tx, H)) == 40


def test_a_long_fingerprint_is_stored_and_deduplicated(store: Store) -> None:
    """Issue 14: a 2,000-reference fingerprint exceeded PostgreSQL's B-tree entry limit."""
    long_fp = "1;" + ",".join(f"/nix/store/{'a' * 32}-dep-{k}" for k in range(2000))
    with store.write() as tx:
        assert store.add_attestation(tx, row("a", long_fp))
        assert not store.add_attestation(tx, row("a", long_fp))
        assert store.add_attestation(tx, row("a", long_fp + "x"))
    with store.read() as tx:
        assert [r.record.fingerprint for r in store.attestations(tx, H)] == [long_fp, long_fp + "x"]


def test_rows_copied_by_the_fpkey_migration_are_rekeyed_once(database: Database) -> None:
    """A version-2 row keeps its fingerprint as key; the next open gives it the bounded key."""
    store = Store(database)
    long_fp = "1;" + "b" * 500
    with store.write() as tx:
        assert store.add_attestation(tx, row("a", long_fp))
        tx.execute("UPDATE cache_attestations SET fingerprint_key = fingerprint")
        tx.execute("INSERT INTO cache_rekey_pending (pending) VALUES (1)")
    again = Store(database)
    with again.write() as tx:
        assert not again.add_attestation(tx, row("a", long_fp))  # found under its new key
    with again.read() as tx:
        assert len(again.attestations(tx, H)) == 1
