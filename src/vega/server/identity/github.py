"""Verify a GitHub user access token with ``GET <api>/user`` (github.com or GitHub Enterprise).

The token is used for this one request and never stored or logged. The API base is
``https://api.github.com`` for github.com and ``https://HOST/api/v3`` for GitHub Enterprise
Server (and for the development identity mode, which answers at ``<public URL>/api/v3``);
:func:`api_url_for` derives it from the web base URL.

Spec: protocol.md §4.6 (the server validates the GitHub token and binds the numeric user id);
issue 4 (any GitHub Enterprise base URL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx2

from vega.errors import AuthError, FormatError, NetworkError
from vega.server.identity.fetch import FetchLimits, fetch_json

__all__ = [
    "GITHUB_URL",
    "GitHubApi",
    "GitHubUser",
    "UserDirectory",
    "api_url_for",
    "parse_github_user",
]

GITHUB_URL = "https://github.com"
"""The default GitHub (web base URL)."""

_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")
_MAX_TOKEN_CHARS = 1024


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
        if not token or len(token) > _MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable():
            raise AuthError("github token is malformed", status=401, error="github token is malformed")
        got = fetch_json(
            self.http,
            f"{self.api_url.rstrip('/')}/user",
            headers={
                "authorization": f"Bearer {token}",
                "accept": "application/vnd.github+json",
                "user-agent": "vega-server",
                "x-github-api-version": "2022-11-28",
            },
            limits=self.limits,
        )
        if got.status in (401, 403):
            message = "github did not accept the token"
            raise AuthError(message, status=401, error=message)
        if got.status != 200:
            raise NetworkError(f"github user lookup failed: status {got.status}")
        try:
            return parse_github_user(got.body)
        except FormatError as e:
            raise NetworkError(f"github user lookup returned an unusable answer: {e.message}") from e
