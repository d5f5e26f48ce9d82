"""An owner's namespace: list, delete, and the orphan sweep (issue 12), on both database backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.cachekit import Harness, Output
from vega.core.cacheapi import DeleteResult, NamespaceListing
from vega.server.db import Database

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def h(database: Database, tmp_path: Path) -> Harness:
    return Harness(database, tmp_path)


def auth(credential: str) -> dict[str, str]:
    return {"authorization": f"Bearer {credential}"}


def pushed(h: Harness, credential: str, *names: str) -> list[Output]:
    outs = [Output(name, f"contents of {name}\n".encode() * 20) for name in names]
    for out in outs:
        h.upload(credential, out)
        assert h.push(credential, out.body()).status_code == 200
    return outs


def test_list_pages_through_the_callers_namespace_only(h: Harness) -> None:
    credential = h.owner_credential()
    outs = pushed(h, credential, "a", "b", "c")
    # a CI build lands in its repository's tenant, not in the owner's namespace
    ci = Output("ci-only", b"ci build\n")
    token = h.ci_token()
    h.upload(token, ci)
    assert h.attest(token, ci.body()).status_code == 200

    first = h.client.get("/api/cache/namespace?limit=2", headers=auth(credential))
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    page = NamespaceListing.from_json(first.json())
    assert page.namespace == "owner:1000001"
    assert len(page.entries) == 2
    assert page.next == page.entries[-1].hash
    rest = NamespaceListing.from_json(
        h.client.get(f"/api/cache/namespace?after={page.next}", headers=auth(credential)).json()
    )
    assert rest.next is None
    listed = [*page.entries, *rest.entries]
    assert sorted(e.store_path for e in listed) == sorted(o.store_path for o in outs)
    by_path = {e.store_path: e for e in listed}
    for out in outs:
        assert by_path[out.store_path].nar_size == len(out.nar)
        assert by_path[out.store_path].file_size == len(out.compressed)
        assert by_path[out.store_path].pushed_at_ms == h.clock.ms


@pytest.mark.parametrize(
    ("query", "status"),
    [("limit=0", 400), ("limit=1001", 400), ("limit=x", 400), ("after=nothash", 400)],
)
def test_list_refuses_bad_queries(h: Harness, query: str, status: int) -> None:
    credential = h.owner_credential()
    r = h.client.get(f"/api/cache/namespace?{query}", headers=auth(credential))
    assert r.status_code == status
    assert "error" in r.json()


def test_list_and_delete_need_an_owner_credential(h: Harness) -> None:
    assert h.client.get("/api/cache/namespace").status_code == 401
    assert h.client.get("/api/cache/namespace", headers=auth(h.ci_token())).status_code == 401
    assert h.client.post("/api/cache/delete", json={"hashes": ["0" * 32]}).status_code == 401
    r = h.client.post("/api/cache/delete", headers=auth(h.ci_token()), json={"hashes": ["0" * 32]})
    assert r.status_code == 401


def test_delete_stops_serving_from_the_namespace_only(h: Harness) -> None:
    credential = h.owner_credential()
    keep, gone = pushed(h, credential, "keep", "gone")
    base = "/tenant/owner:1000001"
    assert h.client.get(f"{base}/{gone.hash_part}.narinfo").status_code == 200
    log_size = h.client.get("/log/sth").json()["size"]

    body = {"hashes": [gone.hash_part, "0" * 32, gone.hash_part]}
    r = h.client.post("/api/cache/delete", headers=auth(credential), json=body)
    assert r.status_code == 200, r.text
    assert DeleteResult.from_json(r.json()) == DeleteResult((gone.hash_part,), ("0" * 32,))
    again = h.client.post("/api/cache/delete", headers=auth(credential), json=body)
    assert DeleteResult.from_json(again.json()) == DeleteResult((), (gone.hash_part, "0" * 32))

    assert h.client.get(f"{base}/{gone.hash_part}.narinfo").status_code == 404
    assert h.client.get(f"{base}/{keep.hash_part}.narinfo").status_code == 200
    assert h.client.get("/log/sth").json()["size"] == log_size  # the log is append-only


@pytest.mark.parametrize(
    "body",
    [{}, {"hashes": []}, {"hashes": "x"}, {"hashes": ["short"]}, {"hashes": ["0" * 32] * 1001}, []],
)
def test_delete_refuses_bad_bodies(h: Harness, body: object) -> None:
    credential = h.owner_credential()
    r = h.client.post("/api/cache/delete", headers=auth(credential), json=body)
    assert r.status_code == 400
    assert "hashes" in r.json()["error"] or "object" in r.json()["error"]


def test_orphan_sweep_removes_only_what_nothing_needs(h: Harness) -> None:
    credential = h.owner_credential()
    deleted, served = pushed(h, credential, "deleted", "served")
    never_attested = Output("never", b"uploaded, never attested\n")
    h.upload(credential, never_attested)
    ci = Output("ci", b"a CI build\n")
    token = h.ci_token()
    h.upload(token, ci)
    assert h.attest(token, ci.body()).status_code == 200
    # the CI build loses its tenant narinfo: it is still CI evidence, so it stays
    with h.app.state.service.store.write() as tx:
        h.app.state.service.store.delete_narinfo(tx, "alice/hello", ci.hash_part)
    r = h.client.post("/api/cache/delete", headers=auth(credential), json={"hashes": [deleted.hash_part]})
    assert r.status_code == 200

    service = h.app.state.service
    assert service.collect_orphans(retention_ms=DAY_MS) == 0  # nothing is old enough yet
    h.clock.ms += DAY_MS + 1
    assert service.collect_orphans(retention_ms=DAY_MS) == 2
    assert h.blobs.size(deleted.nar_url) is None
    assert h.blobs.size(never_attested.nar_url) is None
    assert h.blobs.size(served.nar_url) == len(served.compressed)
    assert h.blobs.size(ci.nar_url) == len(ci.compressed)
    assert h.client.get(f"/tenant/owner:1000001/{served.hash_part}.narinfo").status_code == 200
    assert service.collect_orphans(retention_ms=DAY_MS) == 0  # idempotent

    # a removed object can be uploaded and pushed again
    h.upload(credential, deleted)
    assert h.push(credential, deleted.body()).status_code == 200
    assert h.client.get(f"/tenant/owner:1000001/{deleted.hash_part}.narinfo").status_code == 200


def test_the_sweep_rechecks_each_object_before_removing_it(h: Harness) -> None:
    credential = h.owner_credential()
    out = Output("late", b"pushed between the listing and the removal\n")
    h.upload(credential, out)
    h.clock.ms += DAY_MS + 1
    service = h.app.state.service
    store = service.store
    listed = store.orphan_objects

    def list_then_push(tx: object, cutoff: int, limit: int) -> list[str]:
        keys: list[str] = listed(tx, cutoff, limit)
        assert keys == [out.nar_url]
        assert h.push(credential, out.body()).status_code == 200  # needed again before the removal
        return keys

    store.orphan_objects = list_then_push
    try:
        assert service.collect_orphans(retention_ms=DAY_MS) == 0
    finally:
        del store.orphan_objects
    assert h.blobs.size(out.nar_url) == len(out.compressed)
