"""Trust edges and personal views on both database backends (protocol.md §3, §4.7, §4.8; issue 8)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.server.cachekit import Harness, Output
from vega.core.narinfo import fingerprint, parse_narinfo
from vega.core.signing import is_valid_signature, parse_public_key
from vega.server.db import Database
from vega.server.views import RedactViewTokens

BOB = "2000002"
CAROL = "3000003"


@pytest.fixture
def h(database: Database, tmp_path: Path) -> Harness:
    return Harness(database, tmp_path)


def auth(credential: str) -> dict[str, str]:
    return {"authorization": f"Bearer {credential}"}


def credential_of(h: Harness, user_id: str, login: str) -> str:
    return h.auth._credentials.issue(user_id, login)[0]


def view_of(h: Harness, credential: str, **body: Any) -> dict[str, Any]:
    r = h.client.post("/api/view/token", headers=auth(credential), json=body or None)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    out: dict[str, Any] = r.json()
    return out


def pushed(h: Harness, credential: str, out: Output) -> None:
    h.upload(credential, out)
    r = h.push(credential, out.body())
    assert r.status_code == 200, r.text


def trust(
    h: Harness, credential: str, builder: str, scope: dict[str, Any] | None = None, **extra: Any
) -> None:
    r = h.client.post(
        "/api/trust",
        headers=auth(credential),
        json={"builder": builder, "scope": scope or {"kind": "all"}, **extra},
    )
    assert r.status_code == 200, r.text


def untrust(h: Harness, credential: str, builder: str, scope: dict[str, Any] | None = None) -> None:
    r = h.client.post(
        "/api/trust/revoke",
        headers=auth(credential),
        json={"builder": builder, "scope": scope or {"kind": "all"}},
    )
    assert r.status_code == 200, r.text


def test_view_serves_a_trusted_builders_push_signed_with_the_view_key(h: Harness) -> None:
    alice = h.owner_credential()
    bob = credential_of(h, BOB, "bob")
    out = Output("hello", b"bob's hello\n" * 10)
    pushed(h, bob, out)
    view = view_of(h, alice)
    base = view["substituter"]
    assert view["publicKey"].startswith("vega-view-1000001-1:")
    assert view["sharedKey"] == h.client.get("/api/info").json()["sharedKey"]

    assert h.client.get(f"{base}/nix-cache-info").status_code == 200
    assert h.client.get(f"{base}/key").json() == {"publicKey": view["publicKey"]}
    before = h.client.get(f"{base}/{out.hash_part}.narinfo")
    assert before.status_code == 404
    assert before.json() == {"error": "not found"}

    trust(h, alice, BOB)
    r = h.client.get(f"{base}/{out.hash_part}.narinfo")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, max-age=30"
    info = parse_narinfo(r.text)
    assert [s.split(":")[0] for s in info.sigs] == ["vega-view-1000001-1"]
    key = parse_public_key(view["publicKey"])
    assert is_valid_signature(key, fingerprint(info).encode(), info.sigs[0])
    nar = h.client.get(f"{base}/{info.url}")
    assert nar.status_code == 200
    assert nar.content == out.compressed
    assert h.client.head(f"{base}/{info.url}").status_code == 200

    untrust(h, alice, BOB)
    assert h.client.get(f"{base}/{out.hash_part}.narinfo").status_code == 404


def test_edges_are_per_consumer_and_idempotent_with_history(h: Harness) -> None:
    alice = h.owner_credential()
    carol = credential_of(h, CAROL, "carol")
    trust(h, alice, BOB)
    trust(h, alice, BOB)  # idempotent
    h.clock.ms += 1
    trust(h, alice, BOB, {"kind": "flake", "name": "Bob/App"}, acceptUnreproducible=True)
    h.clock.ms += 1
    untrust(h, alice, BOB)
    untrust(h, alice, BOB)  # idempotent
    untrust(h, alice, CAROL)  # revoking what never existed is fine
    h.clock.ms += 1
    trust(h, alice, BOB)  # re-added: a new generation
    edges = h.client.get("/api/trust", headers=auth(alice)).json()["edges"]
    assert [(e["builder"], e["scope"], e.get("acceptUnreproducible"), "revokedAt" in e) for e in edges] == [
        (BOB, {"kind": "all"}, None, True),
        (BOB, {"kind": "flake", "name": "bob/app"}, True, False),
        (BOB, {"kind": "all"}, None, False),
    ]
    assert h.client.get("/api/trust", headers=auth(carol)).json() == {"edges": []}


@pytest.mark.parametrize(
    "body",
    [
        {"builder": "bob", "scope": {"kind": "all"}},
        {"builder": BOB, "scope": {"kind": "flake", "name": "nope"}},
        {"builder": BOB, "scope": {"kind": "all"}, "acceptUnreproducible": 1},
        {"builder": BOB},
        [],
    ],
)
def test_bad_trust_requests(h: Harness, body: object) -> None:
    r = h.client.post("/api/trust", headers=auth(h.owner_credential()), json=body)
    assert r.status_code == 400
    assert "error" in r.json()


def test_trust_and_view_need_an_owner_credential(h: Harness) -> None:
    ci = h.ci_token()
    for method, path in [
        ("POST", "/api/trust"),
        ("POST", "/api/trust/revoke"),
        ("GET", "/api/trust"),
        ("POST", "/api/view/token"),
    ]:
        assert h.client.request(method, path).status_code == 401
        assert h.client.request(method, path, headers=auth(ci)).status_code == 401


def test_rotation_kills_the_old_token_at_once(h: Harness) -> None:
    alice = h.owner_credential()
    first = view_of(h, alice)
    assert view_of(h, alice) == first  # stable until rotated
    rotated = view_of(h, alice, rotate=True)
    assert rotated["token"] != first["token"]
    assert rotated["publicKey"] == first["publicKey"]  # the key is the consumer's, not the token's
    assert h.client.get(f"{first['substituter']}/nix-cache-info").status_code == 404
    assert h.client.get(f"{rotated['substituter']}/nix-cache-info").status_code == 200
    bad = h.client.post("/api/view/token", headers=auth(alice), json={"rotate": "yes"})
    assert bad.status_code == 400


def test_an_unknown_token_answers_exactly_like_an_absent_path(h: Harness) -> None:
    alice = h.owner_credential()
    base = view_of(h, alice)["substituter"]
    absent = h.client.get(f"{base}/{'0' * 32}.narinfo")
    forged = "A" * 43
    for path in [
        f"/u/{forged}/{'0' * 32}.narinfo",
        f"/u/{forged}/nix-cache-info",
        f"/u/{forged}/key",
        f"/u/{forged}/nar/{'0' * 52}.nar.zst",
        "/u/short/nix-cache-info",
        "/u/",
    ]:
        r = h.client.get(path)
        assert (r.status_code, r.content, r.headers["cache-control"]) == (
            absent.status_code,
            absent.content,
            absent.headers["cache-control"],
        ), path


@pytest.mark.parametrize(
    "tail",
    [
        "../api/info",
        "..%2F..%2Fapi%2Finfo",
        "%2e%2e/nix-cache-info",
        "nar/../../api/info",
        "nar/..%2F..%2Fkey",
        "tenant/owner:1000001/key",
        "x.narinfo",
    ],
)
def test_view_paths_cannot_traverse(h: Harness, tail: str) -> None:
    base = view_of(h, h.owner_credential())["substituter"]
    r = h.client.get(f"{base}/{tail}")
    assert r.status_code == 404, r.text
    assert r.json() == {"error": "not found"}


def test_view_serves_the_shared_tier_as_signed(h: Harness) -> None:
    alice = h.owner_credential()
    out = Output("shared-thing", b"promoted\n" * 8)
    for repo, owner in [("alice/a", "11"), ("bob/b", "12")]:
        token = h.ci_token(repo, owner_id=owner, run_id=owner)
        h.upload(token, out)
        assert h.attest(token, out.body(attr="packages.x86_64-linux.default")).status_code == 200
    repro = h.ci_token("vega-org/vega", owner_id="99", run_id="77", reproducer=True)
    assert h.attest(repro, out.body(attr="packages.x86_64-linux.default")).status_code == 200
    shared = h.client.get(f"/{out.hash_part}.narinfo")
    assert shared.status_code == 200, shared.text
    base = view_of(h, alice)["substituter"]
    r = h.client.get(f"{base}/{out.hash_part}.narinfo")
    assert r.text == shared.text


def test_conflict_is_not_served_and_the_view_says_why(h: Harness) -> None:
    alice = h.owner_credential()
    a = Output("clash", b"one\n")
    b = Output("clash", b"two\n")  # same store path, another output
    pushed(h, credential_of(h, BOB, "bob"), a)
    pushed(h, credential_of(h, CAROL, "carol"), b)
    trust(h, alice, BOB)
    base = view_of(h, alice)["substituter"]
    assert h.client.get(f"{base}/{a.hash_part}.narinfo").status_code == 200
    trust(h, alice, CAROL)
    r = h.client.get(f"{base}/{a.hash_part}.narinfo")
    assert r.status_code == 404
    assert "disagree" in r.json()["reason"]


def test_flake_scope_admits_only_that_repositorys_ci_builds(h: Harness) -> None:
    alice = h.owner_credential()
    app, other = Output("app", b"app\n"), Output("other", b"other\n")
    for out, repo, run in [(app, "bob/app", "31"), (other, "bob/other", "32")]:
        token = h.ci_token(repo, owner_id=BOB, run_id=run)
        h.upload(token, out)
        assert h.attest(token, out.body(attr="default")).status_code == 200
    trust(h, alice, BOB, {"kind": "flake", "name": "bob/app"})
    base = view_of(h, alice)["substituter"]
    assert h.client.get(f"{base}/{app.hash_part}.narinfo").status_code == 200
    r = h.client.get(f"{base}/{other.hash_part}.narinfo")
    assert r.status_code == 404
    assert "scope" in r.json()["reason"]


def test_divergence_from_vegas_reproduction_is_withheld_unless_accepted(h: Harness) -> None:
    alice = h.owner_credential()
    built, repro = Output("div", b"builder's\n"), Output("div", b"reproduced\n")
    token = h.ci_token("bob/div", owner_id=BOB, run_id="5")
    h.upload(token, built)
    assert h.attest(token, built.body(attr="default")).status_code == 200
    r_token = h.ci_token("vega-org/vega", owner_id="99", run_id="6", reproducer=True)
    h.upload(r_token, repro)
    assert h.attest(r_token, repro.body(attr="default")).status_code == 200
    trust(h, alice, BOB)
    base = view_of(h, alice)["substituter"]
    r = h.client.get(f"{base}/{built.hash_part}.narinfo")
    assert r.status_code == 404
    assert "diverged" in r.json()["reason"]
    trust(h, alice, BOB, acceptUnreproducible=True)
    r = h.client.get(f"{base}/{built.hash_part}.narinfo")
    assert r.status_code == 200
    assert str(parse_narinfo(r.text).nar_hash) == built.body()["narHash"]


def test_access_log_never_carries_a_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/u/SECRETTOKENSECRETTOKENSECRETTOKEN1234/abc.narinfo", "1.1", 200),
        None,
    )
    assert RedactViewTokens().filter(record)
    assert "SECRET" not in record.getMessage()
    assert "/u/<redacted>/abc.narinfo" in record.getMessage()
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "GET /u/SECRETSECRET", None, None)
    RedactViewTokens().filter(plain)
    assert "SECRET" not in plain.getMessage()


def test_dev_users_api_speaks_githubs_shape_and_matches_ci_owner_ids(h: Harness) -> None:
    me = h.client.get("/api/v3/users/VEGA-DEV").json()
    assert (me["login"], me["id"], me["type"]) == ("vega-dev", 1000001, "User")
    bob = h.client.get("/api/v3/users/bob").json()
    assert isinstance(bob["id"], int)
    out = Output("from-bobs-ci", b"ci\n")
    token = h.ci_token("bob/app", run_id="41")  # owner id left to the issuer
    h.upload(token, out)
    assert h.attest(token, out.body(attr="default")).status_code == 200
    alice = h.owner_credential()
    trust(h, alice, str(bob["id"]))
    base = view_of(h, alice)["substituter"]
    assert h.client.get(f"{base}/{out.hash_part}.narinfo").status_code == 200
    missing = h.client.get("/api/v3/users/-bad-")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found"


def test_active_edges_are_bounded(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vega.server.views.MAX_ACTIVE_EDGES", 2)
    alice = h.owner_credential()
    trust(h, alice, "11")
    trust(h, alice, "12")
    trust(h, alice, "12")  # re-adding a known edge is fine at the limit
    r = h.client.post("/api/trust", headers=auth(alice), json={"builder": "13", "scope": {"kind": "all"}})
    assert r.status_code == 409
    assert "too many trust edges" in r.json()["error"]
    untrust(h, alice, "11")
    trust(h, alice, "13")


def test_package_and_org_scopes_on_the_server(h: Harness) -> None:
    alice = h.owner_credential()
    bob = credential_of(h, BOB, "bob")
    hello, curl = Output("hello", b"hello\n"), Output("curl", b"curl\n")
    pushed(h, bob, hello)
    pushed(h, bob, curl)
    acme_x, other_y = Output("acme-x", b"x\n"), Output("other-y", b"y\n")
    for out, repo, run in [(acme_x, "acme/x", "51"), (other_y, "other/y", "52")]:
        token = h.ci_token(repo, owner_id=BOB, run_id=run)
        h.upload(token, out)
        assert h.attest(token, out.body(attr="default")).status_code == 200
    base = view_of(h, alice)["substituter"]

    def served(out: Output) -> int:
        return int(h.client.get(f"{base}/{out.hash_part}.narinfo").status_code)

    trust(h, alice, BOB, {"kind": "package", "name": "hello"})
    assert [served(o) for o in (hello, curl, acme_x, other_y)] == [200, 404, 404, 404]
    assert h.client.head(f"{base}/{hello.hash_part}.narinfo").status_code == 200
    untrust(h, alice, BOB, {"kind": "package", "name": "hello"})
    trust(h, alice, BOB, {"kind": "org", "name": "ACME"})
    assert [served(o) for o in (hello, curl, acme_x, other_y)] == [404, 404, 200, 404]
