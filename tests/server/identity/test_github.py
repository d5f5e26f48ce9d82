"""Issue 4: a GitHub user token is checked with GET <api>/user, on github.com or Enterprise."""

from __future__ import annotations

import base64
import contextlib
import json

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.errors import AuthError, FormatError, NetworkError
from vega.server.identity.github import (
    GitHubApi,
    GitHubAppTokens,
    GitHubUser,
    api_url_for,
    parse_github_user,
    parse_token_check,
)


def api(
    status: int, body: object, seen: list[httpx2.Request], api_url: str = "https://api.github.com"
) -> GitHubApi:
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(status, json=body)

    return GitHubApi(httpx2.Client(transport=httpx2.MockTransport(handler)), api_url)


def test_user_of_a_token() -> None:
    seen: list[httpx2.Request] = []
    user = api(200, {"login": "octocat", "id": 583231}, seen).user("gho_abc")
    assert user == GitHubUser(583231, "octocat")
    assert str(seen[0].url) == "https://api.github.com/user"
    assert seen[0].headers["authorization"] == "Bearer gho_abc"


def test_enterprise_base_url() -> None:
    seen: list[httpx2.Request] = []
    api(200, {"login": "a", "id": 1}, seen, api_url_for("https://ghe.example.com/")).user("t")
    assert str(seen[0].url) == "https://ghe.example.com/api/v3/user"
    assert api_url_for("https://github.com") == "https://api.github.com"


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_token(status: int) -> None:
    with pytest.raises(AuthError, match="github did not accept the token"):
        api(status, {"message": "Bad credentials"}, []).user("t")


@pytest.mark.parametrize(("status", "body"), [(500, {}), (200, {"id": "1", "login": "a"}), (200, [])])
def test_github_failures_are_network_errors(status: int, body: object) -> None:
    with pytest.raises(NetworkError):
        api(status, body, []).user("t")


@pytest.mark.parametrize("token", ["", "a b\n", "x" * 2000])
def test_implausible_tokens_are_not_sent(token: str) -> None:
    seen: list[httpx2.Request] = []
    with pytest.raises(AuthError):
        api(200, {}, seen).user(token)
    assert seen == []


@pytest.mark.parametrize(
    "obj", [{"id": 0, "login": "a"}, {"id": True, "login": "a"}, {"id": 1, "login": "-bad"}, {"id": 1}]
)
def test_parse_github_user_rejects(obj: object) -> None:
    with pytest.raises(FormatError):
        parse_github_user(obj)


def test_oversized_body_is_refused() -> None:
    seen: list[httpx2.Request] = []
    with pytest.raises(NetworkError, match="body over"):
        api(200, {"login": "a", "id": 1, "pad": "x" * 300_000}, seen).user("t")


def test_transport_failure_is_a_network_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    with pytest.raises(NetworkError):
        GitHubApi(httpx2.Client(transport=httpx2.MockTransport(handler))).user("t")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=40),
        lambda c: (
            st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(["id", "login", "x"]), c, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_parse_github_user_arbitrary_json_raises_only_format_error(obj: object) -> None:
    with contextlib.suppress(FormatError):
        user = parse_github_user(obj)
        assert user.user_id > 0


# -- the app check: POST /applications/<client_id>/token ------------------------------------------

CLIENT_ID = "Iv23liYWrhwLxxmY8iK3"


def check_answer(client_id: str = CLIENT_ID, uid: int = 583231, login: str = "octocat") -> dict[str, object]:
    return {
        "token": "ghu_abc",
        "app": {"client_id": client_id, "name": "vega", "url": "https://github.com/apps/vega-cache"},
        "user": {"login": login, "id": uid, "type": "User"},
    }


def app_tokens(status: int, body: object, seen: list[httpx2.Request]) -> GitHubAppTokens:
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(status, json=body)

    return GitHubAppTokens(httpx2.Client(transport=httpx2.MockTransport(handler)), CLIENT_ID, "the-secret")


def test_app_check_sends_basic_auth_and_the_token_in_the_body() -> None:
    seen: list[httpx2.Request] = []
    user = app_tokens(200, check_answer(), seen).user("ghu_abc")
    assert user == GitHubUser(583231, "octocat")
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == f"https://api.github.com/applications/{CLIENT_ID}/token"
    basic = base64.b64encode(f"{CLIENT_ID}:the-secret".encode()).decode()
    assert request.headers["authorization"] == f"Basic {basic}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.read()) == {"access_token": "ghu_abc"}
    assert "the-secret" not in repr(app_tokens(200, {}, []))


@pytest.mark.parametrize("status", [404, 422])
def test_app_check_refuses_tokens_of_other_apps(status: int) -> None:
    with pytest.raises(AuthError, match="for this server's GitHub App"):
        app_tokens(status, {"message": "Not Found"}, []).user("gho_other_app")


def test_app_check_refuses_an_answer_naming_another_app() -> None:
    with pytest.raises(AuthError, match="for this server's GitHub App"):
        app_tokens(200, check_answer(client_id="Iv1.someoneelse"), []).user("ghu_abc")


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {"message": "Bad credentials"}, "refused the app's client credentials"),
        (403, {}, "refused the app's client credentials"),
        (500, {}, "status 500"),
        (200, {"app": {"client_id": CLIENT_ID}}, "unusable answer"),
        (200, {"user": {"id": 1, "login": "a"}}, "unusable answer"),
        (200, [], "unusable answer"),
    ],
)
def test_app_check_failures_are_network_errors(status: int, body: object, message: str) -> None:
    with pytest.raises(NetworkError, match=message):
        app_tokens(status, body, []).user("ghu_abc")


def test_app_check_does_not_send_implausible_tokens() -> None:
    seen: list[httpx2.Request] = []
    with pytest.raises(AuthError):
        app_tokens(200, check_answer(), seen).user("a b\n")
    assert seen == []


_KEYS = st.sampled_from(["app", "client_id", "user", "id", "login", "x"])


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.sampled_from([CLIENT_ID, "octocat", ""]) | st.text(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(_KEYS, c, max_size=4),
        max_leaves=12,
    )
)
def test_parse_token_check_arbitrary_json_raises_only_format_or_auth_error(obj: object) -> None:
    with contextlib.suppress(FormatError, AuthError):
        assert parse_token_check(obj, CLIENT_ID).user_id > 0
