"""``vega trust`` and ``vega view``: trust edges, the personal view, and nix.conf lines for it.

* Subjects: a numeric GitHub id passes through; a login (optionally ``github:<login>``, which the
  original refuses and we accept) is resolved to its immutable id through the GitHub REST API the
  control plane advertises in ``/api/info`` (``github.apiUrl``; ``https://api.github.com`` when
  it advertises none), ``GET <api>/users/<login>``.
* Edges: ``POST /api/trust``, ``POST /api/trust/revoke``, ``GET /api/trust`` with the owner
  credential of that control plane (protocol.md §4.8).
* View: ``POST /api/view/token`` (``{"rotate": true}`` to rotate; protocol.md §4.7), checked as
  cli.md §16 requires before anything is printed.
* nix.conf: :func:`nix_conf_edit` adds the view's ``extra-substituters`` and
  ``extra-trusted-public-keys`` lines idempotently (a second run changes nothing) and replaces a
  line of an older view of the same control plane (a rotated token), keeping every other line.

Spec: cli.md §1.4 (safe errors), §15, §16; protocol.md §4.7, §4.8; issue 8.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from vega.client.credentials import Credential
from vega.client.http import Http, require_safe_url, safe_error
from vega.core.trust import TrustEdge, TrustRequest, TrustScope, ViewToken
from vega.errors import ConfigError, FormatError, NetworkError

__all__ = [
    "GITHUB_API",
    "UPSTREAM_KEY",
    "NixConfEdit",
    "Subject",
    "discover_github_api",
    "get_view",
    "list_edges",
    "nix_conf_edit",
    "post_edge",
    "resolve_subject",
    "scope_from_flags",
    "scope_label",
    "view_lines",
]

GITHUB_API = "https://api.github.com"
UPSTREAM = "https://cache.nixos.org"
UPSTREAM_KEY = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
_NUMERIC = re.compile(r"[0-9]+")
_FLAKE = re.compile(r"[a-z0-9][a-z0-9-]{0,38}/[a-z0-9._-]{1,100}")
_ORG = re.compile(r"[a-z0-9][a-z0-9-]{0,38}")


@dataclass(frozen=True, slots=True)
class Subject:
    """A builder as typed and as resolved."""

    text: str
    """What the user typed."""
    builder_id: str
    """The numeric GitHub id, decimal string."""


def _headers(cred: Credential) -> dict[str, str]:
    return {"authorization": f"Bearer {cred.credential}", "content-type": "application/json"}


def discover_github_api(http: Http, url: str) -> str:
    """The GitHub REST API base the control plane at ``url`` advertises (else api.github.com).

    Raises:
        ConfigError: the advertised URL is not https (or loopback).
    """
    resp = http.get(f"{url}/api/info", {"accept": "application/json"})
    api: object = None
    if resp.ok:
        try:
            info = resp.json()
        except FormatError:
            info = None
        github = info.get("github") if isinstance(info, dict) else None
        api = github.get("apiUrl") if isinstance(github, dict) else None
    if not isinstance(api, str) or not api:
        return GITHUB_API
    try:
        return require_safe_url(api)
    except ConfigError:
        raise ConfigError(
            "the control plane advertises a GitHub API URL that is not https",
            next_steps=[f"ask the operator of {url} to advertise an https GitHub in /api/info"],
        ) from None


def resolve_subject(http: Http, api_url: str, subject: str) -> Subject:
    """A numeric id as it is; a login (or ``github:<login>``) through ``GET <api>/users/<login>``.

    Raises:
        ConfigError: cli.md §15's texts.
    """
    text = subject.strip()
    if _NUMERIC.fullmatch(text):
        return Subject(subject, text)
    login = text.removeprefix("github:")
    if not login:
        raise ConfigError(f"could not resolve GitHub user '{subject}': empty login")
    resp = http.get(
        f"{api_url}/users/{quote(login, safe='')}",
        {"accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28"},
    )
    if not resp.ok:
        raise ConfigError(f"could not resolve GitHub user '{subject}': {resp.status}")
    try:
        body = resp.json()
    except FormatError:
        body = None
    user_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
        raise ConfigError(f"GitHub user '{subject}' has no valid id")
    return Subject(subject, str(user_id))


def scope_from_flags(package: str | None, flake: str | None, org: str | None) -> TrustScope:
    """The scope of ``--package``/``--flake``/``--org`` (at most one; none is ``all``).

    Raises:
        ConfigError: cli.md §15's texts.
    """
    given = [f for f, v in (("--package", package), ("--flake", flake), ("--org", org)) if v is not None]
    if len(given) > 1:
        raise ConfigError("use at most one of --package, --flake, --org")
    if package is not None:
        if not package.strip():
            raise ConfigError("--package must not be empty")
        try:
            return TrustScope("package", package.strip())
        except FormatError:
            raise ConfigError("--package must be a store-path name (e.g. hello-2.12)") from None
    if flake is not None:
        lowered = flake.strip().lower()
        if not _FLAKE.fullmatch(lowered):
            raise ConfigError("--flake must be a GitHub owner/repo")
        return TrustScope("flake", lowered)
    if org is not None:
        lowered = org.strip().lower()
        if not _ORG.fullmatch(lowered):
            raise ConfigError("--org must be a GitHub owner")
        return TrustScope("org", lowered)
    return TrustScope("all")


def scope_label(scope: TrustScope) -> str:
    """cli.md §15's scope labels."""
    if scope.kind == "package":
        return f"the {scope.name} package"
    if scope.kind == "flake":
        return f"builds with verified provenance from the {scope.name} flake"
    if scope.kind == "org":
        return f"builds with verified provenance from any {scope.name} repo"
    return "all builds"


def post_edge(http: Http, cred: Credential, request: TrustRequest, *, revoke: bool = False) -> None:
    """``POST /api/trust`` (or ``/api/trust/revoke``); idempotent on the server, so retried.

    Raises:
        NetworkError: ``<path> failed (<e>)`` (cli.md §1.4).
    """
    path = "/api/trust/revoke" if revoke else "/api/trust"
    body = request.to_json()
    if revoke:
        body.pop("acceptUnreproducible", None)
    resp = http.post_json(f"{cred.url}{path}", body, _headers(cred), idempotent=True)
    if not resp.ok:
        raise NetworkError(f"{path} failed ({safe_error(resp.status, resp.body)})")


def list_edges(http: Http, cred: Credential) -> tuple[list[TrustEdge], object]:
    """``GET /api/trust``: the parsed edges and the body as returned (for ``--json``).

    Raises:
        NetworkError: ``list failed (<e>)``.
        FormatError: the body is not ``{"edges": [...]}``.
    """
    resp = http.get(f"{cred.url}/api/trust", _headers(cred))
    if not resp.ok:
        raise NetworkError(f"list failed ({safe_error(resp.status, resp.body)})")
    body = resp.json()
    raw = body.get("edges") if isinstance(body, dict) else None
    if not isinstance(raw, list):
        raise FormatError('GET /api/trust: expected {"edges": [...]}')
    edges = []
    for item in raw:
        if not isinstance(item, dict):
            raise FormatError("GET /api/trust: an edge is not an object")
        revoked = item.get("revokedAt")
        edges.append(
            TrustEdge(
                builder=str(item.get("builder")),
                scope=TrustScope.from_json(item.get("scope")),
                accept_unreproducible=item.get("acceptUnreproducible") is True,
                revoked_at_ms=revoked if isinstance(revoked, int) and not isinstance(revoked, bool) else None,
            )
        )
    return edges, body


def get_view(http: Http, cred: Credential, *, rotate: bool = False) -> ViewToken:
    """``POST /api/view/token`` (``rotate`` asks for a new token, killing the old one).

    Raises:
        NetworkError: ``could not get your view (<e>)``.
        FormatError: the answer fails cli.md §16's checks.
    """
    url = f"{cred.url}/api/view/token"
    if rotate:
        resp = http.post_json(url, {"rotate": True}, _headers(cred))
    else:
        resp = http.post(url, None, _headers(cred), idempotent=True)
    if not resp.ok:
        raise NetworkError(f"could not get your view ({safe_error(resp.status, resp.body)})")
    return ViewToken.from_json(resp.json())


def view_lines(base_url: str, view: ViewToken) -> list[str]:
    """The two nix.conf lines of a view (cli.md §16)."""
    return [
        f"extra-substituters = {base_url}{view.substituter}",
        f"extra-trusted-public-keys = {view.public_key} {view.shared_key}",
    ]


@dataclass(frozen=True, slots=True)
class NixConfEdit:
    """The result of :func:`nix_conf_edit`."""

    before: str
    after: str

    @property
    def changed(self) -> bool:
        """Whether the file would change."""
        return self.before != self.after

    def diff(self, path: str) -> str:
        """A unified diff of the change (empty when nothing changes)."""
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"{path} (before)",
                tofile=path,
            )
        )


_MARK = "# added by vega view"


def nix_conf_edit(text: str, base_url: str, lines: Sequence[str]) -> NixConfEdit:
    """Add the view's lines to a nix.conf's text idempotently.

    A line this tool wrote before for a view of the same control plane (an older, rotated token)
    is replaced; a line already present is left alone; everything else is kept as it is.
    """
    old_view = re.compile(rf"^\s*extra-substituters\s*=\s*{re.escape(base_url)}/u/[A-Za-z0-9_-]+\s*$")
    original = text.splitlines()
    kept = [line for line in original if not (old_view.match(line) and line.strip() not in lines)]
    have = {line.strip() for line in kept}
    missing = [line for line in lines if line not in have]
    if not missing and len(kept) == len(original):
        return NixConfEdit(text, text)
    body = "\n".join(kept)
    if body:
        body += "\n"
    if missing:
        if _MARK not in have:
            body += _MARK + "\n"
        body += "\n".join(missing) + "\n"
    return NixConfEdit(text, body)
