"""Credentials and tokens with absurd lifetimes are refused (issue 14).

Whoever signed them (a leaked key, an older configuration, a bug), an owner credential living
longer than the configured TTL, an OIDC token valid for longer than a sane maximum, or a
development request token valid for longer than the mode issues, is not accepted; nor are TTL
settings outside sane ranges at start-up.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from tests.server.identity.conftest import NOW, FakeClock, Issuer, sign
from tests.server.identity.test_oidc import verifier
from vega.core.signing import SecretKey
from vega.errors import AuthError, ConfigError
from vega.server.__main__ import main
from vega.server.db import Database
from vega.server.identity.dev import DevIdentity, DevSettings
from vega.server.identity.owner import CredentialIssuer
from vega.server.settings import resolve_settings

MASTER = SecretKey("vega-cache-1", bytes(range(32)))
YEAR = 365 * 24 * 3600


def test_an_owner_credential_longer_than_the_ttl_is_refused(database: Database, clock: FakeClock) -> None:
    long_lived = CredentialIssuer(MASTER, database, clock, ttl_s=100 * YEAR)  # same key, absurd TTL
    token, _ = long_lived.issue("42", "alice")
    server = CredentialIssuer(MASTER, database, clock, ttl_s=7 * 24 * 3600)
    with pytest.raises(AuthError, match="lifetime is longer"):
        server.verify(token)
    ok, _ = server.issue("42", "alice")
    assert server.verify(ok).user_id == "42"


def test_an_owner_credential_issued_in_the_future_is_refused(database: Database, clock: FakeClock) -> None:
    early = FakeClock(clock.t + 3600)
    token, _ = CredentialIssuer(MASTER, database, early, ttl_s=3600).issue("42", "alice")
    with pytest.raises(AuthError, match="issued in the future"):
        CredentialIssuer(MASTER, database, clock, ttl_s=7200).verify(token)


@pytest.mark.parametrize(
    "times",
    [
        {"iat": int(NOW) - 10, "nbf": int(NOW) - 10, "exp": int(NOW) + 10 * YEAR},
        {"iat": int(NOW) - 10, "nbf": int(NOW) - 2 * 3600, "exp": int(NOW) + 300},
        {"iat": int(NOW) - 4000, "nbf": int(NOW) - 10, "exp": int(NOW) + 300},
    ],
    ids=["ten-years", "nbf-long-ago", "iat-long-ago"],
)
def test_an_oidc_token_with_an_absurd_lifetime_is_refused(
    issuer: Issuer, clock: FakeClock, rsa_keys: list[Any], times: dict[str, Any]
) -> None:
    with pytest.raises(AuthError, match="lifetime is longer"):
        verifier(issuer, clock).verify(sign(rsa_keys[0], **times))
    # GitHub's own shape (nbf 10 minutes before iat, exp 5 minutes after) is accepted.
    github: dict[str, Any] = {"iat": int(NOW) - 10, "nbf": int(NOW) - 610, "exp": int(NOW) + 290}
    assert verifier(issuer, clock).verify(sign(rsa_keys[0], **github)).repository == "Alice/Hello"


def test_a_dev_request_token_longer_than_the_mode_issues_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    dev = DevIdentity("http://127.0.0.1:8080", DevSettings(state_dir=tmp_path), clock)
    job = {
        "repository": "alice/hello",
        "repository_id": "1",
        "repository_owner_id": "2",
        "sha": "a" * 40,
        "ref": "refs/heads/main",
        "job_workflow_ref": "alice/hello/.github/workflows/vega.yml@refs/heads/main",
        "run_id": "3",
        "run_attempt": "1",
    }
    forever = dev._seal("ci", {**job, "exp": int(clock()) + 10 * YEAR})
    with pytest.raises(AuthError):
        dev.mint_id_token(forever, "http://127.0.0.1:8080")
    ok = dev._seal("ci", {**job, "exp": int(clock()) + 3600})
    assert dev.mint_id_token(ok, "http://127.0.0.1:8080")
    with pytest.raises(ConfigError, match="request_token_ttl_s"):
        DevSettings(state_dir=tmp_path, request_token_ttl_s=10 * YEAR)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("upload_url_ttl_s", 10 * YEAR),
        ("credential_ttl_s", 10 * YEAR),
        ("credential_ttl_s", 0),
        ("oidc_max_token_lifetime_s", YEAR),
        ("settling_s", 10 * YEAR),
        ("narinfo_max_age_s", YEAR),
        ("http_read_timeout_s", 0),
        ("http_keep_alive_s", 0),
        ("http_max_connections", 0),
        ("worker_threads", 0),
        ("max_concurrent_uploads", 0),
    ],
)
def test_misconfigured_ttls_and_bounds_are_refused_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, value: int
) -> None:
    with pytest.raises(ConfigError, match=name):
        resolve_settings(environ={f"VEGA_SERVER_{name.upper()}": str(value)}, default_data_dir=tmp_path)
    config = tmp_path / "server.toml"
    config.write_text(f"{name} = {value}\n")
    code = main(
        ["serve", "--data-dir", str(tmp_path), "--config", str(config)], out=io.StringIO(), run=_never
    )
    assert code == 1
    assert name in capsys.readouterr().err


def _never(app: Any, **kwargs: Any) -> None:
    raise AssertionError("the server must not start")
