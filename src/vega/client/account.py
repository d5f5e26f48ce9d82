"""Account flows: ``login``, ``logout``, ``whoami``, ``status``. Each returns a value; front ends print.

``login`` asks the control plane which GitHub to use (``GET <url>/api/info``, key ``github``:
``{"url", "clientId"}``; github.com and the spec's client id when it advertises none), runs the
device flow there, enrols with ``POST <url>/api/owner/enroll`` (the GitHub token as bearer, no
body), and saves the credential. The GitHub token lives only in this function's frame.

Spec: cli.md §3-§6, §1.4 (safe errors), §1.5 (credential file); protocol.md §4.6, §9.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vega.client.credentials import (
    Credential,
    all_credentials,
    credential_for,
    forget_credential,
    load_credential_lenient,
    remember_credential,
    stored_path,
)
from vega.client.deadline import new_client
from vega.client.github import DeviceCode, GitHubEndpoint, poll_for_token, request_device_code
from vega.client.http import Http, HttpLimits, require_safe_url, safe_error
from vega.client.settings import DEFAULT_URL, GITHUB_CLIENT_ID, GITHUB_URL, Settings, system_clock_ms
from vega.core.safetext import GITHUB_LOGIN, safe_text
from vega.errors import ConfigError, FormatError, NetworkError, VegaError

__all__ = [
    "AccountContext",
    "CredentialCheck",
    "LoginResult",
    "StatusReport",
    "check_credential",
    "discover_github",
    "login",
    "logout",
    "open_account",
    "status",
    "whoami",
]

_LOGIN = ("vega login",)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountContext:
    """The effects the account flows use (real ones from :func:`open_account`, fakes in tests)."""

    settings: Settings
    """Resolved settings."""
    http: Http
    """Bounded HTTP."""
    now_ms: Callable[[], int]
    """Wall clock, epoch milliseconds."""
    sleep: Callable[[float], None]
    """Sleeps between device-flow polls."""
    monotonic: Callable[[], float]
    """Clock for deadlines and latencies, seconds."""


@contextmanager
def open_account(settings: Settings) -> Iterator[AccountContext]:
    """The real context: an ``httpx2.Client``, the system clocks and ``time.sleep``."""
    with new_client(headers={"user-agent": "vega-cli"}) as client:
        yield AccountContext(
            settings=settings,
            http=Http(client, settings.http),
            now_ms=system_clock_ms,
            sleep=time.sleep,
            monotonic=time.monotonic,
        )


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A successful enrolment."""

    credential: Credential
    """What was saved."""
    path: Path
    """Where it was saved."""


def discover_github(http: Http, url: str) -> GitHubEndpoint:
    """The GitHub the control plane at ``url`` advertises in ``/api/info`` (else github.com).

    Raises:
        ConfigError: the advertised GitHub URL is not https (or loopback).
        NetworkError: the control plane could not be reached.
    """
    resp = http.get(f"{url}/api/info", {"accept": "application/json"})
    github: object = None
    if not resp.ok:
        _require_binary_cache(http, url)
    if resp.ok:
        try:
            info = resp.json()
        except FormatError:
            info = None
        github = info.get("github") if isinstance(info, dict) else None
    if not isinstance(github, dict):
        return GitHubEndpoint(GITHUB_URL, GITHUB_CLIENT_ID)
    gh_url, client_id = github.get("url"), github.get("clientId")
    if not isinstance(gh_url, str) or not gh_url:
        return GitHubEndpoint(GITHUB_URL, GITHUB_CLIENT_ID)
    try:
        safe = require_safe_url(gh_url)
    except ConfigError:
        raise ConfigError(
            "the control plane advertises a GitHub URL that is not https (not shown: the server chose it)",
            next_steps=[f"ask the operator of {url} to advertise an https GitHub in /api/info"],
        ) from None
    return GitHubEndpoint(safe, client_id if isinstance(client_id, str) and client_id else GITHUB_CLIENT_ID)


def _require_binary_cache(http: Http, url: str) -> None:
    """Without ``/api/info`` (the original has none), ``url`` must at least be a binary cache.

    So that ``vega login --url https://host/wrong`` blames the URL, not GitHub.

    Raises:
        ConfigError: ``<url>/nix-cache-info`` is not a Nix cache-info answer.
    """
    info = http.get(f"{url}/nix-cache-info")
    if info.ok and b"StoreDir:" in info.body:
        return
    answer = f"answered {info.status}" if not info.ok else "is not a Nix binary cache"
    raise ConfigError(
        f"{url} is not a Vega control plane (its /nix-cache-info {answer})",
        next_steps=[
            "check the URL: it is the server's root, e.g. https://cache.example.org",
            f"curl -sS {url}/nix-cache-info",
        ],
    )


def login(ctx: AccountContext, on_code: Callable[[DeviceCode], None]) -> LoginResult:
    """Enrol this machine with ``ctx.settings.login_url``.

    Args:
        ctx: effects and settings.
        on_code: shows the user code (called once, before polling starts).

    Raises:
        VegaError: the device flow failed (texts in vega.client.github) or
            ``enrollment failed (<safe error>)``.
        ConfigError: the URL is invalid or the credential could not be written.
        NetworkError: a server could not be reached.
    """
    url = require_safe_url(ctx.settings.login_url)
    try:
        github = discover_github(ctx.http, url)
    except NetworkError as e:
        raise NetworkError(
            f"cannot reach the control plane: {e.message}",
            next_steps=[f"curl -sS {url}/nix-cache-info", "vega login --url <control plane URL>"],
        ) from e
    try:
        code = request_device_code(ctx.http, github)
        on_code(code)
        token = poll_for_token(ctx.http, github, code, sleep=ctx.sleep, monotonic=ctx.monotonic)
    except NetworkError as e:
        raise NetworkError(f"cannot reach GitHub at {github.url}: {e.message}", next_steps=_LOGIN) from e
    try:
        credential = _enroll(ctx.http, url, token)
    except NetworkError as e:
        raise NetworkError(f"enrollment failed ({e.message})", next_steps=_LOGIN) from e
    del token
    path = remember_credential(ctx.settings.config_dir, credential)
    return LoginResult(credential, path)


def _enroll(http: Http, url: str, github_token: str) -> Credential:
    # protocol.md §4.6: no body and no content-type; a single try (enrolment is not idempotent).
    resp = http.post(
        f"{url}/api/owner/enroll",
        headers={"authorization": f"Bearer {github_token}", "accept": "application/json"},
    )
    if not resp.ok:
        raise VegaError(f"enrollment failed ({safe_error(resp.status, resp.body)})", next_steps=_LOGIN)
    try:
        obj = resp.json()
    except FormatError:
        obj = None
    if not isinstance(obj, dict):
        raise VegaError(f"enrollment failed ({resp.status}: not a JSON object)", next_steps=_LOGIN)
    credential, login_name, user_id, expires = (
        obj.get(k) for k in ("credential", "login", "userId", "expiresAt")
    )
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not (
        isinstance(credential, str)
        and credential
        and isinstance(login_name, str)
        and isinstance(user_id, str)
    ):
        raise VegaError(f"enrollment failed ({resp.status}: incomplete answer)", next_steps=_LOGIN)
    if not user_id.isdigit() or len(user_id) > 20:
        raise VegaError(f"enrollment failed ({resp.status}: userId is not numeric)", next_steps=_LOGIN)
    if not GITHUB_LOGIN.fullmatch(login_name):
        # NOTE: refused, not cleaned: stripping an invisible character could turn it into
        # someone else's login. Shown made safe and short (the server chose these bytes).
        raise VegaError(
            f"enrollment failed ({resp.status}: login {safe_text(login_name, 60)!r} is not a GitHub login)",
            next_steps=_LOGIN,
        )
    if isinstance(expires, bool) or not isinstance(expires, int | float | None):
        raise VegaError(f"enrollment failed ({resp.status}: expiresAt is not a number)", next_steps=_LOGIN)
    return Credential(
        credential=credential,
        login=login_name,
        user_id=user_id,
        expires_at_ms=int(expires) if expires is not None else None,
        url=url,
    )


def logout(settings: Settings, *, everywhere: bool = False) -> bool:
    """Delete the credential of ``settings.url`` (else the current one), or every one.

    No server call (cli.md §4). False when there was nothing to remove.

    Raises:
        ConfigError: a file exists but could not be removed.
    """
    if not everywhere:
        return forget_credential(settings.config_dir, settings.url)
    removed = False
    for cred in all_credentials(settings.config_dir):
        removed |= forget_credential(settings.config_dir, cred.url)
    removed |= forget_credential(settings.config_dir, None)
    return removed


def whoami(settings: Settings, now_ms: int) -> Credential:
    """The credential of ``settings.url`` (else the current one), strictly loaded (no network).

    Raises:
        ConfigError: not enrolled, malformed, invalid URL or expired (cli.md §1.5 texts).
    """
    return credential_for(settings.config_dir, settings.url, now_ms)


CredentialCheck = Literal["valid", "invalid", "not checked"]
"""What the control plane said of a credential: it signed it and it stands, it refused it, or it
could not be asked (unreachable, or a control plane without ``GET /api/owner/whoami``)."""


def check_credential(http: Http, url: str, cred: Credential) -> CredentialCheck:
    """Ask the control plane at ``url`` whether ``cred`` is valid there now (docs/server-api.md).

    Only a 401 or 403 from ``GET <url>/api/owner/whoami`` makes a credential ``invalid``: a
    control plane without the endpoint (404, the original), an error or no answer is
    ``not checked``, never valid.
    """
    if cred.url.rstrip("/") != url.rstrip("/"):
        return "not checked"
    try:
        resp = http.get(
            f"{url}/api/owner/whoami",
            {"authorization": f"Bearer {cred.credential}", "accept": "application/json"},
        )
    except (NetworkError, ConfigError):
        return "not checked"
    if resp.status in (401, 403):
        return "invalid"
    if not resp.ok:
        return "not checked"
    try:
        obj = resp.json()
    except FormatError:
        return "not checked"
    if isinstance(obj, dict) and obj.get("userId") == cred.user_id:
        return "valid"
    return "invalid" if isinstance(obj, dict) else "not checked"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    """Identity and connectivity (cli.md §6)."""

    credential: Credential | None
    """The leniently loaded credential, if any."""
    expired: bool
    """Whether that credential has expired."""
    control_plane: str
    """``--url``, else ``$VEGA_URL``, else the credential's URL, else the default."""
    reachable: bool
    """Whether ``GET <control plane>/nix-cache-info`` answered 2xx."""
    latency_ms: int
    """How long that probe took."""
    corrupt: bool = False
    """A credential file exists but cannot be read (``vega whoami`` fails on it too)."""
    check: CredentialCheck = "not checked"
    """What the control plane said of the credential."""

    @property
    def enrolled(self) -> bool:
        """A credential is present, not expired, and not refused by the control plane."""
        return self.credential is not None and not self.expired and self.check != "invalid"

    @property
    def credential_state(self) -> str:
        """``missing``, ``corrupt``, ``expired``, or the control plane's verdict."""
        if self.credential is None:
            return "corrupt" if self.corrupt else "missing"
        return "expired" if self.expired else self.check

    def to_json(self) -> dict[str, object]:
        """The ``--json`` object of cli.md §6, plus ``credential`` (its state)."""
        cred = self.credential
        return {
            "enrolled": self.enrolled,
            "login": cred.login if cred else None,
            "namespace": cred.namespace if cred else None,
            "controlPlane": self.control_plane,
            "reachable": self.reachable,
            "latencyMs": self.latency_ms,
            "credential": self.credential_state,
        }


def status(ctx: AccountContext) -> StatusReport:
    """Lenient credential load, a timed reachability probe, then the credential asked of the server.

    Never raises for the server's sake.
    """
    path = ctx.settings.credential_path
    if ctx.settings.url is not None and stored_path(ctx.settings.config_dir, ctx.settings.url).exists():
        path = stored_path(ctx.settings.config_dir, ctx.settings.url)
    cred = load_credential_lenient(path)
    try:
        corrupt = cred is None and path.exists()
    except OSError:
        corrupt = True
    url = ctx.settings.url or (cred.url if cred else DEFAULT_URL)
    probe = Http(
        ctx.http.client,
        HttpLimits(timeout_s=ctx.settings.status_timeout_s, tries=1, max_body_bytes=64 * 1024),
        sleep=ctx.sleep,
        monotonic=ctx.monotonic,
    )
    start = ctx.monotonic()
    try:
        reachable = probe.get(f"{url}/nix-cache-info").ok
    except (NetworkError, ConfigError):
        reachable = False
    latency_ms = max(0, round((ctx.monotonic() - start) * 1000))
    expired = cred.is_expired(ctx.now_ms()) if cred else False
    check: CredentialCheck = "not checked"
    if cred is not None and not expired and reachable:
        check = check_credential(probe, url, cred)
    return StatusReport(
        credential=cred,
        expired=expired,
        control_plane=url,
        reachable=reachable,
        latency_ms=latency_ms,
        corrupt=corrupt,
        check=check,
    )
