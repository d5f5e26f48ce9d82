"""Issue 4: development identity mode -- device flow, user API, OIDC issuer, CI request tokens."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.server.identity.conftest import SHA, FakeClock
from vega.core.signing import SecretKey
from vega.errors import AuthError, ConfigError
from vega.server.db import open_database
from vega.server.identity import Authenticator, IdentitySettings, bearer_token
from vega.server.identity.dev import (
    DEV_CLIENT_ID,
    DevIdentity,
    DevSettings,
    ci_token_command,
    is_loopback_bind,
)
from vega.server.identity.oidc import JwksCache, OidcVerifier

URL = "https://vega.test"
MASTER = SecretKey("vega-cache-1", bytes(range(32)))
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def auth(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[Authenticator, TestClient]]:
    db = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    settings = IdentitySettings(
        public_url=URL,
        dev=DevSettings(state_dir=tmp_path / "dev", poll_interval_s=5),
        reproducer_workflows=("vega-org/repro/.github/workflows/reproduce.yml@refs/heads/main",),
    )
    no_network = httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(599)))
    authenticator = Authenticator(settings, master=MASTER, db=db, http=no_network, now=clock)
    app = Starlette(routes=authenticator.routes())
    with TestClient(app, base_url=URL) as client:
        yield authenticator, client
    db.close()


def device_login(client: TestClient, clock: FakeClock) -> str:
    code = client.post("/login/device/code", json={"client_id": DEV_CLIENT_ID}).json()
    assert code["verification_uri"] == f"{URL}/login/device"
    assert code["interval"] == 5
    body = {"client_id": DEV_CLIENT_ID, "device_code": code["device_code"], "grant_type": GRANT}
    clock.sleep(5)
    assert client.post("/login/oauth/access_token", json=body).json() == {"error": "authorization_pending"}
    clock.sleep(5)
    got = client.post("/login/oauth/access_token", json=body).json()
    token: str = got["access_token"]
    assert got["token_type"] == "bearer"
    return token


def test_device_flow_then_enroll(auth: tuple[Authenticator, TestClient], clock: FakeClock) -> None:
    authenticator, client = auth
    token = device_login(client, clock)
    user = client.get("/api/v3/user", headers={"authorization": f"Bearer {token}"}).json()
    assert (user["login"], user["id"]) == ("vega-dev", 1000001)
    enrolled = client.post("/api/owner/enroll", headers={"authorization": f"Bearer {token}"})
    assert enrolled.status_code == 200
    body = enrolled.json()
    assert (body["login"], body["userId"]) == ("vega-dev", "1000001")
    assert body["expiresAt"] == int(clock.t * 1000) + 7 * 24 * 3600 * 1000
    owner = authenticator.owner(body["credential"])
    assert owner.namespace == "owner:1000001"
    revoked = client.post("/api/owner/revoke", headers={"authorization": f"Bearer {body['credential']}"})
    assert revoked.json() == {"revoked": True}
    with pytest.raises(AuthError, match="revoked"):
        authenticator.owner(body["credential"])
    again = client.post("/api/owner/revoke", headers={"authorization": f"Bearer {body['credential']}"})
    assert again.status_code == 401


def test_device_flow_slow_down_adds_five_seconds(
    auth: tuple[Authenticator, TestClient], clock: FakeClock
) -> None:
    _, client = auth
    code = client.post("/login/device/code", data={"client_id": DEV_CLIENT_ID}).json()
    body = {"client_id": DEV_CLIENT_ID, "device_code": code["device_code"], "grant_type": GRANT}
    clock.sleep(4)
    assert client.post("/login/oauth/access_token", data=body).json() == {
        "error": "slow_down",
        "interval": 10,
    }
    clock.sleep(9)
    assert client.post("/login/oauth/access_token", data=body).json() == {
        "error": "slow_down",
        "interval": 15,
    }
    clock.sleep(15)
    assert client.post("/login/oauth/access_token", data=body).json()["error"] == "authorization_pending"


def test_device_flow_errors(auth: tuple[Authenticator, TestClient], clock: FakeClock) -> None:
    _, client = auth
    assert client.post("/login/device/code", json={"client_id": "other"}).status_code == 401
    code = client.post("/login/device/code", json={"client_id": DEV_CLIENT_ID}).json()
    ok = {"client_id": DEV_CLIENT_ID, "device_code": code["device_code"], "grant_type": GRANT}
    post = client.post
    assert post("/login/oauth/access_token", json={**ok, "client_id": "x"}).json()["error"] == (
        "incorrect_client_credentials"
    )
    assert (
        post("/login/oauth/access_token", json={**ok, "grant_type": "x"}).json()["error"]
        == "unsupported_grant_type"
    )
    assert post("/login/oauth/access_token", json={**ok, "device_code": "x.y"}).json()["error"] == (
        "incorrect_device_code"
    )
    clock.sleep(900)
    assert post("/login/oauth/access_token", json=ok).json()["error"] == "expired_token"
    assert (
        post(
            "/login/oauth/access_token", content=b"\xff", headers={"content-type": "application/json"}
        ).json()["error"]
        == "incorrect_client_credentials"
    )


def test_user_api_rejects_other_tokens(auth: tuple[Authenticator, TestClient]) -> None:
    _, client = auth
    for headers in ({}, {"authorization": "Bearer gho_fake"}, {"authorization": "Basic x"}):
        assert client.get("/api/v3/user", headers=headers).status_code == 401
    assert client.post("/api/owner/enroll", headers={"authorization": "Bearer gho_fake"}).json() == {
        "error": "github did not accept the token for this server's GitHub App"
    }
    assert client.post("/api/owner/enroll").json() == {"error": "missing bearer token"}


def test_github_info_advertises_the_dev_github(auth: tuple[Authenticator, TestClient]) -> None:
    authenticator, _ = auth
    assert authenticator.github_info() == {"url": URL, "apiUrl": f"{URL}/api/v3", "clientId": DEV_CLIENT_ID}


def test_ci_token_to_oidc_identity(auth: tuple[Authenticator, TestClient], clock: FakeClock) -> None:
    """The Actions token request of protocol.md §10 against the dev issuer, then verification."""
    authenticator, client = auth
    env = client.post(
        "/_dev/ci-token", json={"repository": "Alice/Hello", "sha": SHA, "runId": "77", "runAttempt": "3"}
    ).json()
    assert env["ACTIONS_ID_TOKEN_REQUEST_URL"] == f"{URL}/_dev/oidc/token"
    assert (env["GITHUB_REPOSITORY"], env["GITHUB_SHA"], env["VEGA_URL"]) == ("Alice/Hello", SHA, URL)
    got = client.get(
        env["ACTIONS_ID_TOKEN_REQUEST_URL"],
        params={"audience": URL},
        headers={"authorization": f"Bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"},
    )
    ident = authenticator.oidc(got.json()["value"])
    assert ident.tenant == "Alice/Hello"
    assert ident.sha == SHA
    assert ident.attester_id.startswith("gh-run:77:3:")
    assert ident.job_workflow_ref == "Alice/Hello/.github/workflows/vega.yml@refs/heads/main"
    assert not ident.is_reproducer
    # The ids are stable per name, so a second job of the same repository binds the same ids.
    again = authenticator.dev.mint_id_token(  # type: ignore[union-attr]
        authenticator.dev.mint_request_token(repository="Alice/Hello", sha=SHA),  # type: ignore[union-attr]
        URL,
    )
    assert authenticator.oidc(again).repository_id == ident.repository_id


def test_dev_issuer_is_fetchable_by_discovery(
    auth: tuple[Authenticator, TestClient], clock: FakeClock
) -> None:
    """The dev issuer's discovery and JWKS documents are what a real verifier fetches."""
    authenticator, client = auth
    dev = authenticator.dev
    assert dev is not None
    token = dev.mint_id_token(
        dev.mint_request_token(
            repository="vega-org/repro", sha=SHA, workflow=".github/workflows/reproduce.yml", run_id="9"
        ),
        URL,
    )
    fetched = OidcVerifier(
        jwks=JwksCache(client, clock),
        audience=URL,
        issuers=frozenset({dev.issuer}),
        now=clock,
        reproducer_workflows=("vega-org/repro/.github/workflows/reproduce.yml@refs/heads/main",),
    ).verify(token)
    assert fetched.is_reproducer
    assert authenticator.oidc(token).is_reproducer


def test_token_endpoint_errors(auth: tuple[Authenticator, TestClient], clock: FakeClock) -> None:
    authenticator, client = auth
    dev = authenticator.dev
    assert dev is not None
    request_token = dev.mint_request_token(repository="a/b", sha=SHA)
    path = "/_dev/oidc/token"
    assert client.get(path, headers={"authorization": f"Bearer {request_token}"}).status_code == 400
    assert client.get(path, params={"audience": URL}).status_code == 401
    assert (
        client.get(path, params={"audience": URL}, headers={"authorization": "Bearer a.b"}).status_code == 401
    )
    clock.sleep(6 * 3600)
    expired = client.get(path, params={"audience": URL}, headers={"authorization": f"Bearer {request_token}"})
    assert expired.json() == {"error": "request token is not valid"}
    # A request token is not an access token, and the other way round.
    with pytest.raises(AuthError):
        dev.user(request_token)
    assert client.post("/_dev/ci-token", json={"repository": "nope", "sha": SHA}).status_code == 400
    assert client.post("/_dev/ci-token", content=b"[").status_code == 400


@pytest.mark.parametrize(
    "job",
    [
        {"repository": "a", "sha": SHA},
        {"repository": "a/b", "sha": "xyz"},
        {"repository": "a/b", "sha": SHA, "run_id": "0"},
        {"repository": "a/b", "sha": SHA, "run_attempt": "x"},
    ],
)
def test_request_token_validation(tmp_path: Path, clock: FakeClock, job: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DevIdentity(URL, DevSettings(state_dir=tmp_path), clock).mint_request_token(**job)


def test_state_is_persisted_private_and_reused(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "state"
    first = DevIdentity(URL, DevSettings(state_dir=state), clock)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    for name in ("dev-oidc-rsa.pem", "dev-secret"):
        assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600
    second = DevIdentity(URL, DevSettings(state_dir=state), clock)
    assert first.kid == second.kid
    token = first.mint_id_token(first.mint_request_token(repository="a/b", sha=SHA), URL)
    assert jwt.get_unverified_header(token)["kid"] == second.kid
    assert second.mint_id_token(first.mint_request_token(repository="a/b", sha=SHA), URL)
    assert sorted(p.name for p in state.iterdir()) == ["dev-oidc-rsa.pem", "dev-secret"]


def test_ci_token_command_prints_exports(tmp_path: Path, clock: FakeClock) -> None:
    out = io.StringIO()
    argv = [
        "--repo",
        "alice/hello",
        "--sha",
        SHA,
        "--workflow",
        ".github/workflows/build.yml",
        "--run-id",
        "42",
    ]
    assert (
        ci_token_command(
            argv, default_url="http://127.0.0.1:8080", default_state_dir=tmp_path, now=clock, out=out
        )
        == 0
    )
    lines = out.getvalue().splitlines()
    assert lines[0] == "export ACTIONS_ID_TOKEN_REQUEST_URL=http://127.0.0.1:8080/_dev/oidc/token"
    assert lines[1].startswith("export ACTIONS_ID_TOKEN_REQUEST_TOKEN=")
    assert "export GITHUB_REPOSITORY=alice/hello" in lines
    token = lines[1].split("=", 1)[1]
    dev = DevIdentity("http://127.0.0.1:8080", DevSettings(state_dir=tmp_path), clock)
    claims = jwt.decode(dev.mint_id_token(token, "x"), options={"verify_signature": False})
    assert claims["job_workflow_ref"] == "alice/hello/.github/workflows/build.yml@refs/heads/main"
    assert claims["run_id"] == "42"
    assert (
        ci_token_command(["--repo", "bad", "--sha", SHA], default_url="http://x", default_state_dir=tmp_path)
        == 1
    )


def test_ci_tokens_carry_the_runner_environment_and_owner_id(tmp_path: Path, clock: FakeClock) -> None:
    """The reproducer lane's claims (a GitHub-hosted runner, its own owner id) can be simulated."""
    out = io.StringIO()
    argv = [
        "--repo",
        "vega-org/repro",
        "--sha",
        SHA,
        "--runner-environment",
        "self-hosted",
        "--owner-id",
        "77",
    ]
    assert ci_token_command(argv, default_url="http://x", default_state_dir=tmp_path, now=clock, out=out) == 0
    token = out.getvalue().splitlines()[1].split("=", 1)[1]
    dev = DevIdentity("http://x", DevSettings(state_dir=tmp_path), clock)
    claims = jwt.decode(dev.mint_id_token(token, "x"), options={"verify_signature": False})
    assert (claims["runner_environment"], claims["repository_owner_id"]) == ("self-hosted", "77")
    default = dev.mint_id_token(dev.mint_request_token(repository="a/b", sha=SHA), "x")
    assert jwt.decode(default, options={"verify_signature": False})["runner_environment"] == "github-hosted"
    for bad in (["--owner-id", "07"], ["--owner-id", "x"]):
        err = ci_token_command(
            ["--repo", "a/b", "--sha", SHA, *bad],
            default_url="http://x",
            default_state_dir=tmp_path,
            now=clock,
        )
        assert err == 1
    with pytest.raises(ConfigError, match="runner environment must be one of"):
        dev.mint_request_token(repository="a/b", sha=SHA, runner_environment="laptop")


def test_ci_token_endpoint_takes_the_runner_environment(
    auth: tuple[Authenticator, TestClient], clock: FakeClock
) -> None:
    _, client = auth
    body = {"repository": "o/r", "sha": SHA, "runnerEnvironment": "self-hosted", "ownerId": "5"}
    env = client.post("/_dev/ci-token", json=body).json()
    got = client.get(
        env["ACTIONS_ID_TOKEN_REQUEST_URL"],
        params={"audience": URL},
        headers={"authorization": f"Bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"},
    )
    claims = jwt.decode(got.json()["value"], options={"verify_signature": False})
    assert (claims["runner_environment"], claims["repository_owner_id"]) == ("self-hosted", "5")
    assert client.post("/_dev/ci-token", json=body | {"runnerEnvironment": "x"}).status_code == 400


def test_loopback_bind_rule() -> None:
    assert all(is_loopback_bind(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"))
    assert not any(is_loopback_bind(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.com"))  # noqa: S104


def test_bearer_token() -> None:
    assert bearer_token("Bearer abc ") == "abc"
    assert bearer_token("bearer abc") == "abc"
    for bad in (None, "", "Bearer", "Basic abc", "Bearer  "):
        with pytest.raises(AuthError, match="missing bearer token"):
            bearer_token(bad)


def test_production_mode_has_no_dev_routes(tmp_path: Path, clock: FakeClock) -> None:
    db = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    seen: list[str] = []

    def github(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(200, json={"login": "octocat", "id": 583231})

    authenticator = Authenticator(
        IdentitySettings(public_url=URL + "/", github_url="https://ghe.example.com"),
        master=MASTER,
        db=db,
        http=httpx2.Client(transport=httpx2.MockTransport(github)),
        now=clock,
    )
    assert [r.path for r in authenticator.routes()] == [
        "/api/owner/enroll",
        "/api/owner/revoke",
        "/api/owner/whoami",
    ]
    assert authenticator.github_info() == {
        "url": "https://ghe.example.com",
        "apiUrl": "https://ghe.example.com/api/v3",
        "clientId": "Iv23liYWrhwLxxmY8iK3",
    }
    enrollment = authenticator.enroll("gho_token")
    assert seen == ["https://ghe.example.com/api/v3/user"]
    assert authenticator.owner(enrollment.credential).user_id == "583231"
    authenticator.revoke(enrollment.credential)
    with pytest.raises(AuthError, match="revoked"):
        authenticator.owner(enrollment.credential)
    db.close()


def test_github_outage_is_a_502(tmp_path: Path, clock: FakeClock) -> None:
    db = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    authenticator = Authenticator(
        IdentitySettings(public_url=URL),
        master=MASTER,
        db=db,
        http=httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(500))),
        now=clock,
    )
    with TestClient(Starlette(routes=authenticator.routes()), base_url=URL) as client:
        got = client.post("/api/owner/enroll", headers={"authorization": "Bearer gho_x"})
    assert got.status_code == 502
    assert got.json() == {"error": "could not reach GitHub to verify the token"}
    db.close()
