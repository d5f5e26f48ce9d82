"""Server-side identities: owner credentials, GitHub Actions OIDC, and the development mode.

Three lanes (issue 4):

* **owner** -- ``POST /api/owner/enroll`` checks a GitHub user token with GitHub (github.com,
  or any GitHub Enterprise base URL) and returns a short-lived owner credential signed with the
  enrolment key (``owner.py``); the GitHub token is not stored. With the Vega GitHub App's client
  secret configured, the token must have been issued to that app (GitHub's "check a token" API,
  ``github.py``); without it, any user token is accepted (``GET /user``) and
  :attr:`Authenticator.checks_app` is False, so ``vega-server serve`` warns.
  Credentials expire and can be revoked (``POST /api/owner/revoke`` revokes the presented one).
* **CI** -- Actions OIDC JWTs verified against the configured issuers' JWKS (``oidc.py``); the
  tenant and provenance come from the verified claims only.
* **reproducer** -- an OIDC identity whose ``job_workflow_ref`` matches a configured reproducer
  workflow pinned to a ref, on a GitHub-hosted runner (or a self-hosted one of a repository the
  operator named): ``OidcIdentity.is_reproducer``, docs/adr/0011.

Development identity mode (``dev.py``) adds a GitHub-compatible device flow, user API and
"check a token" API and an OIDC issuer to the same server; enrolment checks tokens through the
same :class:`~vega.server.identity.github.GitHubAppTokens` code as production, over an
in-process transport, and the issuer's keys are pinned, so no request goes to itself.

The control plane uses :class:`Authenticator` and nothing else from here; ``GET /api/info``
should include ``{"github": Authenticator.github_info()}`` so that ``vega login`` knows which
GitHub to run the device flow against.

Spec: protocol.md §1, §2.6, §4.6, §9, §10.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vega.core.signing import SecretKey
from vega.errors import AuthError, NetworkError, VegaError
from vega.server.db import Database
from vega.server.identity.dev import DevIdentity, DevSettings
from vega.server.identity.github import GITHUB_URL, GitHubApi, GitHubAppTokens, UserDirectory, api_url_for
from vega.server.identity.oidc import GITHUB_ACTIONS_ISSUER, JwksCache, OidcIdentity, OidcVerifier
from vega.server.identity.owner import MIGRATIONS, CredentialIssuer, OwnerIdentity

__all__ = [
    "GITHUB_CLIENT_ID",
    "MIGRATIONS",
    "Authenticator",
    "Enrollment",
    "IdentitySettings",
    "OidcIdentity",
    "OwnerIdentity",
    "bearer_token",
]

GITHUB_CLIENT_ID = "Iv23liYWrhwLxxmY8iK3"
"""The Vega GitHub App's public client id (protocol.md §1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentitySettings:
    """What the identity lanes need from the server's settings."""

    public_url: str
    """The control plane's public URL; OIDC tokens must carry it as ``aud``."""
    github_url: str = GITHUB_URL
    """GitHub web base URL (``https://github.com`` or a GitHub Enterprise URL)."""
    github_api_url: str | None = None
    """GitHub REST API base; derived from ``github_url`` when None."""
    github_client_id: str = GITHUB_CLIENT_ID
    """OAuth client id advertised to ``vega login``."""
    github_client_secret: str | None = field(default=None, repr=False)
    """That app's client secret: when set, only user tokens issued to the app can enrol."""
    oidc_issuers: tuple[str, ...] = (GITHUB_ACTIONS_ISSUER,)
    """Trusted Actions OIDC issuers (exact strings)."""
    reproducer_workflows: tuple[str, ...] = ()
    """``owner/repo/path@ref`` of workflows whose jobs are reproductions (a ref is required)."""
    reproducer_self_hosted: tuple[str, ...] = ()
    """``owner/repo`` repositories whose self-hosted runners may reproduce."""
    credential_ttl_s: int = 7 * 24 * 3600
    """Lifetime of an owner credential."""
    oidc_leeway_s: float = 30.0
    """Clock skew tolerated on ``exp``/``nbf``/``iat``."""
    dev: DevSettings | None = None
    """Development identity mode, when set (loopback only unless the operator forces it)."""
    oidc_max_token_lifetime_s: float = 3600.0
    """Longest ``exp - iat`` of an accepted OIDC token."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrollment:
    """The answer of ``POST /api/owner/enroll``."""

    credential: str
    """The signed owner credential."""
    login: str
    """GitHub login."""
    user_id: str
    """GitHub numeric user id, decimal string."""
    expires_at_ms: int
    """Expiry, epoch milliseconds."""

    def to_json(self) -> dict[str, object]:
        """The wire form (protocol.md §4.6)."""
        return {
            "credential": self.credential,
            "login": self.login,
            "userId": self.user_id,
            "expiresAt": self.expires_at_ms,
        }


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value.

    Raises:
        AuthError: the header is missing or not a bearer token.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token", status=401, error="missing bearer token")
    return token.strip()


class Authenticator:
    """Every identity check of the control plane.

    Args:
        settings: the identity settings.
        master: the master secret key (the enrolment key is derived from it).
        db: the server database (the ``identity`` migrations are applied on construction).
        http: client for GitHub's API and issuers' JWKS.
        now: clock, epoch seconds.
    """

    def __init__(
        self,
        settings: IdentitySettings,
        *,
        master: SecretKey,
        db: Database,
        http: httpx2.Client,
        now: Callable[[], float],
    ) -> None:
        self.settings = settings
        """The identity settings."""
        public_url = settings.public_url.rstrip("/")
        self.dev: DevIdentity | None = DevIdentity(public_url, settings.dev, now) if settings.dev else None
        """The development identity mode, when on."""
        self.jwks = JwksCache(http, now)
        """The issuers' key cache."""
        issuers = set(settings.oidc_issuers)
        self.users: UserDirectory
        """Who answers "whose GitHub token is this?"."""
        api_url = settings.github_api_url or api_url_for(settings.github_url)
        if self.dev is not None:
            self.jwks.add_static(self.dev.issuer, self.dev.public_keys())
            issuers.add(self.dev.issuer)
            self.users = GitHubAppTokens(
                httpx2.Client(transport=self.dev.transport()),
                self.dev.client_id,
                self.dev.client_secret,
                self.dev.github_api_url,
            )
        elif settings.github_client_secret:
            self.users = GitHubAppTokens(
                http, settings.github_client_id, settings.github_client_secret, api_url
            )
        else:
            self.users = GitHubApi(http, api_url)
        self._oidc = OidcVerifier(
            jwks=self.jwks,
            audience=public_url,
            issuers=frozenset(issuers),
            now=now,
            reproducer_workflows=settings.reproducer_workflows,
            reproducer_self_hosted=settings.reproducer_self_hosted,
            leeway_s=settings.oidc_leeway_s,
            max_lifetime_s=settings.oidc_max_token_lifetime_s,
        )
        self._credentials = CredentialIssuer(master, db, now, ttl_s=settings.credential_ttl_s)

    @property
    def checks_app(self) -> bool:
        """Whether enrolment accepts only tokens issued to the configured GitHub App."""
        return isinstance(self.users, GitHubAppTokens)

    def oidc(self, bearer: str) -> OidcIdentity:
        """Verify an Actions OIDC token (the bearer, without ``Bearer ``).

        Raises:
            AuthError: the token is not acceptable.
            NetworkError: the issuer's keys could not be fetched.
        """
        return self._oidc.verify(bearer)

    def owner(self, bearer: str) -> OwnerIdentity:
        """Verify an owner credential.

        Raises:
            AuthError: malformed, signed by another key, expired or revoked.
        """
        return self._credentials.verify(bearer)

    def enroll(self, github_token: str) -> Enrollment:
        """Check ``github_token`` with GitHub and issue an owner credential for its user.

        Raises:
            AuthError: GitHub does not accept the token.
            NetworkError: GitHub could not be asked.
        """
        user = self.users.user(github_token)
        credential, claims = self._credentials.issue(str(user.user_id), user.login)
        return Enrollment(
            credential=credential,
            login=user.login,
            user_id=claims.user_id,
            expires_at_ms=claims.expires_at_ms,
        )

    def revoke(self, credential: str) -> None:
        """Revoke an owner credential this server issued (idempotent).

        Raises:
            AuthError: it is not a credential this server signed.
        """
        self._credentials.revoke(credential)

    def github_info(self) -> dict[str, str]:
        """The GitHub ``vega login`` should use, for ``/api/info`` under the key ``github``."""
        if self.dev is not None:
            return {
                "url": self.dev.github_url,
                "apiUrl": self.dev.github_api_url,
                "clientId": self.dev.client_id,
            }
        return {
            "url": self.settings.github_url.rstrip("/"),
            "apiUrl": self.settings.github_api_url or api_url_for(self.settings.github_url),
            "clientId": self.settings.github_client_id,
        }

    def routes(self) -> list[Route]:
        """``POST /api/owner/enroll``, ``POST /api/owner/revoke``, and the development routes."""
        routes = [
            Route("/api/owner/enroll", self._enroll, methods=["POST"]),
            Route("/api/owner/revoke", self._revoke, methods=["POST"]),
            Route("/api/owner/whoami", self._whoami, methods=["GET"]),
        ]
        if self.dev is not None:
            routes.extend(self.dev.routes())
        return routes

    def _enroll(self, request: Request) -> Response:
        try:
            enrollment = self.enroll(bearer_token(request.headers.get("authorization")))
        except VegaError as e:
            return _error(e)
        return JSONResponse(enrollment.to_json(), headers={"cache-control": "no-store"})

    def _whoami(self, request: Request) -> Response:
        """Whether the presented owner credential is valid here now (``vega status``, ``doctor``)."""
        try:
            owner = self.owner(bearer_token(request.headers.get("authorization")))
        except VegaError as e:
            return _error(e)
        return JSONResponse(
            {"login": owner.login, "userId": owner.user_id, "namespace": owner.namespace},
            headers={"cache-control": "no-store"},
        )

    def _revoke(self, request: Request) -> Response:
        try:
            token = bearer_token(request.headers.get("authorization"))
            self.owner(token)
            self.revoke(token)
        except VegaError as e:
            return _error(e)
        return JSONResponse({"revoked": True})


def _error(e: VegaError) -> Response:
    if isinstance(e, AuthError):
        return JSONResponse({"error": e.message}, status_code=401)
    if isinstance(e, NetworkError):
        return JSONResponse({"error": "could not reach GitHub to verify the token"}, status_code=502)
    return JSONResponse({"error": "internal error"}, status_code=500)
