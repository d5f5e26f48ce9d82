"""The cache endpoints in process (protocol.md §3-§7), over both database backends, real dev identities.

Every write is sent twice: same answer, one log entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.server.cachekit import PUBLIC_URL, Harness, Output, nix32_sha256, store_hash
from vega.core.narinfo import fingerprint, parse_narinfo, verify_narinfo_signature
from vega.core.signing import parse_public_key, tenant_key
from vega.core.tlog import PromotionLeaf, leaf_binds_narinfo, parse_leaf
from vega.server.db import Database
from vega.server.store import Store


@pytest.fixture
def h(database: Database, tmp_path: Path) -> Harness:
    return Harness(database, tmp_path)


def verify_with(text: str, public: str) -> str:
    key = parse_public_key(public)
    return verify_narinfo_signature(parse_narinfo(text), {key.name: key})


def attest_ok(h: Harness, token: str, out: Output, **over: object) -> dict[str, object]:
    first = h.attest(token, out.body(**over))
    assert first.status_code == 200, first.text
    size = h.client.get("/log/sth").json()["size"]
    second = h.attest(token, out.body(**over))
    assert second.status_code == 200
    assert second.json() == first.json()
    assert h.client.get("/log/sth").json()["size"] == size
    result: dict[str, object] = first.json()
    return result


def test_read_paths_on_an_empty_cache(h: Harness) -> None:
    r = h.client.get("/nix-cache-info")
    assert r.status_code == 200
    assert r.text.startswith("StoreDir: /nix/store\n")
    assert "WantMassQuery: 1" in r.text
    assert h.client.get("/tenant/alice/hello/nix-cache-info").status_code == 200
    assert h.client.get("/tenant/owner:5/nix-cache-info").status_code == 200
    missing = h.client.get(f"/{store_hash('x')}.narinfo")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not found"}
    assert h.client.head(f"/{store_hash('x')}.narinfo").status_code == 404
    assert h.client.get("/nar/" + "0" * 52 + ".nar.zst").status_code == 404
    assert h.client.head("/nar/" + "0" * 52 + ".nar.zst").status_code == 404
    assert h.client.get("/nar/../../etc/passwd").status_code == 404
    assert h.client.get(f"/api/status/{store_hash('x')}").status_code == 404
    assert h.client.get("/api/status/nonsense").status_code == 404
    assert h.client.get("/healthz").text == "ok\n"
    assert h.client.get("/tenant/bad!/repo/key").status_code == 404
    assert h.client.get("/tenant/alice/../key").status_code == 404
    assert h.client.get("/tenant/alice/.github/key").json()["publicKey"].startswith("vega-alice-.github-1:")


def test_tenant_key_endpoints(h: Harness) -> None:
    r = h.client.get("/tenant/alice/hello/key")
    assert r.status_code == 200
    want = tenant_key(h.keys.shared, "alice/hello").public
    assert parse_public_key(r.json()["publicKey"]) == want
    assert r.json()["publicKey"].startswith("vega-alice-hello-1:")
    r = h.client.get("/tenant/owner:583231/key")
    assert r.json()["publicKey"].startswith("vega-owner-583231-1:")


def test_api_info(h: Harness) -> None:
    info = h.client.get("/api/info").json()
    assert info["sharedKey"] == "vega-cache-1:" + info["sharedKey"].split(":", 1)[1]
    assert parse_public_key(info["sharedKey"]) == h.keys.shared.public
    assert info["log"]["origin"] == "127.0.0.1:8321/log"
    assert info["log"]["publicKey"].startswith("127.0.0.1:8321/log+")
    assert info["github"]["url"] == PUBLIC_URL  # development mode is its own GitHub
    assert "repro-queue" in info["capabilities"]
    assert "dev-identity" in info["capabilities"]


def test_upload_url_and_put(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    token = h.ci_token()
    assert h.client.post("/api/cache/upload-url", json={}).status_code == 401
    bad = h.client.post(
        "/api/cache/upload-url", headers={"authorization": f"Bearer {token}"}, json={"narUrl": "x"}
    )
    assert bad.status_code == 400
    assert "narUrl" in bad.json()["error"]
    url = h.upload_url(token, out)
    assert url.startswith(f"{PUBLIC_URL}/api/cache/upload/{out.nar_url}?")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["21600"]
    assert query["X-Amz-Date"] == ["20260101T000000Z"]
    for _ in range(2):
        r = h.put(url, out.compressed)
        assert r.status_code == 200, r.text
    for base in ("", "/tenant/alice/hello", "/tenant/owner:1"):
        head = h.client.head(f"{base}/{out.nar_url}")
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(out.compressed))
    got = h.client.get(f"/{out.nar_url}")
    assert got.content == out.compressed
    assert got.headers["content-type"] == "application/x-nix-nar"
    assert "immutable" in got.headers["cache-control"]
    # an owner credential may presign too
    assert h.upload_url(h.owner_credential(), out).startswith(PUBLIC_URL)


def test_put_refuses_wrong_bytes_and_foreign_urls(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    url = h.upload_url(h.ci_token(), out)
    r = h.put(url, out.compressed, checksum=b"\0" * 32)
    assert r.status_code == 400
    assert "x-amz-checksum-sha256" in r.json()["error"]
    r = h.put(url, out.compressed[:-1] + b"\0")  # checksum of these bytes: not the URL's object
    assert r.status_code == 400
    wrong = h.put(url, b"other bytes", checksum=hashlib.sha256(out.compressed).digest())
    assert wrong.status_code == 422
    assert h.client.head(f"/{out.nar_url}").status_code == 404
    assert list((h.blobs.root / "tmp").iterdir()) == []
    tampered = url.replace("X-Vega-Signature=", "X-Vega-Signature=0")
    assert h.put(tampered, out.compressed).status_code == 403
    other = Output("other", b"other")
    swapped = url.replace(out.nar_url, other.nar_url)
    assert h.put(swapped, other.compressed).status_code == 403
    h.clock.ms += 21600 * 1000
    expired = h.put(url, out.compressed)
    assert expired.status_code == 403
    assert expired.json() == {"error": "upload URL expired"}


def test_attest_publishes_in_the_tenant_namespace(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100, references=[])
    token = h.ci_token("alice/hello")
    h.upload(token, out)
    result = attest_ok(h, token, out, attr="packages.x86_64-linux.default")
    assert result["publishedTenant"] is True
    assert result["publishedShared"] is False
    decision = result["decision"]
    assert isinstance(decision, dict)
    assert decision["shared"]["reason"] == "insufficient"
    r = h.client.get(f"/tenant/alice/hello/{out.hash_part}.narinfo")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/x-nix-narinfo")
    assert r.headers["cache-control"] == "public, max-age=60"
    key = h.client.get("/tenant/alice/hello/key").json()["publicKey"]
    assert verify_with(r.text, key) == "vega-alice-hello-1"
    assert h.client.get(f"/{out.hash_part}.narinfo").status_code == 404
    entries = h.log_entries()
    assert [e["event"] for e in entries] == ["attestation"]
    status = h.client.get(f"/api/status/{out.hash_part}").json()
    assert status == {
        "verdict": "uncorroborated",
        "agree": 1,
        "inSharedCache": False,
        "tenants": ["alice/hello"],
        "diverged": False,
    }


def test_a_repository_named_like_dot_github_attests(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    token = h.ci_token("alice/.github")
    h.upload(token, out)
    attest_ok(h, token, out)
    assert h.client.get(f"/tenant/alice/.github/{out.hash_part}.narinfo").status_code == 200
    status = h.client.get(f"/api/status/{out.hash_part}").json()
    assert status["tenants"] == []  # clients refuse such names (protocol.md §6.1), so none is listed


def test_a_lying_client_gets_nothing_signed(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    token = h.ci_token()
    assert h.attest(token, out.body()).status_code == 400  # not uploaded
    h.upload(token, out)
    lie = Output("hello", b"other nar")
    r = h.attest(token, out.body(narHash=lie.body()["narHash"]))
    assert r.status_code == 422
    assert r.json() == {"error": "narHash/narSize do not match the uploaded NAR"}
    r = h.attest(token, out.body(narSize=5))
    assert r.status_code == 422
    r = h.attest(token, out.body(fileSize=3))
    assert r.status_code == 422
    assert h.client.get(f"/tenant/alice/hello/{out.hash_part}.narinfo").status_code == 404
    assert h.log_entries() == []
    garbage = b"\x28\xb5\x2f\xfd not really zstd"
    key = f"nar/{nix32_sha256(garbage)[7:]}.nar.zst"
    h.blobs.put(key, garbage)
    r = h.attest(token, out.body(url=key, fileHash=nix32_sha256(garbage), fileSize=len(garbage)))
    assert r.status_code == 422
    assert "zstd" in r.json()["error"]


def test_promotion_needs_two_owners_and_a_reproduction(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    alice = h.ci_token("alice/hello", run_id="1")
    alice2 = h.ci_token("alice/other", run_id="2")
    h.upload(alice, out)
    attest_ok(h, alice, out, attr="default")
    second = attest_ok(h, alice2, out, attr="default")
    assert second["decision"]["shared"]["reason"] == "insufficient"  # type: ignore[index]
    repro = h.ci_token("vega-org/vega", run_id="3", reproducer=True)
    promoted = attest_ok(h, repro, out)
    assert promoted["publishedShared"] is True
    shared = promoted["decision"]["shared"]  # type: ignore[index]
    assert shared["reason"] == "agreement"
    assert shared["vegaReproductions"] == 1
    r = h.client.get(f"/{out.hash_part}.narinfo")
    assert r.status_code == 200
    assert verify_with(r.text, h.client.get("/api/info").json()["sharedKey"]) == "vega-cache-1"
    entries = h.log_entries()
    assert [e["event"] for e in entries] == ["attestation", "attestation", "attestation", "promotion"]
    leaf = parse_leaf(h.client.get("/log/entry/3").json()["data"])
    assert isinstance(leaf, PromotionLeaf)
    info = parse_narinfo(r.text)
    assert leaf_binds_narinfo(leaf, info.store_path.absolute, str(info.nar_hash), fingerprint(info))
    status = h.client.get(f"/api/status/{out.hash_part}").json()
    assert status["verdict"] == "reproducible"
    assert status["inSharedCache"] is True
    assert status["tenants"] == ["alice/hello", "alice/other", "vega-org/vega"]
    # a later builder still gets publishedShared for the promoted fingerprint
    bob = h.ci_token("bob/hello", run_id="4")
    assert attest_ok(h, bob, out)["publishedShared"] is True
    assert h.client.get(f"/api/status/{out.hash_part}").json()["agree"] == 4


def test_divergent_reproduction_blocks_promotion(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    other = Output("hello", b"different build " * 10)
    alice = h.ci_token("alice/hello", run_id="1")
    bob = h.ci_token("bob/hello", run_id="2")
    repro = h.ci_token("vega-org/vega", run_id="3", reproducer=True)
    h.upload(alice, out)
    h.upload(repro, other)
    attest_ok(h, alice, out)
    attest_ok(h, bob, out)
    result = attest_ok(h, repro, other)
    assert result["decision"]["shared"]["reason"] == "diverged"  # type: ignore[index]
    assert result["decision"]["diverged"] is True  # type: ignore[index]
    assert h.client.get(f"/{out.hash_part}.narinfo").status_code == 404
    assert h.client.get(f"/api/status/{out.hash_part}").json()["verdict"] == "diverged"


def test_settling_window_and_sweep(database: Database, tmp_path: Path) -> None:
    h = Harness(database, tmp_path, settling_s=60)
    out = Output("hello", b"nar bytes " * 100)
    alice = h.ci_token("alice/hello", run_id="1")
    repro = h.ci_token("vega-org/vega", run_id="3", reproducer=True)
    h.upload(alice, out)
    attest_ok(h, alice, out)
    result = attest_ok(h, repro, out)
    assert result["decision"]["shared"]["reason"] == "settling"  # type: ignore[index]
    assert result["publishedShared"] is False
    service = h.app.state.service
    assert service.sweep() == 0
    h.clock.ms += 60_000
    assert service.sweep() == 1
    assert service.sweep() == 0
    assert h.client.get(f"/{out.hash_part}.narinfo").status_code == 200
    assert [e["event"] for e in h.log_entries()][-1] == "promotion"


def test_push_publishes_in_the_owner_namespace(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    credential = h.owner_credential()
    h.upload(credential, out)
    first = h.push(credential, out.body())
    second = h.push(credential, out.body())
    assert first.status_code == 200, first.text
    assert first.json() == second.json()
    assert first.json() == {
        "published": True,
        "tenant": "owner:1000001",
        "substituter": "/tenant/owner:1000001",
    }
    r = h.client.get(f"/tenant/owner:1000001/{out.hash_part}.narinfo")
    key = h.client.get("/tenant/owner:1000001/key").json()["publicKey"]
    assert verify_with(r.text, key) == "vega-owner-1000001-1"
    assert h.client.get(f"/{out.hash_part}.narinfo").status_code == 404
    assert len(h.log_entries()) == 1
    # lanes are not interchangeable
    assert h.push(h.ci_token(), out.body()).status_code == 401
    assert h.attest(credential, out.body()).status_code == 401


@pytest.mark.parametrize(
    "make_token",
    [
        lambda h: "garbage",
        lambda h: h.ci_token(audience="https://elsewhere.example"),
        lambda h: h.ci_token() + "x",
    ],
    ids=["garbage", "wrong-audience", "bad-signature"],
)
def test_attest_auth_failures(h: Harness, make_token: object) -> None:
    out = Output("hello", b"nar bytes")
    token = make_token(h)  # type: ignore[operator]
    r = h.attest(token, out.body())
    assert r.status_code == 401
    assert "error" in r.json()
    assert h.client.post("/api/cache/attest", json=out.body()).json() == {"error": "missing bearer token"}


def test_expired_token_is_refused(h: Harness) -> None:
    token = h.ci_token()
    h.clock.ms += 3600 * 1000
    assert h.attest(token, Output("x", b"x").body()).status_code == 401


def test_reproduction_queue_and_dispatch_failures(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    dep = Output("dep", b"dependency")
    alice = h.ci_token("alice/hello", run_id="1", sha="b" * 40)
    h.upload(alice, out)
    h.upload(alice, dep)
    attest_ok(h, alice, dep)  # closure dependency: no attr, not queued
    attest_ok(h, alice, out, attr="packages.x86_64-linux.default", dir="sub")
    queue = h.client.get("/api/repro/queue").json()["candidates"]
    assert queue == [
        {
            "hash": out.hash_part,
            "storePath": out.store_path,
            "narHash": out.body()["narHash"],
            "flakeRef": "github:alice/hello",
            "attr": "packages.x86_64-linux.default",
            "rev": "b" * 40,
            "dir": "sub",
            "since": h.clock.ms,
            "attempts": 0,
        }
    ]
    assert h.client.get("/api/repro/queue?limit=0").status_code == 400
    body = {"hash": out.hash_part, "reason": "build-failed"}
    denied = h.client.post(
        "/api/repro/dispatch-failed", headers={"authorization": f"Bearer {alice}"}, json=body
    )
    assert denied.status_code == 403
    for run in ("7", "8", "9"):
        repro = h.ci_token("vega-org/vega", run_id=run, reproducer=True)
        for _ in range(2):
            r = h.client.post(
                "/api/repro/dispatch-failed", headers={"authorization": f"Bearer {repro}"}, json=body
            )
            assert r.status_code == 200
        if run == "7":
            assert h.client.get("/api/repro/queue").json()["candidates"][0]["attempts"] == 1
    assert h.client.get("/api/repro/queue").json()["candidates"] == []  # backed off after 3 failures


def test_dispatch_failures_keep_the_diagnosis_and_excerpt(h: Harness) -> None:
    """changes-0.19.md: the class and a redacted excerpt are recorded; both stay optional."""
    out = Output("diagnosed", b"nar bytes " * 10)
    alice = h.ci_token("alice/hello", run_id="4", sha="b" * 40)
    h.upload(alice, out)
    attest_ok(h, alice, out, attr="packages.x86_64-linux.default")
    repro = h.ci_token("vega-org/vega", run_id="5", reproducer=True)
    auth = {"authorization": f"Bearer {repro}"}
    hash_part = out.hash_part
    old = {"hash": hash_part, "reason": "build-failed"}
    new = {"hash": hash_part, "reason": "unresolvable", "diagnosis": "eval", "excerpt": "error: no attr"}
    for body in (old, new):
        assert h.client.post("/api/repro/dispatch-failed", headers=auth, json=body).status_code == 200
    bad = {**old, "diagnosis": "bored"}
    assert h.client.post("/api/repro/dispatch-failed", headers=auth, json=bad).status_code == 400
    too_long = {**old, "excerpt": "x" * 2049}
    assert h.client.post("/api/repro/dispatch-failed", headers=auth, json=too_long).status_code == 400
    store = Store(h.db)
    with store.read() as tx:
        assert store.dispatch_failures(tx, hash_part) == [
            ("build-failed", None, None),
            ("unresolvable", "eval", "error: no attr"),
        ]


def test_unresolvable_retires_and_reproduction_dequeues(h: Harness) -> None:
    a = Output("a", b"a" * 50)
    b = Output("b", b"b" * 50)
    alice = h.ci_token("alice/hello", run_id="1")
    repro = h.ci_token("vega-org/vega", run_id="2", reproducer=True)
    for out in (a, b):
        h.upload(alice, out)
        attest_ok(h, alice, out, attr=out.name)
    assert len(h.client.get("/api/repro/queue").json()["candidates"]) == 2
    r = h.client.post(
        "/api/repro/dispatch-failed",
        headers={"authorization": f"Bearer {repro}"},
        json={"hash": a.hash_part, "reason": "unresolvable"},
    )
    assert r.status_code == 200
    attest_ok(h, repro, b)
    assert h.client.get("/api/repro/queue").json()["candidates"] == []


def test_revocation_withdraws_the_shared_narinfo(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    alice = h.ci_token("alice/hello", run_id="1")
    repro = h.ci_token("vega-org/vega", run_id="2", reproducer=True)
    h.upload(alice, out)
    attest_ok(h, alice, out)
    attest_ok(h, repro, out)
    service = h.app.state.service
    assert service.revoke(out.hash_part, "compromised builder") is True
    assert service.revoke(out.hash_part, "compromised builder") is False
    assert h.client.get(f"/{out.hash_part}.narinfo").status_code == 404
    events = [e["event"] for e in h.log_entries()]
    assert events == ["attestation", "attestation", "promotion", "revocation"]
    again = attest_ok(h, h.ci_token("bob/x", run_id="5"), out)
    assert again["decision"]["shared"]["reason"] == "revoked"  # type: ignore[index]
    assert again["publishedShared"] is False


def test_metrics(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    token = h.ci_token()
    h.upload(token, out)
    attest_ok(h, token, out)
    text = h.client.get("/metrics").text
    assert "vega_uploads_total 1" in text
    assert 'vega_attestations_total{lane="gh-actions"} 2' in text
    assert "vega_log_size 1" in text
    assert "vega_promotions 0" in text
    assert 'vega_http_requests_total{code="2xx",method="POST"}' in text


def test_json_body_limits(database: Database, tmp_path: Path) -> None:
    h = Harness(database, tmp_path, max_json_bytes=64)
    token = h.ci_token()
    r = h.attest(token, Output("x", b"x").body())
    assert r.status_code == 413
    r = h.client.post("/api/cache/attest", headers={"authorization": f"Bearer {token}"}, content=b"{not json")
    assert r.status_code == 400
