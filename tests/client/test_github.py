"""protocol.md §9 / RFC 8628: the device flow against GitHub's real protocol (MockTransport)
and against the development identity mode's routes (in process)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.testclient import TestClient

from vega.client.github import (
    DEVICE_GRANT,
    DeviceCode,
    GitHubEndpoint,
    parse_device_code,
    poll_for_token,
    request_actions_token,
    request_device_code,
)
from vega.client.http import Http
from vega.errors import FormatError, VegaError

GH = GitHubEndpoint("https://github.com", "Iv23liYWrhwLxxmY8iK3")


@dataclass
class Clock:
    t: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s

    def monotonic(self) -> float:
        return self.t


@dataclass
class FakeGitHub:
    """github.com's device-flow endpoints: a scripted list of token-endpoint answers."""

    answers: list[dict[str, object]]
    code_status: int = 200
    code_body: dict[str, object] = field(
        default_factory=lambda: {
            "device_code": "dc-123",
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://github.com/login/device",
            "expires_in": 900,
            "interval": 5,
        }
    )
    seen: list[httpx2.Request] = field(default_factory=list)

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(request)
        if request.url.path == "/login/device/code":
            return httpx2.Response(self.code_status, json=self.code_body)
        assert request.url.path == "/login/oauth/access_token"
        # GitHub answers 200 with an error field; the client must not rely on the status.
        return httpx2.Response(200, json=self.answers.pop(0))

    def http(self, clock: Clock) -> Http:
        return Http(httpx2.Client(transport=httpx2.MockTransport(self.handler)), sleep=clock.sleep)


def run_flow(gh: FakeGitHub, clock: Clock) -> str:
    http = gh.http(clock)
    code = request_device_code(http, GH)
    return poll_for_token(http, GH, code, sleep=clock.sleep, monotonic=clock.monotonic)


def test_pending_then_success() -> None:
    gh = FakeGitHub(
        [{"error": "authorization_pending"}, {"error": "authorization_pending"}, {"access_token": "gho_x"}]
    )
    clock = Clock()
    assert run_flow(gh, clock) == "gho_x"
    assert clock.slept == [5, 5, 5]  # sleep first, every time
    first = gh.seen[0]
    assert (str(first.url), json.loads(first.content)) == (
        "https://github.com/login/device/code",
        {"client_id": "Iv23liYWrhwLxxmY8iK3"},
    )
    poll = gh.seen[1]
    assert poll.headers["accept"] == "application/json"
    assert poll.headers["content-type"] == "application/json"
    assert json.loads(poll.content) == {
        "client_id": "Iv23liYWrhwLxxmY8iK3",
        "device_code": "dc-123",
        "grant_type": DEVICE_GRANT,
    }


def test_slow_down_adds_five_seconds_each_time() -> None:
    gh = FakeGitHub(
        [
            {"error": "slow_down"},
            {"error": "slow_down"},
            {"error": "authorization_pending"},
            {"access_token": "t"},
        ]
    )
    clock = Clock()
    assert run_flow(gh, clock) == "t"
    assert clock.slept == [5, 10, 15, 15]


def test_slow_down_takes_githubs_larger_interval() -> None:
    gh = FakeGitHub(
        [{"error": "slow_down", "interval": 20}, {"error": "slow_down", "interval": 3}, {"access_token": "t"}]
    )
    clock = Clock()
    run_flow(gh, clock)
    assert clock.slept == [5, 20, 25]


def test_expired_token_error() -> None:
    gh = FakeGitHub([{"error": "authorization_pending"}, {"error": "expired_token"}])
    with pytest.raises(VegaError) as e:
        run_flow(gh, Clock())
    assert e.value.message == "device code expired before authorization."
    assert e.value.next_steps == ("vega login",)


def test_access_denied() -> None:
    with pytest.raises(VegaError) as e:
        run_flow(FakeGitHub([{"error": "access_denied"}]), Clock())
    assert e.value.message == "authorization failed: access_denied"


@pytest.mark.parametrize("answer", [{}, {"access_token": ""}, {"error": 5}, {"error": ""}])
def test_no_usable_answer_is_unknown(answer: dict[str, object]) -> None:
    with pytest.raises(VegaError) as e:
        run_flow(FakeGitHub([answer]), Clock())
    assert e.value.message == "authorization failed: unknown"


def test_non_json_answer_is_unknown() -> None:
    clock = Clock()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=b"<html>")

    http = Http(httpx2.Client(transport=httpx2.MockTransport(handler)), sleep=clock.sleep)
    code = DeviceCode(device_code="d", user_code="u", verification_uri="v", expires_in_s=60, interval_s=1)
    with pytest.raises(VegaError, match="authorization failed: unknown"):
        poll_for_token(http, GH, code, sleep=clock.sleep, monotonic=clock.monotonic)


def test_deadline_passes_without_approval() -> None:
    gh = FakeGitHub([{"error": "authorization_pending"}] * 10)
    gh.code_body["expires_in"] = 12
    clock = Clock()
    with pytest.raises(VegaError) as e:
        run_flow(gh, clock)
    assert e.value.message == "device code expired before authorization."
    assert clock.slept == [5, 5, 5]  # polled at t+5, t+10, t+15; then t+15 >= t+12


def test_control_characters_in_errors_are_neutralised() -> None:
    with pytest.raises(VegaError) as e:
        run_flow(FakeGitHub([{"error": "bad\x1b[31m\nthing"}]), Clock())
    assert e.value.message == "authorization failed: bad[31m thing"


@pytest.mark.parametrize("status", [404, 500])
def test_device_code_request_failure(status: int) -> None:
    gh = FakeGitHub([], code_status=status)
    with pytest.raises(VegaError) as e:
        request_device_code(gh.http(Clock()), GH)
    assert e.value.message == f"device code request failed: {status}"


def test_device_code_defaults_and_validation() -> None:
    code = parse_device_code({"device_code": "SECRET-dc", "user_code": "u", "verification_uri": "https://v"})
    assert (code.expires_in_s, code.interval_s) == (900, 5)
    assert "SECRET" not in repr(code)
    bad: object
    for bad in (
        [],
        {"device_code": "d", "user_code": "u"},
        {"device_code": "d", "user_code": "u\x1b", "verification_uri": "v"},
        {"device_code": "d", "user_code": "u", "verification_uri": "v", "interval": -1},
        {"device_code": "d", "user_code": "u", "verification_uri": "v", "expires_in": True},
    ):
        with pytest.raises(FormatError):
            parse_device_code(bad)
    gh = FakeGitHub([])
    gh.code_body = {"user_code": "x"}
    with pytest.raises(VegaError, match="device code request failed: device code response"):
        request_device_code(gh.http(Clock()), GH)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_parse_device_code_arbitrary_json_raises_only_format_error(obj: object) -> None:
    with contextlib.suppress(FormatError):
        parse_device_code(obj)


def test_against_the_development_identity_mode(tmp_path: Path) -> None:
    """The same client code against the dev routes: pending once, then a token the user API accepts."""
    from vega.server.identity.dev import DEV_CLIENT_ID, DevIdentity, DevSettings

    clock = Clock(t=1_800_000_000.0)
    dev = DevIdentity(
        "https://vega.test", DevSettings(state_dir=tmp_path, poll_interval_s=5), clock.monotonic
    )
    with TestClient(Starlette(routes=dev.routes()), base_url="https://vega.test") as client:
        http = Http(client, sleep=clock.sleep)
        gh = GitHubEndpoint("https://vega.test", DEV_CLIENT_ID)
        code = request_device_code(http, gh)
        token = poll_for_token(http, gh, code, sleep=clock.sleep, monotonic=clock.monotonic)
        assert clock.slept == [5, 5]
        user = client.get("/api/v3/user", headers={"authorization": f"Bearer {token}"}).json()
        assert user["login"] == "vega-dev"
        bad = GitHubEndpoint("https://vega.test", "wrong")
        with pytest.raises(VegaError, match="authorization failed: incorrect_client_credentials"):
            poll_for_token(http, bad, code, sleep=clock.sleep, monotonic=clock.monotonic)


Handler = Callable[[httpx2.Request], httpx2.Response]


def test_request_actions_token_replaces_the_audience() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"count": 1, "value": "a.b.c"})

    http = Http(httpx2.Client(transport=httpx2.MockTransport(handler)))
    url = "https://pipelines.example/idtoken?api-version=2.0&audience=old"
    assert request_actions_token(http, url, "REQ", "https://vega.test") == "a.b.c"
    assert seen[0].url.params.get_list("audience") == ["https://vega.test"]
    assert seen[0].url.params["api-version"] == "2.0"
    assert seen[0].headers["authorization"] == "Bearer REQ"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (403, {"error": "no id-token permission"}, "OIDC token request failed (403: no id-token permission)"),
        (500, "Bearer REQ", "OIDC token request failed (500)"),
        (200, {"value": ""}, "OIDC token response has no value"),
        (200, "not json", "OIDC token response has no value"),
    ],
)
def test_request_actions_token_failures(status: int, body: object, message: str) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if isinstance(body, str):
            return httpx2.Response(status, content=body.encode())
        return httpx2.Response(status, json=body)

    http = Http(httpx2.Client(transport=httpx2.MockTransport(handler)), sleep=lambda s: None)
    with pytest.raises(VegaError) as e:
        request_actions_token(http, "https://x.test/t", "REQ", "aud")
    assert e.value.message == message
