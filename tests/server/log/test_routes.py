"""The log's HTTP endpoints (protocol.md §5) through Starlette's TestClient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.server.log.conftest import NOTE_KEY, STH_KEY, entry, store_hash
from vega.core import merkle, note, tlog
from vega.core.signing import is_valid_signature
from vega.server.log.log import TransparencyLog
from vega.server.log.routes import IMMUTABLE, NO_CACHE, SHORT, log_routes


@pytest.fixture
def client(log: TransparencyLog) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=log_routes(log)), base_url="https://vega.test") as c:
        yield c


@pytest.fixture
def filled(log: TransparencyLog) -> TransparencyLog:
    log.append([entry(i) for i in range(300)])
    log.append([entry(1000, build=5), entry(1001, build=5, event="attestation")])
    return log


def test_sth_is_the_signed_json_of_the_latest_checkpoint(filled: TransparencyLog, client: TestClient) -> None:
    r = client.get("/log/sth")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == NO_CACHE
    sth = r.json()
    assert set(sth) == {"size", "rootHash", "timestamp", "signature"}
    assert sth["size"] == 302
    message = f"vega-sth:v1:{sth['size']}:{sth['rootHash']}:{sth['timestamp']}".encode()
    assert is_valid_signature(STH_KEY.public, message, sth["signature"])


def test_checkpoint_is_a_signed_note(filled: TransparencyLog, client: TestClient) -> None:
    r = client.get("/log/checkpoint")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    signed = note.open_note(r.content, [NOTE_KEY.verifier])
    assert signed.text.split("\n")[1] == "302"
    assert r.text == filled.latest().note


def test_entry_returns_the_exact_hashed_text(filled: TransparencyLog, client: TestClient) -> None:
    r = client.get("/log/entry/7")
    assert r.status_code == 200
    assert r.json() == {"index": 7, "data": entry(7).data.decode()}
    assert r.headers["cache-control"] == IMMUTABLE
    assert client.get("/log/entry/302").status_code == 404
    assert client.get("/log/entry/302").json() == {"error": "entry 302 is not in the log"}


def test_inclusion_proof_verifies_against_signed_root(filled: TransparencyLog, client: TestClient) -> None:
    sth = client.get("/log/sth").json()
    body = client.get("/log/proof/inclusion/41").json()
    assert set(body) == {"index", "size", "leafHashHex", "rootHex", "proofHex"}
    assert (body["index"], body["size"], body["rootHex"]) == (41, sth["size"], sth["rootHash"])
    assert body["leafHashHex"] == merkle.leaf_hash(entry(41).data).hex()
    proof = [bytes.fromhex(h) for h in body["proofHex"]]
    merkle.verify_inclusion(
        bytes.fromhex(body["leafHashHex"]), 41, sth["size"], proof, bytes.fromhex(sth["rootHash"])
    )


def test_inclusion_proof_at_the_size_the_client_holds(filled: TransparencyLog, client: TestClient) -> None:
    held = filled.checkpoint_at(300)
    assert held is not None
    r = client.get("/log/proof/inclusion/41?size=300")
    assert r.headers["cache-control"] == IMMUTABLE
    body = r.json()
    assert body["size"] == 300
    proof = [bytes.fromhex(h) for h in body["proofHex"]]
    merkle.verify_inclusion(merkle.leaf_hash(entry(41).data), 41, 300, proof, held.root)
    assert client.get("/log/proof/inclusion/300?size=300").status_code == 404
    assert client.get("/log/proof/inclusion/41?size=303").status_code == 400


def test_consistency_proof(filled: TransparencyLog, client: TestClient) -> None:
    old, new = filled.checkpoint_at(300), filled.latest()
    assert old is not None
    r = client.get("/log/proof/consistency?first=300&second=302")
    assert r.status_code == 200
    body = r.json()
    assert (body["first"], body["second"]) == (300, 302)
    merkle.verify_consistency(300, 302, [bytes.fromhex(h) for h in body["proofHex"]], old.root, new.root)
    assert client.get("/log/proof/consistency?first=0&second=302").json()["proofHex"] == []


def test_tiles(filled: TransparencyLog, client: TestClient) -> None:
    full = client.get("/log/tile/0/000")
    assert full.status_code == 200
    assert full.headers["content-type"] == "application/octet-stream"
    assert full.headers["cache-control"] == IMMUTABLE
    assert full.content == filled.tile(0, 0)
    assert len(full.content) == 256 * 32
    partial = client.get("/log/tile/0/001.p/46")
    assert partial.status_code == 200
    assert partial.headers["cache-control"] == SHORT
    assert partial.content == filled.tile(0, 1, 46)
    assert client.get("/log/tile/1/000.p/1").content == filled.tile(1, 0, 1)
    assert client.get("/log/tile/0/001").status_code == 404
    assert client.get("/log/tile/0/001.p/47").status_code == 404
    bundle = client.get("/log/tile/entries/000")
    assert bundle.headers["cache-control"] == IMMUTABLE
    assert bundle.content[2:].startswith(entry(0).data)
    assert client.get("/log/tile/entries/001.p/46").content == filled.entries_tile(1, 46)
    assert client.get("/log/tile/entries/x001/000").status_code == 404


def test_lookup_answers_one_build_in_one_request(filled: TransparencyLog, client: TestClient) -> None:
    r = client.get(f"/log/lookup/{store_hash(5)}")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"checkpoint", "sth", "entries", "truncated", "events"}
    signed = note.open_note(body["checkpoint"], [NOTE_KEY.verifier])
    size = int(signed.text.split("\n")[1])
    sth = body["sth"]
    assert sth["size"] == size
    root = bytes.fromhex(sth["rootHash"])
    # entry 5 of the first batch is also about build 5
    assert [e["index"] for e in body["entries"]] == [5, 300, 301]
    for e in body["entries"]:
        proof = [bytes.fromhex(h) for h in e["proofHex"]]
        merkle.verify_inclusion(merkle.leaf_hash(e["data"].encode()), e["index"], size, proof, root)
    # the signed statement lists every promotion (not the attestation at 301)
    assert body["events"]["indexes"] == [5, 300]
    message = tlog.events_message(store_hash(5), size, root, [5, 300])
    assert is_valid_signature(STH_KEY.public, message, body["events"]["signature"])
    unknown = client.get(f"/log/lookup/{store_hash(99999)}").json()
    assert unknown["entries"] == []
    assert unknown["events"]["indexes"] == []


@pytest.mark.parametrize(
    "url",
    [
        "/log/entry/-1",
        "/log/entry/abc",
        "/log/entry/01",
        "/log/entry/1e3",
        "/log/entry/" + "9" * 19,
        "/log/entry/%EF%BC%91",  # a fullwidth digit: str.isdigit would accept it
        "/log/proof/inclusion/x",
        "/log/proof/inclusion/1?size=-3",
        "/log/proof/inclusion/1?size=0",
        "/log/proof/consistency?first=1",
        "/log/proof/consistency?first=5&second=2",
        "/log/proof/consistency?first=1&second=99999",
        "/log/tile/0/0",
        "/log/tile/0/000.p/0",
        "/log/tile/0/000.p/256",
        "/log/tile/64/000",
        "/log/tile/00/000",
        "/log/tile/0/x000/x000/x000/x000/x000/x000/000",
        "/log/tile/blobs/000",
        "/log/lookup/short",
    ],
)
def test_bad_parameters_are_400(filled: TransparencyLog, client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 400, r.text
    assert set(json.loads(r.text)) == {"error"}


def test_every_endpoint_works_on_an_empty_log(client: TestClient) -> None:
    assert client.get("/log/sth").json()["size"] == 0
    assert client.get("/log/checkpoint").status_code == 200
    assert client.get("/log/entry/0").status_code == 404
    assert client.get("/log/proof/inclusion/0").status_code == 400
    assert client.get("/log/proof/consistency?first=0&second=0").json()["proofHex"] == []
    assert client.get("/log/tile/0/000.p/1").status_code == 404
    assert client.get(f"/log/lookup/{store_hash(1)}").json()["entries"] == []


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["tile/", "tile/entries/", "entry/", "proof/inclusion/", "lookup/"]),
    text=st.text(max_size=40),
)
def test_arbitrary_paths_get_400_or_404_never_500(
    filled: TransparencyLog, client: TestClient, kind: str, text: str
) -> None:
    r = client.get("/log/" + kind + quote(text, safe="/."))
    assert r.status_code in (200, 400, 404, 405), r.text
    if r.status_code in (400, 404) and r.headers["content-type"] == "application/json":
        assert set(r.json()) == {"error"}
