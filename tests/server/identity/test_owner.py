"""Issue 4 (owner lane): credentials signed by the enrolment key; expiry, revocation, other keys."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.server.identity.conftest import FakeClock
from vega.core.signing import SecretKey, enroll_key
from vega.errors import AuthError, FormatError
from vega.server.db import Database
from vega.server.identity.owner import CredentialIssuer, OwnerCredential

MASTER = SecretKey("vega-cache-1", bytes(range(32)))
OTHER = SecretKey("vega-cache-1", bytes(range(1, 33)))


def rejects(issuer: CredentialIssuer, token: str, reason: str) -> None:
    with pytest.raises(AuthError) as e:
        issuer.verify(token)
    assert e.value.status == 401
    assert reason in e.value.message


def test_issue_then_verify(database: Database, clock: FakeClock) -> None:
    issuer = CredentialIssuer(MASTER, database, clock, ttl_s=3600)
    token, claims = issuer.issue("583231", "octocat")
    assert token.startswith("v1.")
    owner = issuer.verify(token)
    assert (owner.user_id, owner.login, owner.namespace) == ("583231", "octocat", "owner:583231")
    assert claims.expires_at_ms == int(clock.t * 1000) + 3600 * 1000
    assert issuer.parse(token) == claims


def test_credentials_are_unique(database: Database, clock: FakeClock) -> None:
    issuer = CredentialIssuer(MASTER, database, clock)
    assert issuer.issue("1", "a")[0] != issuer.issue("1", "a")[0]


def test_expired_credential(database: Database, clock: FakeClock) -> None:
    issuer = CredentialIssuer(MASTER, database, clock, ttl_s=60)
    token, _ = issuer.issue("583231", "octocat")
    clock.t += 59.999
    issuer.verify(token)
    clock.t += 0.001
    rejects(issuer, token, "expired")


def test_revoked_credential_is_refused_and_revocation_is_idempotent(
    database: Database, clock: FakeClock
) -> None:
    issuer = CredentialIssuer(MASTER, database, clock)
    token, _ = issuer.issue("583231", "octocat")
    other, _ = issuer.issue("583231", "octocat")
    issuer.revoke(token)
    issuer.revoke(token)
    rejects(issuer, token, "revoked")
    issuer.verify(other)  # only that one credential
    # A second issuer on the same database (another worker, a restart) sees the revocation.
    rejects(CredentialIssuer(MASTER, database, clock), token, "revoked")


def test_credential_signed_by_another_key(database: Database, clock: FakeClock) -> None:
    foreign, _ = CredentialIssuer(OTHER, database, clock).issue("583231", "octocat")
    issuer = CredentialIssuer(MASTER, database, clock)
    rejects(issuer, foreign, "signature is invalid")
    with pytest.raises(AuthError):
        issuer.revoke(foreign)


def test_tampered_payload_is_refused(database: Database, clock: FakeClock) -> None:
    issuer = CredentialIssuer(MASTER, database, clock)
    token, _ = issuer.issue("583231", "octocat")
    prefix, payload, sig = token.split(".")
    obj = json.loads(base64.urlsafe_b64decode(payload + "=="))
    obj["sub"] = "1"
    forged = base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    rejects(issuer, f"{prefix}.{forged}.{sig}", "signature is invalid")


def test_signed_but_malformed_payload_is_refused(database: Database, clock: FakeClock) -> None:
    """Even a correctly signed payload must parse (defence against a key reused elsewhere)."""
    from vega.core.signing import sign

    issuer = CredentialIssuer(MASTER, database, clock)
    payload = base64.urlsafe_b64encode(b'{"v":1,"sub":"x"}').rstrip(b"=").decode()
    sig = sign(enroll_key(MASTER), b"vega-owner-credential-v1:" + payload.encode()).split(":", 1)[1]
    sig_url = base64.urlsafe_b64encode(base64.b64decode(sig)).rstrip(b"=").decode()
    rejects(issuer, f"v1.{payload}.{sig_url}", "malformed")


@pytest.mark.parametrize(
    "token", ["", "v1", "v2.a.b", "v1.a.b.c", "v1.AA.A=", "v1.AA.AB", "é", "v1." + "A" * 3000]
)
def test_malformed_credentials(database: Database, clock: FakeClock, token: str) -> None:
    rejects(CredentialIssuer(MASTER, database, clock), token, "malformed")


@pytest.mark.parametrize("token", ["v1.@@.AA", "v1.AA.AA", "v1..AA"])
def test_unsigned_credentials(database: Database, clock: FakeClock, token: str) -> None:
    rejects(CredentialIssuer(MASTER, database, clock), token, "signature is invalid")


@given(st.text(max_size=200))
def test_arbitrary_text_is_only_ever_an_auth_error(text: str) -> None:
    from vega.server.db import open_database

    db = open_database(":memory:")
    try:
        with pytest.raises(AuthError):
            CredentialIssuer(MASTER, db, lambda: 0.0).verify(text)
    finally:
        db.close()


@pytest.mark.parametrize(
    "obj",
    [
        None,
        {"v": 2},
        {"v": 1, "sub": 1, "login": "a", "iat": 1, "exp": 2, "jti": "0" * 32},
        {"v": 1, "sub": "1", "login": "a", "iat": True, "exp": 2, "jti": "0" * 32},
        {"v": 1, "sub": "1", "login": "a", "iat": 1, "exp": 1, "jti": "0" * 32},
        {"v": 1, "sub": "01", "login": "a", "iat": 1, "exp": 2, "jti": "0" * 32},
        {"v": 1, "sub": "1", "login": "a", "iat": 1, "exp": 2, "jti": "xyz"},
    ],
)
def test_payload_parser_rejects(obj: object) -> None:
    with pytest.raises(FormatError):
        OwnerCredential.from_json(obj)


def test_lifetime_must_be_positive(database: Database, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        CredentialIssuer(MASTER, database, clock, ttl_s=0)
