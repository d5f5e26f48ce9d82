"""Attacks on the development routes (issue 14): unbounded JSON and DNS rebinding.

A web page whose name resolves to 127.0.0.1 must not reach the development issuer through the
victim's browser (the ``Host`` or ``Origin`` is not the server's own), and no body makes a
route fail with 500: a huge body gets 413, JSON nested without end gets 400.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.server.identity.conftest import SHA, FakeClock
from vega.core.signing import SecretKey
from vega.server.db import open_database
from vega.server.identity import Authenticator, IdentitySettings
from vega.server.identity.dev import DEV_CLIENT_ID

URL = "http://127.0.0.1:8321"
MASTER = SecretKey("vega-cache-1", bytes(range(32)))
JOB = {"repository": "alice/hello", "sha": SHA}


@pytest.fixture
def client(tmp_path: Path, clock: FakeClock) -> Iterator[TestClient]:
    from vega.server.identity.dev import DevSettings

    db = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    settings = IdentitySettings(public_url=URL, dev=DevSettings(state_dir=tmp_path / "dev"))
    no_network = httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(599)))
    authenticator = Authenticator(settings, master=MASTER, db=db, http=no_network, now=clock)
    app = Starlette(routes=authenticator.routes())
    with TestClient(app, base_url=URL, raise_server_exceptions=False) as c:
        yield c
    db.close()


DEEP = b"[" * 8000 + b"]" * 8000  # under the 16 KiB cap


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/_dev/ci-token", "application/json"),
        ("/login/device/code", "application/json"),
        ("/login/oauth/access_token", "application/json"),
    ],
)
def test_deeply_nested_json_is_a_400_not_a_500(client: TestClient, path: str, content_type: str) -> None:
    r = client.post(path, content=DEEP, headers={"content-type": content_type})
    assert r.status_code == 400, r.text
    assert "nested" in r.json()["error"]
    wrapped = b'{"repository": ' + b"[" * 40 + b"]" * 40 + b"}"  # deeper than 32, tiny
    assert client.post(path, content=wrapped, headers={"content-type": content_type}).status_code == 400


@pytest.mark.parametrize("path", ["/_dev/ci-token", "/login/device/code", "/api/v3/applications/x/token"])
def test_a_huge_body_is_a_413(client: TestClient, path: str) -> None:
    r = client.post(
        path, content=b"{" + b" " * (1 << 20) + b"}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 413, r.text
    assert "larger than" in r.json()["error"]


def test_strings_with_brackets_are_not_nesting(client: TestClient) -> None:
    r = client.post("/_dev/ci-token", json={**JOB, "workflow": ".github/workflows/[[[[" + "[" * 40 + ".yml"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8321", "127.0.0.1.evil.example", "[::2]:1"])
def test_a_foreign_host_is_refused(client: TestClient, host: str) -> None:
    for method, path in (("POST", "/_dev/ci-token"), ("GET", "/_dev/oidc/.well-known/jwks")):
        r = client.request(method, path, json=JOB if method == "POST" else None, headers={"host": host})
        assert r.status_code == 403, (host, path, r.text)
    r = client.post("/login/device/code", json={"client_id": DEV_CLIENT_ID}, headers={"host": host})
    assert r.status_code == 403


@pytest.mark.parametrize("origin", ["http://evil.example", "https://evil.example:8321", "null", "file://"])
def test_a_foreign_origin_is_refused(client: TestClient, origin: str) -> None:
    r = client.post("/_dev/ci-token", json=JOB, headers={"origin": origin})
    assert r.status_code == 403, r.text
    assert "cross-origin" in r.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:8321", "localhost:8321", "[::1]:8321", "127.0.0.1"])
def test_loopback_hosts_and_own_origins_are_served(client: TestClient, host: str) -> None:
    r = client.post("/_dev/ci-token", json=JOB, headers={"host": host, "origin": f"http://{host}"})
    assert r.status_code == 200, r.text
    assert client.post("/_dev/ci-token", json=JOB, headers={"host": host}).status_code == 200
