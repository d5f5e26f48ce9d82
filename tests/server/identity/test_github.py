"""Issue 4: a GitHub user token is checked with GET <api>/user, on github.com or Enterprise."""

from __future__ import annotations

import contextlib

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.errors import AuthError, FormatError, NetworkError
from vega.server.identity.github import GitHubApi, GitHubUser, api_url_for, parse_github_user


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
