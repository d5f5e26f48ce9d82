"""cli.md §3-§6 flows in process: /api/info discovery, enrolment failures (safe errors), status."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from vega.client import account
from vega.client.credentials import Credential, save_credential
from vega.client.github import DeviceCode, GitHubEndpoint
from vega.client.http import Http
from vega.client.settings import GITHUB_CLIENT_ID, Settings, load_settings
from vega.errors import ConfigError, NetworkError, VegaError

URL = "https://vega.test"
NOW_MS = 1_800_000_000_000


@dataclass
class World:
    """A control plane (in process) and github.com (a fake speaking its device-flow protocol)."""

    tmp: Path
    info: object = None
    enroll: Callable[[Request], Response] | None = None
    seen: list[str] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)

    def app(self) -> Starlette:
        async def api_info(request: Request) -> Response:
            if self.info is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            return JSONResponse(self.info)

        async def enroll(request: Request) -> Response:
            assert request.headers["authorization"] == "Bearer gho_TOKEN"
            assert "content-type" not in request.headers
            assert await request.body() == b""
            if self.enroll is not None:
                return self.enroll(request)
            return JSONResponse(
                {"credential": "v1.c.s", "login": "octocat", "userId": "583231", "expiresAt": NOW_MS + 1}
            )

        async def cache_info(request: Request) -> Response:
            return PlainTextResponse("StoreDir: /nix/store\n")

        return Starlette(
            routes=[
                Route("/api/info", api_info),
                Route("/api/owner/enroll", enroll, methods=["POST"]),
                Route("/nix-cache-info", cache_info),
            ]
        )

    def github(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/login/device/code":
            return httpx2.Response(
                200,
                json={
                    "device_code": "d",
                    "user_code": "ABCD-EFGH",
                    "verification_uri": f"https://{request.url.host}/login/device",
                    "expires_in": 900,
                    "interval": 5,
                },
            )
        return httpx2.Response(200, json={"access_token": "gho_TOKEN"})

    @property
    def settings(self) -> Settings:
        return load_settings({"HOME": str(self.tmp)}, url=URL)

    def context(self, client: TestClient) -> account.AccountContext:
        def route(request: httpx2.Request) -> httpx2.Response:
            self.seen.append(f"{request.method} {request.url}")
            if request.url.host == "vega.test":
                resp = client.request(
                    request.method, str(request.url), headers=dict(request.headers), content=request.content
                )
                return httpx2.Response(resp.status_code, headers=resp.headers, content=resp.content)
            return self.github(request)

        http = Http(httpx2.Client(transport=httpx2.MockTransport(route)), sleep=self.slept.append)
        return account.AccountContext(
            settings=self.settings,
            http=http,
            now_ms=lambda: NOW_MS,
            sleep=self.slept.append,
            monotonic=lambda: 0.0,
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[World, TestClient]]:
    w = World(tmp_path)
    with TestClient(w.app(), base_url=URL) as client:
        yield w, client


def test_login_defaults_to_github_com_when_nothing_is_advertised(world: tuple[World, TestClient]) -> None:
    w, client = world
    codes: list[DeviceCode] = []
    result = account.login(w.context(client), codes.append)
    assert codes[0].user_code == "ABCD-EFGH"
    assert result.credential == Credential(
        credential="v1.c.s", login="octocat", user_id="583231", expires_at_ms=NOW_MS + 1, url=URL
    )
    assert result.path == w.settings.credential_path
    assert json.loads(result.path.read_text())["url"] == URL
    assert "https://github.com/login/device/code" in " ".join(w.seen)
    assert "gho_TOKEN" not in result.path.read_text()


def test_discover_github_reads_api_info(world: tuple[World, TestClient]) -> None:
    w, client = world
    http = w.context(client).http
    assert account.discover_github(http, URL) == GitHubEndpoint("https://github.com", GITHUB_CLIENT_ID)
    w.info = {"github": {"url": "https://ghe.example.com/", "clientId": "Iv1.abc"}}
    assert account.discover_github(http, URL) == GitHubEndpoint("https://ghe.example.com", "Iv1.abc")
    w.info = {"github": {"url": "http://[::1]:9000"}}
    assert account.discover_github(http, URL) == GitHubEndpoint("http://[::1]:9000", GITHUB_CLIENT_ID)
    for odd in ({"github": "x"}, {"github": {"url": 5}}, ["x"]):
        w.info = odd
        assert account.discover_github(http, URL).url == "https://github.com"
    w.info = {"github": {"url": "http://ghe.example.com"}}
    with pytest.raises(ConfigError, match="advertises a GitHub URL that is not https"):
        account.discover_github(http, URL)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            401,
            {"error": "github did not accept the token"},
            "enrollment failed (401: github did not accept the token)",
        ),
        (500, "echo: Authorization: Bearer gho_TOKEN", "enrollment failed (500)"),
        (400, {"error": "x" * 300}, f"enrollment failed (400: {'x' * 200})"),
        (200, {"login": "a"}, "enrollment failed (200: incomplete answer)"),
        (200, [], "enrollment failed (200: not a JSON object)"),
        (
            200,
            {"credential": "c", "login": "a", "userId": "abc"},
            "enrollment failed (200: userId is not numeric)",
        ),
        (
            200,
            {"credential": "c", "login": "a", "userId": 7, "expiresAt": "soon"},
            "enrollment failed (200: expiresAt is not a number)",
        ),
        # issue 14: the login is validated (GitHub syntax), never stored with hostile characters
        (
            200,
            {"credential": "c", "login": "alice\x1b]0;owned\x07", "userId": 7},
            "enrollment failed (200: login 'alice]0;owned' is not a GitHub login)",
        ),
        (
            200,
            {"credential": "c", "login": "ali\u202ece", "userId": 7},
            "enrollment failed (200: login 'alice' is not a GitHub login)",
        ),
        (
            200,
            {"credential": "c", "login": "alice\u200b", "userId": 7},
            "enrollment failed (200: login 'alice' is not a GitHub login)",
        ),
        (
            200,
            {"credential": "c", "login": "-alice", "userId": 7},
            "enrollment failed (200: login '-alice' is not a GitHub login)",
        ),
        (
            200,
            {"credential": "c", "login": "a--b", "userId": 7},
            "enrollment failed (200: login 'a--b' is not a GitHub login)",
        ),
        (
            200,
            {"credential": "c", "login": "a" * 40, "userId": 7},
            f"enrollment failed (200: login '{'a' * 40}' is not a GitHub login)",
        ),
        (
            200,
            {"credential": "c", "login": "", "userId": 7},
            "enrollment failed (200: login '' is not a GitHub login)",
        ),
    ],
)
def test_enrollment_failures_are_safe(
    world: tuple[World, TestClient], status: int, body: object, message: str
) -> None:
    w, client = world
    w.enroll = lambda request: (
        PlainTextResponse(body, status_code=status)
        if isinstance(body, str)
        else JSONResponse(body, status_code=status)
    )
    with pytest.raises(VegaError) as e:
        account.login(w.context(client), lambda code: None)
    assert e.value.message == message
    assert e.value.next_steps == ("vega login",)
    assert not w.settings.credential_path.exists()


def test_numeric_user_id_and_missing_expiry_are_accepted(world: tuple[World, TestClient]) -> None:
    w, client = world
    w.enroll = lambda request: JSONResponse({"credential": "c", "login": "a", "userId": 7})
    cred = account.login(w.context(client), lambda code: None).credential
    assert (cred.user_id, cred.expires_at_ms) == ("7", None)


def test_status_flow(world: tuple[World, TestClient]) -> None:
    w, client = world
    ctx = w.context(client)
    report = account.status(ctx)  # not enrolled: probes the control plane the settings name
    assert report.to_json()["enrolled"] is False
    assert report.control_plane == URL
    assert report.credential_state == "missing"
    save_credential(
        w.settings.credential_path,
        Credential(credential="c", login="octocat", user_id="1", expires_at_ms=NOW_MS - 1, url=URL),
    )
    report = account.status(ctx)
    assert report.expired
    assert report.reachable
    assert report.to_json() == {
        "enrolled": False,
        "login": "octocat",
        "namespace": "owner:1",
        "controlPlane": URL,
        "reachable": True,
        "latencyMs": 0,
        "credential": "expired",
    }


def test_logout_and_whoami(world: tuple[World, TestClient]) -> None:
    w, client = world
    account.login(w.context(client), lambda code: None)
    assert account.whoami(w.settings, NOW_MS).login == "octocat"
    with pytest.raises(ConfigError, match="credential expired"):
        account.whoami(w.settings, NOW_MS + 2)
    assert account.logout(w.settings) is True
    assert account.logout(w.settings) is False


@pytest.mark.parametrize(
    ("down", "prefix", "steps"),
    [
        ("vega.test", "cannot reach the control plane: GET https://vega.test/api/info failed", 2),
        (
            "github.com",
            "cannot reach GitHub at https://github.com: POST https://github.com/login/device/code",
            1,
        ),
    ],
)
def test_login_network_failures_teach(
    world: tuple[World, TestClient], down: str, prefix: str, steps: int
) -> None:
    w, client = world
    ctx = w.context(client)
    inner = ctx.http.client

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == down:
            raise httpx2.ConnectError("refused", request=request)
        return inner.send(request)

    http = Http(httpx2.Client(transport=httpx2.MockTransport(handler)), sleep=w.slept.append)
    ctx = account.AccountContext(
        settings=ctx.settings, http=http, now_ms=ctx.now_ms, sleep=ctx.sleep, monotonic=ctx.monotonic
    )
    with pytest.raises(NetworkError) as e:
        account.login(ctx, lambda code: None)
    assert e.value.message.startswith(prefix)
    assert len(e.value.next_steps) == steps


def test_enrollment_network_failure(world: tuple[World, TestClient]) -> None:
    w, client = world
    ctx = w.context(client)
    inner = ctx.http.client

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/owner/enroll":
            raise httpx2.ReadTimeout("slow", request=request)
        return inner.send(request)

    http = Http(httpx2.Client(transport=httpx2.MockTransport(handler)), sleep=w.slept.append)
    ctx = account.AccountContext(
        settings=ctx.settings, http=http, now_ms=ctx.now_ms, sleep=ctx.sleep, monotonic=ctx.monotonic
    )
    with pytest.raises(NetworkError) as e:
        account.login(ctx, lambda code: None)
    assert e.value.message.startswith("enrollment failed (POST https://vega.test/api/owner/enroll timed out")
    assert e.value.next_steps == ("vega login",)


def _answering(status: int, body: bytes = b"") -> Http:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if status == 0:
            raise httpx2.ConnectError("refused", request=request)
        return httpx2.Response(status, content=body)

    return Http(httpx2.Client(transport=httpx2.MockTransport(handler)), sleep=lambda _s: None)


_CRED = Credential(credential="v1.c.s", login="octocat", user_id="583231", expires_at_ms=None, url=URL)


@pytest.mark.parametrize(
    ("status", "body", "url", "want"),
    [
        (200, b'{"userId": "583231"}', URL, "valid"),
        (200, b'{"userId": "1"}', URL, "invalid"),  # the server speaks of someone else
        (401, b'{"error": "credential revoked"}', URL, "invalid"),
        (403, b"", URL, "invalid"),
        (404, b'{"error": "not found"}', URL, "not checked"),  # the original has no such endpoint
        (500, b"", URL, "not checked"),
        (200, b"not json", URL, "not checked"),
        (200, b"[1]", URL, "not checked"),
        (0, b"", URL, "not checked"),  # unreachable
        (200, b'{"userId": "583231"}', "https://elsewhere.test", "not checked"),  # another server's
    ],
)
def test_check_credential(status: int, body: bytes, url: str, want: str) -> None:
    assert account.check_credential(_answering(status, body), url, _CRED) == want


def test_login_to_a_wrong_url_blames_the_control_plane_not_github(world: tuple[World, TestClient]) -> None:
    """issue 12: ``vega login --url <server>/wrong`` names the URL, and never starts the device flow."""
    w, client = world
    ctx = w.context(client)
    wrong = account.AccountContext(
        settings=load_settings({"HOME": str(w.tmp)}, url=f"{URL}/wrong"),
        http=ctx.http,
        now_ms=ctx.now_ms,
        sleep=ctx.sleep,
        monotonic=ctx.monotonic,
    )
    with pytest.raises(ConfigError) as e:
        account.login(wrong, lambda code: None)
    assert e.value.message == f"{URL}/wrong is not a Vega control plane (its /nix-cache-info answered 404)"
    assert not any("github.com" in seen for seen in w.seen)
    assert not wrong.settings.credential_path.exists()
