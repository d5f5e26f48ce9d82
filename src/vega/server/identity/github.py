"""Verify a GitHub user access token (github.com or GitHub Enterprise).

Two ways, both :class:`UserDirectory`:

* :class:`GitHubAppTokens` -- when the server knows the Vega GitHub App's client secret:
  ``POST <api>/applications/<client_id>/token`` with HTTP basic auth (client id, client secret)
  and the body ``{"access_token": ...}``. GitHub answers 200 with the token's ``app`` and
  ``user`` only when the token was issued to that app (404 or 422 otherwise), so a token another
  app holds for the same user cannot enrol. The answer's ``app.client_id`` must be the
  configured client id, and the user comes from the answer's ``user``.
* :class:`GitHubApi` -- without the secret: ``GET <api>/user``, which accepts **any** user token
  of the user (``vega-server serve`` warns loudly about this at startup).

The token is used for this one request and never stored or logged. The API base is
``https://api.github.com`` for github.com and ``https://HOST/api/v3`` for GitHub Enterprise
Server (and for the development identity mode, which answers at ``<public URL>/api/v3``);
:func:`api_url_for` derives it from the web base URL.

Spec: protocol.md §1 (the token comes from the device flow with the Vega GitHub App's client
id), §4.6 (the server validates the GitHub token and binds the numeric user id); issue 4 (any
GitHub Enterprise base URL); GitHub REST "Check a token" (OAuth applications API).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote, urlsplit

import httpx2

from vega.errors import AuthError, FormatError, NetworkError
from vega.server.identity.fetch import FetchLimits, fetch_json

__all__ = [
    "GITHUB_URL",
    "GitHubApi",
    "GitHubAppTokens",
    "GitHubUser",
    "UserDirectory",
    "api_url_for",
    "parse_github_user",
    "parse_token_check",
]

GITHUB_URL = "https://github.com"
"""The default GitHub (web base URL)."""

_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")
_MAX_TOKEN_CHARS = 1024
_NOT_OURS = "github did not accept the token for this server's GitHub App"
_HEADERS = {
    "accept": "application/vnd.github+json",
    "user-agent": "vega-server",
    "x-github-api-version": "2022-11-28",
}


@dataclass(frozen=True, slots=True)
class GitHubUser:
    """The account a GitHub user token belongs to."""

    user_id: int
    """The immutable numeric user id."""
    login: str
    """The current login."""

    def __post_init__(self) -> None:
        if self.user_id <= 0:
            raise FormatError("github user: id must be a positive integer")
        if not _LOGIN.fullmatch(self.login):
            raise FormatError("github user: login is not a GitHub login")


class UserDirectory(Protocol):
    """Answers "whose token is this?" (GitHub's API, or the development identity mode)."""

    def user(self, token: str) -> GitHubUser:
        """The user ``token`` belongs to.

        Raises:
            AuthError: GitHub does not accept the token.
            NetworkError: GitHub could not be asked.
        """
        ...


def api_url_for(web_url: str) -> str:
    """The REST API base for a GitHub web base URL (``api.github.com`` or ``<base>/api/v3``)."""
    base = web_url.rstrip("/")
    if urlsplit(base).hostname == "github.com":
        return "https://api.github.com"
    return f"{base}/api/v3"


def _require_plausible(token: str) -> None:
    if not token or len(token) > _MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable():
        raise AuthError("github token is malformed", status=401, error="github token is malformed")


def _not_accepted(message: str = "github did not accept the token") -> AuthError:
    return AuthError(message, status=401, error=message)


def parse_github_user(obj: object) -> GitHubUser:
    """A :class:`GitHubUser` from the JSON of ``GET /user``.

    Raises:
        FormatError: ``id`` is not a positive integer or ``login`` not a login.
    """
    if not isinstance(obj, dict):
        raise FormatError("github user: expected a JSON object")
    uid, login = obj.get("id"), obj.get("login")
    if not isinstance(uid, int) or isinstance(uid, bool) or not isinstance(login, str):
        raise FormatError("github user: id must be an integer and login a string")
    return GitHubUser(user_id=uid, login=login)


@dataclass(frozen=True, slots=True)
class GitHubApi:
    """GitHub's REST API at ``api_url`` (see :func:`api_url_for`)."""

    http: httpx2.Client
    """The client requests go through."""
    api_url: str = "https://api.github.com"
    """REST API base, no trailing slash."""
    limits: FetchLimits = FetchLimits()  # noqa: RUF009 - frozen value
    """Timeout and body cap."""

    def user(self, token: str) -> GitHubUser:
        """``GET <api>/user`` with ``Authorization: Bearer <token>``.

        Raises:
            AuthError: GitHub answered 401 or 403, or the token is not plausible.
            NetworkError: GitHub could not be reached or answered something else.
        """
        _require_plausible(token)
        got = fetch_json(
            self.http,
            f"{self.api_url.rstrip('/')}/user",
            headers={"authorization": f"Bearer {token}", **_HEADERS},
            limits=self.limits,
        )
        if got.status in (401, 403):
            raise _not_accepted()
        if got.status != 200:
            raise NetworkError(f"github user lookup failed: status {got.status}")
        try:
            return parse_github_user(got.body)
        except FormatError as e:
            raise NetworkError(f"github user lookup returned an unusable answer: {e.message}") from e


def parse_token_check(obj: object, client_id: str) -> GitHubUser:
    """The user of a "check a token" answer, when the token belongs to the app ``client_id``.

    Raises:
        AuthError: the answer names another app.
        FormatError: the answer has no usable ``app.client_id`` or ``user``.
    """
    if not isinstance(obj, dict):
        raise FormatError("github token check: expected a JSON object")
    app = obj.get("app")
    got_id = app.get("client_id") if isinstance(app, dict) else None
    if not isinstance(got_id, str):
        raise FormatError("github token check: app.client_id must be a string")
    if got_id != client_id:
        raise _not_accepted(_NOT_OURS)
    return parse_github_user(obj.get("user"))


@dataclass(frozen=True, slots=True)
class GitHubAppTokens:
    """GitHub's "check a token" API for one GitHub App: only that app's user tokens are accepted."""

    http: httpx2.Client
    """The client requests go through."""
    client_id: str
    """The app's (public) client id."""
    client_secret: str = field(repr=False)
    """The app's client secret (basic auth password); never logged."""
    api_url: str = "https://api.github.com"
    """REST API base, no trailing slash."""
    limits: FetchLimits = FetchLimits()  # noqa: RUF009 - frozen value
    """Timeout and body cap."""

    def user(self, token: str) -> GitHubUser:
        """``POST <api>/applications/<client_id>/token`` with ``{"access_token": token}``.

        Raises:
            AuthError: the token is not plausible, or not a live token of this app (404, 422,
                or an answer naming another app).
            NetworkError: GitHub could not be reached, refused the app's credentials (401,
                403: the server is misconfigured), or answered something else.
        """
        _require_plausible(token)
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode("ascii")
        got = fetch_json(
            self.http,
            f"{self.api_url.rstrip('/')}/applications/{quote(self.client_id, safe='')}/token",
            headers={"authorization": f"Basic {basic}", **_HEADERS},
            limits=self.limits,
            method="POST",
            json_body={"access_token": token},
        )
        if got.status in (404, 422):
            raise _not_accepted(_NOT_OURS)
        if got.status in (401, 403):
            raise NetworkError(
                f"github refused the app's client credentials (status {got.status}): "
                "check github_client_id and the client secret"
            )
        if got.status != 200:
            raise NetworkError(f"github token check failed: status {got.status}")
        try:
            return parse_token_check(got.body, self.client_id)
        except FormatError as e:
            raise NetworkError(f"github token check returned an unusable answer: {e.message}") from e
