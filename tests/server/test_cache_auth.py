"""Every auth failure of issue 4, at the cache endpoints (the real identity code, dev-mode issuer)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.server.cachekit import Harness, Output
from vega.core.signing import generate_secret_key
from vega.server.db import Database, open_database
from vega.server.identity.owner import CredentialIssuer

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(h: Harness, **over: Any) -> dict[str, Any]:
    now = h.clock.ms // 1000
    c: dict[str, Any] = {
        "iss": f"{h.settings.resolved_public_url}/_dev/oidc",
        "aud": h.settings.resolved_public_url,
        "sub": "repo:alice/hello:ref:refs/heads/main",
        "repository": "alice/hello",
        "repository_id": "11",
        "repository_owner_id": "12",
        "sha": "a" * 40,
        "run_id": "13",
        "run_attempt": "1",
        "job_workflow_ref": "alice/hello/.github/workflows/vega.yml@refs/heads/main",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def signed(h: Harness, kid: str = "test-kid", **over: Any) -> str:
    """A token signed by a key pinned for the dev issuer under ``kid`` (so only the claims are wrong)."""
    h.auth.jwks.add_static(f"{h.settings.resolved_public_url}/_dev/oidc", {"test-kid": _RSA.public_key()})
    return jwt.encode(claims(h, **over), _RSA, algorithm="RS256", headers={"kid": kid})


def alg_none(h: Harness) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": "test-kid"}).encode())
    return f"{header}.{b64url(json.dumps(claims(h)).encode())}."


def hs256_with_public_key(h: Harness) -> str:
    signed(h)  # pin the key
    pem = _RSA.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "test-kid"}).encode())
    payload = b64url(json.dumps(claims(h)).encode())
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(mac)}"


def unknown_issuer(h: Harness) -> str:
    return jwt.encode(claims(h, iss="https://evil.example"), _RSA, algorithm="RS256", headers={"kid": "k"})


OIDC_FAILURES: list[tuple[str, Callable[[Harness], str], str]] = [
    ("valid", lambda h: signed(h), ""),
    ("expired", lambda h: signed(h, exp=h.clock.ms // 1000 - 3600, iat=h.clock.ms // 1000 - 7200), "expired"),
    ("not-yet-valid", lambda h: signed(h, nbf=h.clock.ms // 1000 + 3600), "not valid yet"),
    ("wrong-audience", lambda h: signed(h, aud="https://other.example"), "audience"),
    ("unknown-issuer", unknown_issuer, "issuer"),
    ("unknown-kid", lambda h: signed(h, kid="nobody"), "signing key is unknown"),
    ("alg-none", alg_none, "algorithm"),
    ("hs256-public-key", hs256_with_public_key, "algorithm"),
    ("missing-repository-owner-id", lambda h: signed(h, repository_owner_id=None), "repository_owner_id"),
    ("missing-sha", lambda h: signed(h, sha=None), "sha"),
    ("missing-exp", lambda h: signed(h, exp=None), "exp"),
    ("malformed", lambda h: "not.a.jwt", "malformed"),
]


@pytest.fixture
def h(database: Database, tmp_path: Path) -> Harness:
    return Harness(database, tmp_path)


@pytest.mark.parametrize(
    ("make", "message"), [(m, msg) for _, m, msg in OIDC_FAILURES], ids=[n for n, _, _ in OIDC_FAILURES]
)
def test_oidc_failures_at_attest_and_upload_url(
    h: Harness, make: Callable[[Harness], str], message: str
) -> None:
    out = Output("hello", b"nar bytes " * 10)
    token = make(h)
    upload = h.client.post(
        "/api/cache/upload-url",
        headers={"authorization": f"Bearer {token}"},
        json={"narUrl": out.nar_url, "fileHash": out.file_hash},
    )
    r = h.attest(token, out.body())
    if message == "":  # the valid token
        assert upload.status_code == 200
        assert r.status_code == 400  # authenticated; the object is simply not uploaded
        return
    assert r.status_code in (401, 403), r.text
    assert upload.status_code in (401, 403)
    assert message in r.json()["error"]
    d = h.client.post(
        "/api/repro/dispatch-failed",
        headers={"authorization": f"Bearer {token}"},
        json={"hash": out.hash_part, "reason": "build-failed"},
    )
    assert d.status_code in (401, 403)


def test_owner_credential_failures(h: Harness, tmp_path: Path) -> None:
    out = Output("hello", b"nar bytes " * 10)
    good = h.owner_credential()
    other_db = open_database(f"sqlite:///{tmp_path}/other.db")
    foreign, _ = CredentialIssuer(
        generate_secret_key("vega-cache-1", b"\x09" * 32), other_db, lambda: h.clock.ms / 1000
    ).issue("1000001", "vega-dev")
    other_db.close()
    flipped = good[:-10] + ("B" if good[-10] != "B" else "C") + good[-9:]  # a signature byte changed
    for token in (foreign, flipped, "v1.garbage", h.ci_token()):
        r = h.push(token, out.body())
        assert r.status_code == 401, (token, r.text)
    h.clock.ms += 8 * 24 * 3600 * 1000  # past the credential's lifetime
    expired = h.push(good, out.body())
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]
