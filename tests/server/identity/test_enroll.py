"""Enrolment binds only tokens of the Vega GitHub App when its client secret is configured.

A fake GitHub (MockTransport) knows two live tokens of the same user: one issued to the Vega
GitHub App and one issued to some other app. ``GET /user`` accepts both (as GitHub does); the
"check a token" API (``POST /applications/<client_id>/token``, basic auth) accepts only the
app's own. Spec: protocol.md §1, §4.6; GitHub REST "Check a token".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.server.identity.conftest import FakeClock
from vega.core.signing import SecretKey
from vega.server.db import Database, open_database
from vega.server.identity import GITHUB_CLIENT_ID, Authenticator, IdentitySettings
from vega.server.identity.dev import DEV_CLIENT_ID, DevSettings

URL = "https://vega.test"
MASTER = SecretKey("vega-cache-1", bytes(range(32)))
SECRET = "vega-app-client-secret"
OURS = "ghu_issued_to_vega"
THEIRS = "gho_issued_to_another_app"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class FakeGitHub:
    """GitHub's user API and check-a-token API for one user with two live tokens."""

    seen: list[str] = field(default_factory=list)

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        user = {"login": "octocat", "id": 583231, "type": "User"}
        if request.method == "GET" and request.url.path == "/user":
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            return httpx2.Response(200, json=user) if token in (OURS, THEIRS) else httpx2.Response(401)
        if request.method == "POST" and request.url.path == f"/applications/{GITHUB_CLIENT_ID}/token":
            basic = base64.b64encode(f"{GITHUB_CLIENT_ID}:{SECRET}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {basic}":
                return httpx2.Response(404, json={"message": "Not Found"})
            token = json.loads(request.read()).get("access_token")
            if token != OURS:
                return httpx2.Response(404, json={"message": "Not Found"})
            app = {"client_id": GITHUB_CLIENT_ID, "name": "vega", "url": "https://github.com/apps/vega-cache"}
            return httpx2.Response(200, json={"token": token, "app": app, "user": user})
        return httpx2.Response(404, json={"message": "Not Found"})


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    yield database
    database.close()


def enrol_client(db: Database, clock: FakeClock, github: FakeGitHub, secret: str | None) -> TestClient:
    authenticator = Authenticator(
        IdentitySettings(public_url=URL, github_client_secret=secret),
        master=MASTER,
        db=db,
        http=httpx2.Client(transport=httpx2.MockTransport(github.handler)),
        now=clock,
    )
    assert authenticator.checks_app is (secret is not None)
    return TestClient(Starlette(routes=authenticator.routes()), base_url=URL)


def enrol(client: TestClient, token: str) -> httpx2.Response:
    return client.post("/api/owner/enroll", headers={"authorization": f"Bearer {token}"})


def test_configured_enrolment_accepts_only_the_apps_tokens(db: Database, clock: FakeClock) -> None:
    github = FakeGitHub()
    with enrol_client(db, clock, github, SECRET) as client:
        ours = enrol(client, OURS)
        assert ours.status_code == 200, ours.text
        assert (ours.json()["login"], ours.json()["userId"]) == ("octocat", "583231")
        theirs = enrol(client, THEIRS)
        assert theirs.status_code == 401
        assert theirs.json() == {"error": "github did not accept the token for this server's GitHub App"}
    # the user comes from the check's answer; GET /user is never asked
    assert github.seen == [f"POST /applications/{GITHUB_CLIENT_ID}/token"] * 2


def test_configured_enrolment_with_a_wrong_secret_enrols_nobody(db: Database, clock: FakeClock) -> None:
    with enrol_client(db, clock, FakeGitHub(), "not-the-secret") as client:
        got = enrol(client, OURS)
    assert got.status_code == 401
    assert "GitHub App" in got.json()["error"]


def test_unconfigured_enrolment_keeps_accepting_any_user_token(db: Database, clock: FakeClock) -> None:
    github = FakeGitHub()
    with enrol_client(db, clock, github, None) as client:
        assert enrol(client, OURS).status_code == 200
        assert enrol(client, THEIRS).status_code == 200
        assert enrol(client, "gho_dead").status_code == 401
    assert github.seen == ["GET /user"] * 3


@pytest.fixture
def dev(tmp_path: Path, clock: FakeClock, db: Database) -> Iterator[tuple[Authenticator, TestClient]]:
    settings = IdentitySettings(
        public_url=URL, dev=DevSettings(state_dir=tmp_path / "dev", poll_interval_s=0)
    )
    no_network = httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(599)))
    authenticator = Authenticator(settings, master=MASTER, db=db, http=no_network, now=clock)
    with TestClient(Starlette(routes=authenticator.routes()), base_url=URL) as client:
        yield authenticator, client


def dev_login(client: TestClient) -> str:
    code = client.post("/login/device/code", json={"client_id": DEV_CLIENT_ID}).json()
    body = {"client_id": DEV_CLIENT_ID, "device_code": code["device_code"], "grant_type": GRANT}
    assert client.post("/login/oauth/access_token", json=body).json() == {"error": "authorization_pending"}
    token: str = client.post("/login/oauth/access_token", json=body).json()["access_token"]
    return token


def test_dev_mode_answers_the_check_a_token_api(dev: tuple[Authenticator, TestClient]) -> None:
    authenticator, client = dev
    token = dev_login(client)
    path = f"/api/v3/applications/{DEV_CLIENT_ID}/token"
    good = (DEV_CLIENT_ID, authenticator.dev.client_secret if authenticator.dev else "")
    got = client.post(path, auth=good, json={"access_token": token})
    assert got.status_code == 200
    assert got.json()["app"]["client_id"] == DEV_CLIENT_ID
    assert (got.json()["user"]["login"], got.json()["user"]["id"]) == ("vega-dev", 1000001)
    assert client.post(path, auth=good, json={"access_token": "ghu_forged.x"}).status_code == 404
    assert client.post(path, auth=good, json={}).status_code == 422
    assert client.post(path, auth=good, content=b"not json").status_code == 422
    assert client.post(path, auth=(DEV_CLIENT_ID, "wrong"), json={"access_token": token}).status_code == 404
    assert client.post(path, json={"access_token": token}).status_code == 404
    other = f"/api/v3/applications/{GITHUB_CLIENT_ID}/token"
    assert client.post(other, auth=good, json={"access_token": token}).status_code == 404
    assert authenticator.dev is not None
    with httpx2.Client(transport=authenticator.dev.transport()) as in_process:
        assert in_process.get(f"{URL}{path}").status_code == 404
        assert in_process.post(f"{URL}/api/v3/user").status_code == 404
        answer = in_process.post(f"{URL}{path}", auth=good, json={"access_token": token})
        assert answer.json()["user"]["id"] == 1000001


def test_dev_mode_enrolment_goes_through_the_app_check(dev: tuple[Authenticator, TestClient]) -> None:
    authenticator, client = dev
    assert authenticator.checks_app
    token = dev_login(client)
    got = enrol(client, token)
    assert got.status_code == 200, got.text
    assert (got.json()["login"], got.json()["userId"]) == ("vega-dev", "1000001")
    refused = enrol(client, "ghu_" + token.removeprefix("ghu_")[:-2] + "xx")
    assert refused.status_code == 401
    assert refused.json() == {"error": "github did not accept the token for this server's GitHub App"}


def test_dev_mode_enrolment_with_an_unnormalised_public_url(
    tmp_path: Path, clock: FakeClock, db: Database
) -> None:
    settings = IdentitySettings(
        public_url="https://Vega.TEST:443/", dev=DevSettings(state_dir=tmp_path / "dev", poll_interval_s=0)
    )
    authenticator = Authenticator(settings, master=MASTER, db=db, http=httpx2.Client(), now=clock)
    with TestClient(Starlette(routes=authenticator.routes()), base_url=URL) as client:
        assert enrol(client, dev_login(client)).status_code == 200


def test_owner_whoami_answers_for_valid_credentials_only(dev: tuple[Authenticator, TestClient]) -> None:
    _, client = dev
    credential = enrol(client, dev_login(client)).json()["credential"]
    me = client.get("/api/owner/whoami", headers={"authorization": f"Bearer {credential}"})
    assert me.status_code == 200
    assert me.json() == {"login": "vega-dev", "userId": "1000001", "namespace": "owner:1000001"}
    assert me.headers["cache-control"] == "no-store"
    tampered = credential[:-3] + ("AAA" if not credential.endswith("AAA") else "BBB")
    assert client.get("/api/owner/whoami", headers={"authorization": f"Bearer {tampered}"}).status_code == 401
    assert client.get("/api/owner/whoami").status_code == 401
    revoke = client.post("/api/owner/revoke", headers={"authorization": f"Bearer {credential}"})
    assert revoke.status_code == 200
    after = client.get("/api/owner/whoami", headers={"authorization": f"Bearer {credential}"})
    assert after.status_code == 401
