r"""Development identity mode: a GitHub and an Actions OIDC issuer inside the control plane.

**For local development and tests only.** With it, the unmodified ``vega login``,
``vega-attest`` and ``vega-reproduce`` run end to end on one machine, without github.com:

* a GitHub-compatible **device flow** at the root of the public URL, laid out as GitHub
  Enterprise Server lays it out: ``POST /login/device/code`` and
  ``POST /login/oauth/access_token`` (RFC 8628; GitHub's JSON shapes). The configured
  development user is approved without a browser, after ``pending_polls`` answers of
  ``authorization_pending`` (so the client's real polling loop runs); a poll sooner than the
  interval gets ``slow_down`` and the interval grows by 5 s;
* a GitHub-compatible **user API**: ``GET /api/v3/user`` (``Authorization: Bearer``),
  ``GET /api/v3/users/<login>`` (any well-formed login has a stable id: the dev user's own, else
  the ``repository_owner_id`` CI tokens of that owner carry), and
  GitHub's **check a token** API: ``POST /api/v3/applications/<client_id>/token`` with basic
  auth (the development client id and :attr:`DevIdentity.client_secret`, derived from the
  state secret) and ``{"access_token": ...}``, answering 200 with ``app.client_id`` and ``user``
  for a token this mode issued and 404 otherwise. Enrolment uses it through the production
  :class:`~vega.server.identity.github.GitHubAppTokens`, over :meth:`DevIdentity.transport` (in
  process, so the server never calls itself over the network);
* an **OIDC issuer** at ``<public URL>/_dev/oidc``: ``/.well-known/openid-configuration``,
  ``/.well-known/jwks``, and an Actions-compatible token endpoint
  ``GET /_dev/oidc/token?audience=...`` with ``Authorization: Bearer <request token>``,
  answering ``{"value": "<JWT>"}`` (protocol.md §10). The RSA key is generated at first run and
  kept (mode 0600) in the state directory. The request token is server-signed (HMAC-SHA-256 with
  a secret kept beside the key) and says which repository, commit, workflow and run to mint for;
* ``POST /_dev/ci-token`` (JSON ``{"repository", "sha", "workflow", "ref"?, "runId"?,
  "runAttempt"?, "repositoryId"?, "repositoryOwnerId"?, "workflowSha"?, "runnerEnvironment"?}``)
  and the ``dev-ci-token`` command create request tokens and print the environment of a simulated
  CI job. ``workflow`` may be a full ``owner/repo/path@ref`` (a reusable workflow of another
  repository, e.g. the reproducer); tokens say ``runner_environment: github-hosted`` unless
  ``runnerEnvironment`` is ``self-hosted``; ``job_workflow_sha`` is ``workflowSha``, else the
  ref when it is a commit, else the job's ``sha``.

A simulated CI job, against a server at ``http://127.0.0.1:8080`` in development mode::

    eval "$(vega-server dev-ci-token --url http://127.0.0.1:8080 \
              --repo alice/hello --sha $(git rev-parse HEAD) --workflow .github/workflows/vega.yml)"
    # or, from anywhere that can reach the server:
    curl -s -X POST http://127.0.0.1:8080/_dev/ci-token \
         -d '{"repository":"alice/hello","sha":"<40 hex>","workflow":".github/workflows/vega.yml"}'
    vega-attest ...          # reads ACTIONS_ID_TOKEN_REQUEST_URL / ACTIONS_ID_TOKEN_REQUEST_TOKEN

which sets ``ACTIONS_ID_TOKEN_REQUEST_URL=http://127.0.0.1:8080/_dev/oidc/token``,
``ACTIONS_ID_TOKEN_REQUEST_TOKEN=<request token>``, ``GITHUB_REPOSITORY``, ``GITHUB_SHA`` and
``VEGA_URL``. ``python -m vega.server.identity.dev dev-ci-token --url URL --state-dir DIR ...``
is the same command; docs/development-identity.md has the details.

Spec: protocol.md §9 (device flow), §10 (OIDC token request); issue 4 (development identity mode).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import inspect
import ipaddress
import json
import os
import re
import secrets
import shlex
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx2
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from vega.errors import AuthError, ConfigError, FormatError
from vega.server.identity.github import GitHubUser

__all__ = [
    "DEV_BANNER",
    "DEV_CLIENT_ID",
    "DEV_ISSUER_PATH",
    "DevIdentity",
    "DevSettings",
    "ci_token_command",
    "is_loopback_bind",
]

DEV_CLIENT_ID = "vega-dev-client"
"""The OAuth client id the development device flow expects (advertised in ``/api/info``)."""
DEV_ISSUER_PATH = "/_dev/oidc"
"""Path of the development OIDC issuer under the public URL."""
DEV_BANNER = (
    "DEVELOPMENT IDENTITY MODE: this server approves a fixed GitHub user without a browser and "
    "mints GitHub Actions OIDC tokens for any repository. Never expose it to a network."
)
"""The loud label ``vega-server serve`` prints once at startup when the mode is on."""

_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_SHA = re.compile(r"[0-9a-f]{40}")
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
_KEY_FILE = "dev-oidc-rsa.pem"
_SECRET_FILE = "dev-secret"  # noqa: S105 - a file name
_MAX_BODY = 16 * 1024
_MAX_DEPTH = 32
_USER_TOKEN_TTL_S = 3600


def is_loopback_bind(host: str) -> bool:
    """Whether binding ``host`` keeps the server on loopback (development mode's default rule)."""
    return host.strip("[]").lower() in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


@dataclass(frozen=True, slots=True, kw_only=True)
class DevSettings:
    """Knobs of the development identity mode."""

    state_dir: Path
    """Where the RSA key and the request-token secret live (created 0700, files 0600)."""
    login: str = "vega-dev"
    """Login of the development GitHub user."""
    user_id: int = 1000001
    """Numeric id of the development GitHub user."""
    poll_interval_s: int = 1
    """Device-flow ``interval`` advertised to clients (tests use 0)."""
    pending_polls: int = 1
    """How many polls are answered ``authorization_pending`` before approval."""
    device_expires_s: int = 900
    """Device-code lifetime (``expires_in``)."""
    id_token_ttl_s: int = 600
    """Lifetime of a minted OIDC token."""
    request_token_ttl_s: int = 6 * 3600
    """Lifetime of a CI request token (one simulated job)."""

    def __post_init__(self) -> None:
        for name, most in (
            ("device_expires_s", 3600),
            ("id_token_ttl_s", 3600),
            ("request_token_ttl_s", 24 * 3600),
        ):
            if not 1 <= getattr(self, name) <= most:
                raise ConfigError(
                    f"development mode: {name} must be from 1 to {most}, got {getattr(self, name)}"
                )


@dataclass(slots=True)
class _Device:
    expires_at: float
    interval: float
    last_poll: float
    polls: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    repository: str
    repository_id: str
    repository_owner_id: str
    sha: str
    ref: str
    job_workflow_ref: str
    run_id: str
    run_attempt: str
    job_workflow_sha: str = ""
    runner_environment: str = "github-hosted"


_RUNNER_ENVIRONMENTS = ("github-hosted", "self-hosted")


class DevIdentity:
    """The development GitHub (device flow, user API) and OIDC issuer of one control plane.

    Args:
        public_url: the control plane's public URL (no trailing slash).
        settings: the mode's knobs.
        now: clock, epoch seconds.
    """

    def __init__(self, public_url: str, settings: DevSettings, now: Callable[[], float]) -> None:
        self.public_url = public_url.rstrip("/")
        """The control plane's public URL."""
        self.settings = settings
        """The mode's knobs."""
        self._now = now
        self._key, self._secret = _load_state(settings.state_dir)
        numbers = self._key.public_key().public_numbers()
        self._jwk = {"kty": "RSA", "n": _b64url(_int_bytes(numbers.n)), "e": _b64url(_int_bytes(numbers.e))}
        canonical = json.dumps(self._jwk, separators=(",", ":"), sort_keys=True).encode()
        self.kid = _b64url(hashlib.sha256(canonical).digest())
        """The key id (RFC 7638 thumbprint) of the issuer's signing key."""
        self._devices: dict[str, _Device] = {}
        self._lock = threading.Lock()
        self.dev_user = GitHubUser(user_id=settings.user_id, login=settings.login)
        """The development GitHub user every device flow approves."""

    # -- what the rest of the server reads --------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The OIDC issuer URL (``<public URL>/_dev/oidc``)."""
        return f"{self.public_url}{DEV_ISSUER_PATH}"

    @property
    def github_url(self) -> str:
        """The GitHub web base URL clients run the device flow against."""
        return self.public_url

    @property
    def github_api_url(self) -> str:
        """The GitHub REST API base (GitHub Enterprise layout)."""
        return f"{self.public_url}/api/v3"

    @property
    def client_id(self) -> str:
        """The OAuth client id of the development device flow."""
        return DEV_CLIENT_ID

    def public_keys(self) -> dict[str, rsa.RSAPublicKey]:
        """The issuer's verification keys by ``kid`` (pinned in the JWKS cache; no self-fetch)."""
        return {self.kid: self._key.public_key()}

    @property
    def client_secret(self) -> str:
        """The development app's client secret (basic auth of the check-a-token API)."""
        return hmac.new(self._secret, b"vega-dev-client-secret", hashlib.sha256).hexdigest()

    def check_token(self, client_id: str, authorization: str, body: bytes) -> tuple[int, dict[str, object]]:
        """GitHub's "check a token" for the development app: ``(status, JSON answer)``.

        Args:
            client_id: the ``<client_id>`` of the request path.
            authorization: the ``Authorization`` header (basic auth: client id and secret).
            body: the request body, ``{"access_token": "..."}``.
        """
        scheme, _, encoded = authorization.partition(" ")
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        want = f"{DEV_CLIENT_ID}:{self.client_secret}".encode()
        if client_id != DEV_CLIENT_ID or scheme.lower() != "basic" or not hmac.compare_digest(given, want):
            return 404, {"message": "Not Found"}
        try:
            obj = _loads(body)
        except (ValueError, UnicodeDecodeError, _BodyError):
            obj = None
        token = obj.get("access_token") if isinstance(obj, dict) else None
        if not isinstance(token, str) or not token:
            return 422, {"message": "Validation Failed"}
        try:
            user = self.user(token)
        except AuthError:
            return 404, {"message": "Not Found"}
        return 200, {
            "token": token,
            "app": {"client_id": DEV_CLIENT_ID, "name": "vega (development)", "url": self.public_url},
            "user": {"login": user.login, "id": user.user_id, "type": "User"},
            "scopes": [],
        }

    def transport(self) -> httpx2.BaseTransport:
        """An in-process transport answering the check-a-token API (for :class:`GitHubAppTokens`)."""
        prefix = f"{urlsplit(self.github_api_url).path}/applications/"

        def handle(request: httpx2.Request) -> httpx2.Response:
            path = unquote(request.url.path)
            if request.method != "POST" or not path.startswith(prefix) or not path.endswith("/token"):
                return httpx2.Response(404, json={"message": "Not Found"})
            client_id = path[len(prefix) : -len("/token")]
            status, answer = self.check_token(
                client_id, request.headers.get("authorization", ""), request.read()[:_MAX_BODY]
            )
            return httpx2.Response(status, json=answer)

        return httpx2.MockTransport(handle)

    def user(self, token: str) -> GitHubUser:
        """The development user, when ``token`` is an access token this mode issued.

        This makes the mode a :class:`~vega.server.identity.github.UserDirectory`, so enrolment
        needs no HTTP call to itself.

        Raises:
            AuthError: it is not.
        """
        payload = self._open("user", token.removeprefix("ghu_"))
        if payload is None or payload.get("sub") != str(self.dev_user.user_id):
            message = "github did not accept the token"
            raise AuthError(message, status=401, error=message)
        return self.dev_user

    # -- CI request tokens ------------------------------------------------------------------------

    def mint_request_token(
        self,
        *,
        repository: str,
        sha: str,
        workflow: str = ".github/workflows/vega.yml",
        ref: str = "refs/heads/main",
        run_id: str | None = None,
        run_attempt: str = "1",
        repository_id: str | None = None,
        repository_owner_id: str | None = None,
        job_workflow_sha: str | None = None,
        runner_environment: str = "github-hosted",
    ) -> str:
        """A request token for one simulated job (what ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` holds).

        ``workflow`` is a full ``owner/repo/path@ref`` or a path inside ``repository``.
        Ids not given are derived from the names (stable) and the run id is random.
        ``job_workflow_sha`` defaults to the workflow ref when it is a commit, else to ``sha``;
        ``runner_environment`` is ``github-hosted`` or ``self-hosted``.

        Raises:
            ConfigError: a value is malformed.
        """
        if not _REPOSITORY.fullmatch(repository):
            raise ConfigError(f"repository must be owner/repo, got {repository[:100]!r}")
        if not _SHA.fullmatch(sha):
            raise ConfigError("sha must be 40 lower-case hex characters")
        workflow_ref = workflow if "@" in workflow else f"{repository}/{workflow.lstrip('/')}@{ref}"
        run = run_id or str(secrets.randbelow(9 * 10**9) + 10**9)
        for name, value in (("run id", run), ("run attempt", run_attempt)):
            if not value.isdigit() or value.startswith("0"):
                raise ConfigError(f"{name} must be a positive integer, got {value[:20]!r}")
        owner = repository.split("/", 1)[0]
        workflow_at = workflow_ref.rpartition("@")[2]
        workflow_sha = job_workflow_sha or (workflow_at if _SHA.fullmatch(workflow_at) else sha)
        if not _SHA.fullmatch(workflow_sha):
            raise ConfigError("workflow sha must be 40 lower-case hex characters")
        if runner_environment not in _RUNNER_ENVIRONMENTS:
            raise ConfigError(f"runner environment must be one of {', '.join(_RUNNER_ENVIRONMENTS)}")
        for name, given in (("repository id", repository_id), ("repository owner id", repository_owner_id)):
            if given is not None and (not given.isdigit() or given.startswith("0") or len(given) > 20):
                raise ConfigError(f"{name} must be a positive integer, got {given[:20]!r}")
        job = {
            "repository": repository,
            "repository_id": repository_id or _stable_id("repo", repository),
            "repository_owner_id": repository_owner_id or _stable_id("owner", owner),
            "sha": sha,
            "ref": ref,
            "job_workflow_ref": workflow_ref,
            "run_id": run,
            "run_attempt": run_attempt,
            "job_workflow_sha": workflow_sha,
            "runner_environment": runner_environment,
            "exp": int(self._now()) + self.settings.request_token_ttl_s,
        }
        return self._seal("ci", job)

    def ci_env(self, **job: Any) -> dict[str, str]:
        """The environment of a simulated CI job (see the module docstring)."""
        token = self.mint_request_token(**job)
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.issuer}/token",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": token,
            "GITHUB_REPOSITORY": str(job["repository"]),
            "GITHUB_SHA": str(job["sha"]),
            "VEGA_URL": self.public_url,
        }

    def mint_id_token(self, request_token: str, audience: str) -> str:
        """An Actions-compatible OIDC JWT for the job ``request_token`` names.

        Raises:
            AuthError: the request token is not valid.
        """
        payload = self._open("ci", request_token)
        if payload is None:
            message = "request token is not valid"
            raise AuthError(message, status=401, error=message)
        job = _Job(**{k: str(payload[k]) for k in _Job.__dataclass_fields__ if k in payload})
        now = int(self._now())
        owner = job.repository.split("/", 1)[0]
        claims = {
            "jti": secrets.token_hex(16),
            "sub": f"repo:{job.repository}:ref:{job.ref}",
            "aud": audience,
            "ref": job.ref,
            "sha": job.sha,
            "repository": job.repository,
            "repository_owner": owner,
            "repository_owner_id": job.repository_owner_id,
            "repository_id": job.repository_id,
            "repository_visibility": "private",
            "run_id": job.run_id,
            "run_number": job.run_id,
            "run_attempt": job.run_attempt,
            "actor": self.dev_user.login,
            "actor_id": str(self.dev_user.user_id),
            "workflow": job.job_workflow_ref.split("@", 1)[0].rsplit("/", 1)[-1],
            "workflow_ref": job.job_workflow_ref,
            "workflow_sha": job.sha,
            "job_workflow_ref": job.job_workflow_ref,
            "job_workflow_sha": job.job_workflow_sha or job.sha,
            "event_name": "push",
            "ref_type": "branch",
            "runner_environment": job.runner_environment,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + self.settings.id_token_ttl_s,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    # -- HTTP -------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The mode's Starlette routes (mount at the root of the public URL).

        Every route refuses a request whose ``Host`` (or ``Origin``, when sent) is not a loopback
        name or the public URL's host (DNS rebinding: a web page cannot reach them through a
        name of its own that resolves to 127.0.0.1), and answers 413 for a body over 16 KiB and
        400 for JSON nested deeper than 32 levels.
        """
        g = self._guarded
        return [
            Route("/login/device/code", g(self._device_code), methods=["POST"]),
            Route("/login/device", g(self._device_page), methods=["GET"]),
            Route("/login/oauth/access_token", g(self._access_token), methods=["POST"]),
            Route("/api/v3/user", g(self._user_api), methods=["GET"]),
            Route("/api/v3/users/{login}", g(self._users_api), methods=["GET"]),
            Route("/api/v3/applications/{client_id}/token", g(self._check_token_api), methods=["POST"]),
            Route(f"{DEV_ISSUER_PATH}/.well-known/openid-configuration", g(self._openid_configuration)),
            Route(f"{DEV_ISSUER_PATH}/.well-known/jwks", g(self._jwks)),
            Route(f"{DEV_ISSUER_PATH}/token", g(self._token), methods=["GET"]),
            Route("/_dev/ci-token", g(self._ci_token), methods=["POST"]),
        ]

    def _is_own_host(self, host: str | None) -> bool:
        return host is not None and (
            _is_loopback_name(host) or host.lower() == (urlsplit(self.public_url).hostname or "")
        )

    def _foreign(self, request: Request) -> str | None:
        """Why a request did not come through a name of this server, or None."""
        try:
            host = urlsplit(f"//{request.headers.get('host', '')}").hostname
        except ValueError:
            host = None
        if not self._is_own_host(host):
            return "development routes answer only to a loopback host or the public URL's host"
        origin = request.headers.get("origin")
        if origin is not None:
            try:
                parts = urlsplit(origin)
                origin_host = parts.hostname if parts.scheme in ("http", "https") else None
            except ValueError:
                origin_host = None
            if not self._is_own_host(origin_host):
                return "development routes refuse cross-origin requests"
        return None

    def _guarded(
        self, fn: Callable[[Request], Awaitable[Response] | Response]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            refusal = self._foreign(request)
            if refusal is not None:
                return JSONResponse({"error": refusal}, status_code=403)
            try:
                answer = fn(request)
                return await answer if inspect.isawaitable(answer) else answer
            except _BodyError as e:
                return JSONResponse({"error": e.message}, status_code=e.status)

        return endpoint

    async def _device_code(self, request: Request) -> Response:
        fields = await _form_or_json(request)
        if fields.get("client_id") != DEV_CLIENT_ID:
            return JSONResponse({"error": "incorrect_client_credentials"}, status_code=401)
        now = self._now()
        code = self._seal(
            "device", {"exp": int(now) + self.settings.device_expires_s, "n": secrets.token_hex(8)}
        )
        with self._lock:
            for stale in [k for k, d in self._devices.items() if d.expires_at <= now]:
                del self._devices[stale]
            self._devices[code] = _Device(
                expires_at=now + self.settings.device_expires_s,
                interval=self.settings.poll_interval_s,
                last_poll=now,
            )
        return JSONResponse(
            {
                "device_code": code,
                "user_code": f"{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}",
                "verification_uri": f"{self.public_url}/login/device",
                "expires_in": self.settings.device_expires_s,
                "interval": self.settings.poll_interval_s,
            }
        )

    def _device_page(self, request: Request) -> Response:
        return PlainTextResponse(
            f"{DEV_BANNER}\nDevice codes are approved automatically as {self.dev_user.login}.\n"
        )

    async def _access_token(self, request: Request) -> Response:
        fields = await _form_or_json(request)
        if fields.get("client_id") != DEV_CLIENT_ID:
            return JSONResponse({"error": "incorrect_client_credentials"})
        if fields.get("grant_type") != _DEVICE_GRANT:
            return JSONResponse({"error": "unsupported_grant_type"})
        code = fields.get("device_code", "")
        now = self._now()
        with self._lock:
            device = self._devices.get(code)
            if device is None:
                return JSONResponse({"error": "incorrect_device_code"})
            if now >= device.expires_at:
                del self._devices[code]
                return JSONResponse({"error": "expired_token"})
            if now - device.last_poll < device.interval:
                device.interval += 5
                device.last_poll = now
                return JSONResponse({"error": "slow_down", "interval": device.interval})
            device.last_poll = now
            device.polls += 1
            if device.polls <= self.settings.pending_polls:
                return JSONResponse({"error": "authorization_pending"})
            del self._devices[code]
        token = self._seal("user", {"sub": str(self.dev_user.user_id), "exp": int(now) + _USER_TOKEN_TTL_S})
        return JSONResponse({"access_token": f"ghu_{token}", "token_type": "bearer", "scope": ""})

    def _user_api(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() not in ("bearer", "token"):
                raise AuthError("no token", status=401)
            user = self.user(token.strip())
        except AuthError:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse({"login": user.login, "id": user.user_id, "type": "User", "site_admin": False})

    def _users_api(self, request: Request) -> Response:
        """GitHub's ``GET /users/<login>``: the development user, or a stable id for any other login.

        Ids match the ``repository_owner_id`` the development issuer puts in CI tokens of that
        owner's repositories, so ``vega trust add <owner>`` names the builder of those runs.
        """
        login = str(request.path_params["login"])
        if not _LOGIN.fullmatch(login):
            return JSONResponse(
                {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, status_code=404
            )
        if login.lower() == self.dev_user.login.lower():
            user_id, login = self.dev_user.user_id, self.dev_user.login
        else:
            user_id = int(_stable_id("owner", login))
        return JSONResponse({"login": login, "id": user_id, "type": "User", "site_admin": False})

    async def _check_token_api(self, request: Request) -> Response:
        status, answer = self.check_token(
            request.path_params["client_id"],
            request.headers.get("authorization", ""),
            await _read_body(request),
        )
        return JSONResponse(answer, status_code=status)

    def _openid_configuration(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "jwks_uri": f"{self.issuer}/.well-known/jwks",
                "subject_types_supported": ["public", "pairwise"],
                "response_types_supported": ["id_token"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": [
                    "sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "sha", "repository",
                    "repository_id", "repository_owner", "repository_owner_id", "run_id",
                    "run_attempt", "job_workflow_ref", "job_workflow_sha", "runner_environment",
                ],
                "scopes_supported": ["openid"],
            }
        )  # fmt: skip

    def _jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [{**self._jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]})

    def _token(self, request: Request) -> Response:
        audience = request.query_params.get("audience", "")
        if not audience:
            return JSONResponse({"error": "audience is required"}, status_code=400)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return JSONResponse({"error": "bearer request token required"}, status_code=401)
        try:
            value = self.mint_id_token(token.strip(), audience)
        except AuthError as e:
            return JSONResponse({"error": e.message}, status_code=401)
        return JSONResponse({"count": 1, "value": value})

    async def _ci_token(self, request: Request) -> Response:
        fields = await _json_object(request)
        try:
            env = self.ci_env(
                repository=str(fields.get("repository", "")),
                sha=str(fields.get("sha", "")),
                workflow=str(fields.get("workflow") or ".github/workflows/vega.yml"),
                ref=str(fields.get("ref") or "refs/heads/main"),
                run_id=str(fields["runId"]) if fields.get("runId") else None,
                run_attempt=str(fields.get("runAttempt") or "1"),
                repository_id=str(fields["repositoryId"]) if fields.get("repositoryId") else None,
                repository_owner_id=str(fields.get("repositoryOwnerId") or fields["ownerId"])
                if fields.get("repositoryOwnerId") or fields.get("ownerId")
                else None,
                job_workflow_sha=str(fields["workflowSha"]) if fields.get("workflowSha") else None,
                runner_environment=str(fields.get("runnerEnvironment") or "github-hosted"),
            )
        except ConfigError as e:
            return JSONResponse({"error": e.message}, status_code=400)
        return JSONResponse(env)

    # -- sealed tokens ----------------------------------------------------------------------------

    def _seal(self, kind: str, payload: Mapping[str, object]) -> str:
        body = _b64url(json.dumps({**payload, "kind": kind}, separators=(",", ":")).encode())
        mac = hmac.new(self._secret, f"vega-dev-{kind}.{body}".encode(), hashlib.sha256).digest()
        return f"{body}.{_b64url(mac)}"

    def _open(self, kind: str, token: str) -> dict[str, object] | None:
        body, dot, mac_text = token.partition(".")
        if not dot or len(token) > 4096 or not token.isascii():
            return None
        want = hmac.new(self._secret, f"vega-dev-{kind}.{body}".encode(), hashlib.sha256).digest()
        try:
            mac = _unb64url(mac_text)
            payload = json.loads(_unb64url(body))
        except (FormatError, ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(mac, want) or not isinstance(payload, dict) or payload.get("kind") != kind:
            return None
        exp = payload.get("exp")
        now = self._now()
        if (
            not isinstance(exp, int)
            or isinstance(exp, bool)
            or now >= exp
            or exp - now > self._lifetime(kind)
        ):
            return None  # expired, or valid for longer than this mode ever issues
        return payload

    def _lifetime(self, kind: str) -> int:
        """The longest lifetime a sealed token of ``kind`` is issued with."""
        return {
            "ci": self.settings.request_token_ttl_s,
            "device": self.settings.device_expires_s,
            "user": _USER_TOKEN_TTL_S,
        }.get(kind, 0)


def _is_loopback_name(host: str) -> bool:
    """Whether a host name or address is loopback (``localhost``, 127/8, ``::1``)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stable_id(kind: str, name: str) -> str:
    digest = hashlib.sha256(f"vega-dev-{kind}:{name.lower()}".encode()).digest()
    return str(int.from_bytes(digest[:4], "big") % 900_000_000 + 100_000_000)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise FormatError("not base64url") from e


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


class _BodyError(Exception):
    """A request body the development routes refuse (413 too large, 400 nested too deeply)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _loads(raw: bytes) -> object:
    """``json.loads`` of a body, refusing nesting deeper than ``_MAX_DEPTH`` before parsing.

    Raises:
        _BodyError: nested too deeply.
        ValueError: not JSON.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    if deepest > _MAX_DEPTH:
        raise _BodyError(f"body: JSON nested deeper than {_MAX_DEPTH} levels", 400)
    try:
        return json.loads(raw)
    except RecursionError:
        raise _BodyError("body: JSON nested too deeply", 400) from None


async def _form_or_json(request: Request) -> dict[str, str]:
    """GitHub accepts both JSON and form bodies on the device-flow endpoints."""
    raw = await _read_body(request)
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            obj = _loads(raw)
        except (ValueError, UnicodeDecodeError):
            return {}
        return {k: v for k, v in obj.items() if isinstance(v, str)} if isinstance(obj, dict) else {}
    return dict(parse_qsl(raw.decode("utf-8", "replace")))


async def _json_object(request: Request) -> dict[str, object]:
    try:
        obj = _loads(await _read_body(request) or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


async def _read_body(request: Request) -> bytes:
    """The request body.

    Raises:
        _BodyError: 413 when it is (or is declared) larger than ``_MAX_BODY`` bytes.
    """
    declared = request.headers.get("content-length", "")
    too_large = _BodyError(f"request body larger than {_MAX_BODY} bytes", 413)
    if declared.isdigit() and int(declared) > _MAX_BODY:
        raise too_large
    chunks: list[bytes] = []
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > _MAX_BODY:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _load_state(state_dir: Path) -> tuple[rsa.RSAPrivateKey, bytes]:
    """Load or create the issuer's RSA key and the HMAC secret (directory 0700, files 0600)."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path, secret_path = state_dir / _KEY_FILE, state_dir / _SECRET_FILE
    if not key_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_new(key_path, pem)
    if not secret_path.exists():
        _write_new(secret_path, secrets.token_bytes(32))
    loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ConfigError(f"{key_path} is not an RSA private key")
    secret = secret_path.read_bytes()
    if len(secret) < 32:
        raise ConfigError(f"{secret_path} is too short")
    return loaded, secret


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 unless another process won the race."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def ci_token_command(
    argv: Sequence[str],
    *,
    default_url: str | None = None,
    default_state_dir: Path | None = None,
    now: Callable[[], float] | None = None,
    out: TextIO | None = None,
) -> int:
    """``dev-ci-token``: print ``export`` lines that give a shell a simulated CI job's environment.

    Args:
        argv: the command's arguments (after ``dev-ci-token``).
        default_url: the server's public URL when ``--url`` is absent.
        default_state_dir: the development state directory when ``--state-dir`` is absent.
        now: clock (epoch seconds); the real one when omitted.
        out: where to print (stdout).
    """
    import time

    parser = argparse.ArgumentParser(
        prog="vega-server dev-ci-token",
        description="Create a development CI request token and print the job's environment as exports.",
        epilog=(
            "example:\n"
            '  eval "$(vega-server dev-ci-token --repo alice/hello --sha $(git rev-parse HEAD))"\n'
            "  vega-attest"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default=default_url, required=default_url is None, help="public URL")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="the server's data directory (the state lives in DIR/dev-identity), as for serve",
    )
    parser.add_argument("--state-dir", type=Path, help="the development state directory itself")
    parser.add_argument("--repo", required=True, help="owner/repo the job runs for")
    parser.add_argument("--sha", required=True, help="commit (40 hex)")
    parser.add_argument(
        "--workflow", default=".github/workflows/vega.yml", help="path or owner/repo/path@ref"
    )
    parser.add_argument("--ref", default="refs/heads/main")
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--run-attempt", default="1")
    parser.add_argument("--repo-id", default=None, help="repository_id (default: derived from the name)")
    parser.add_argument(
        "--owner-id", default=None, help="repository_owner_id (default: derived from the owner)"
    )
    parser.add_argument(
        "--workflow-sha", default=None, help="job_workflow_sha (default: the commit of the ref)"
    )
    parser.add_argument(
        "--runner-environment",
        default="github-hosted",
        choices=_RUNNER_ENVIRONMENTS,
        help="runner_environment",
    )
    args = parser.parse_args(list(argv))
    state_dir = args.state_dir or (args.data_dir / "dev-identity" if args.data_dir else default_state_dir)
    if state_dir is None:
        parser.error("one of --state-dir or --data-dir is required")
    identity = DevIdentity(
        args.url,
        DevSettings(state_dir=state_dir),
        now or time.time,  # noqa: TID251 - real clock
    )
    try:
        env = identity.ci_env(
            repository=args.repo,
            sha=args.sha,
            workflow=args.workflow,
            ref=args.ref,
            run_id=args.run_id,
            run_attempt=args.run_attempt,
            repository_id=args.repo_id,
            repository_owner_id=args.owner_id,
            job_workflow_sha=args.workflow_sha,
            runner_environment=args.runner_environment,
        )
    except ConfigError as e:
        sys.stderr.write(f"error: {e.message}\n")
        return 1
    stream = out or sys.stdout
    for name, value in env.items():
        stream.write(f"export {name}={shlex.quote(value)}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover - manual use
    if sys.argv[1:2] == ["dev-ci-token"]:
        raise SystemExit(ci_token_command(sys.argv[2:]))
    sys.stderr.write("usage: python -m vega.server.identity.dev dev-ci-token --url URL --state-dir DIR ...\n")
    raise SystemExit(2)
