"""GitHub Actions OIDC: JWKS cache and token verification, giving an :class:`OidcIdentity`.

A token is accepted only if all of these hold, checked in this order:

1. its header says ``alg: RS256`` (``none``, ``HS256`` and every other algorithm are refused
   before any key is looked up, so a public key can never serve as an HMAC secret) and names a
   ``kid``;
2. its ``iss`` is exactly one of the configured issuers (GitHub's
   ``https://token.actions.githubusercontent.com`` by default; a GitHub Enterprise issuer is
   ``https://HOST/_services/token``);
3. the ``kid`` is in that issuer's JWKS (fetched via OpenID discovery, cached, refetched once
   when an unknown ``kid`` arrives and the cached set is older than ``min_refresh_s``);
4. the RS256 signature verifies with that key (PyJWT, ``algorithms=["RS256"]``);
5. ``aud`` is a single string naming the control plane's public URL: both are compared in the
   normalised form of cli.md §1.3 (scheme and host lower-cased, a default port dropped, one
   trailing ``/`` removed), so ``https://Vega.test:443/`` matches ``https://vega.test``; a
   different scheme, host, port or path never does;
6. ``exp``, ``nbf`` and ``iat`` are present and hold against the injected clock, with a small
   leeway;
7. the GitHub claims ``repository``, ``repository_id``, ``repository_owner_id``, ``sha``,
   ``run_id``, ``run_attempt`` and ``job_workflow_ref`` are present and well formed.

Tenant and provenance come from these verified claims only, never from a request body.

The reproducer lane (docs/adr/0011): a job is a reproduction only when its ``job_workflow_ref``
matches a configured :class:`ReproducerWorkflow` exactly (entries must name a ref: a branch
``@refs/heads/<name>``, a tag ``@refs/tags/<name>`` or an operator-written tag pattern such as
``@refs/tags/v*``, or a full commit SHA; an entry without a ref is refused when the server
starts), its ``job_workflow_sha`` is a full commit (and equals the configured SHA when the entry
is a SHA), and its ``runner_environment`` is ``github-hosted`` (a self-hosted runner counts only
for a repository the operator named). A fork's "impostor" commit, reachable through the parent
repository's name as ``owner/repo/path@<sha>``, therefore never matches a branch or tag entry.

Tenant case: the tenant is the ``repository`` claim exactly as GitHub writes it (the canonical
case of ``owner/repo`` at the time of the run). GitHub names are case-insensitive, but tokens
always carry the canonical spelling, so one repository yields one tenant string; after a rename
the tenant changes, which is why the immutable ``repository_id`` and ``repository_owner_id`` are
kept alongside for binding.

Spec: protocol.md §1 (gh-actions tenant and provenance), §10 (token request); issue 4;
libraries.md (PyJWT pitfalls).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from vega.errors import AuthError, ConfigError, FormatError, NetworkError
from vega.server.identity.fetch import FetchLimits, fetch_json, require_object

__all__ = [
    "GITHUB_ACTIONS_ISSUER",
    "REQUIRED_CLAIMS",
    "JwksCache",
    "OidcIdentity",
    "OidcVerifier",
    "ReproducerWorkflow",
    "is_reproducer_workflow",
    "normalise_audience",
    "parse_jwks",
    "parse_reproducer_workflows",
]

log = logging.getLogger(__name__)

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
"""The issuer of github.com's Actions OIDC tokens."""

REQUIRED_CLAIMS: tuple[str, ...] = (
    "repository",
    "repository_id",
    "repository_owner_id",
    "sha",
    "run_id",
    "run_attempt",
    "job_workflow_ref",
)
"""GitHub claims every accepted token must carry (besides iss, aud, exp, nbf, iat)."""

_MAX_TOKEN_CHARS = 16 * 1024
_MIN_RSA_BITS = 2048
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
_DIGITS = re.compile(r"[1-9][0-9]{0,19}")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_WORKFLOW_REF = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[^@\s]+@[^\s]+")
_WORKFLOW_PATH = re.compile(
    r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}/\.github/workflows/[A-Za-z0-9_.-]+\.ya?ml"
)
_REF_NAME = r"[A-Za-z0-9_.+-]+(?:/[A-Za-z0-9_.+-]+)*"
_BRANCH_REF = re.compile(rf"refs/heads/{_REF_NAME}")
_TAG_REF = re.compile(rf"refs/tags/{_REF_NAME}")
_TAG_PATTERN = re.compile(r"refs/tags/[A-Za-z0-9_.+-]*\*")
_COMMIT_REF = re.compile(r"[0-9a-f]{40}")
GITHUB_HOSTED = "github-hosted"
"""The ``runner_environment`` of a job on a GitHub-hosted (ephemeral, GitHub-controlled) runner."""


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_audience(url: str) -> str | None:
    """``url`` in the normalised form of cli.md §1.3, or None when it is not an http(s) URL.

    Scheme and host are lower-cased, the scheme's default port is dropped and one trailing ``/``
    is removed; the path keeps its case. User-info, a query or a fragment (which a public URL
    never has) make the URL unusable as an audience.
    """
    if "?" in url or "#" in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = parts.path[:-1] if parts.path.endswith("/") else parts.path
    return f"{scheme}://{netloc}{path}"


def _reject(message: str) -> AuthError:
    return AuthError(message, status=401, error=message)


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcIdentity:
    """The verified identity of one GitHub Actions job."""

    issuer: str
    """The token's issuer (one of the configured ones)."""
    subject: str
    """The ``sub`` claim (e.g. ``repo:owner/repo:ref:refs/heads/main``)."""
    repository: str
    """``owner/repo`` as GitHub wrote it."""
    repository_id: str
    """Immutable numeric repository id (decimal string)."""
    repository_owner_id: str
    """Immutable numeric owner id (decimal string)."""
    sha: str
    """The commit the job ran on (lower-case hex)."""
    run_id: str
    """The workflow run id (decimal string)."""
    run_attempt: str
    """The attempt number of that run (decimal string)."""
    job_workflow_ref: str
    """``owner/repo/.github/workflows/file.yml@ref`` of the workflow that defines the job."""
    is_reproducer: bool
    """Whether the job is a reproduction: a configured reproducer workflow at its configured ref,
    on a GitHub-hosted runner or one the operator named (docs/adr/0011)."""
    job_workflow_sha: str = ""
    """Commit of the workflow file that defines the job (``job_workflow_sha``), when sent."""
    runner_environment: str = ""
    """``github-hosted`` or ``self-hosted`` (``runner_environment``), when sent."""

    @property
    def tenant(self) -> str:
        """The gh-actions tenant: ``owner/repo`` exactly as in the ``repository`` claim."""
        return self.repository

    @property
    def attester_id(self) -> str:
        """Unique per attestation source, across issuers and repositories.

        ``gh-run:<run id>:<attempt>:<repository id>@<issuer>``: run ids are only unique per
        issuer, and GitHub Enterprise or a development issuer may reuse them, so two tenants with
        the same run id are two attesters (issue 14).
        """
        return f"gh-run:{self.run_id}:{self.run_attempt}:{self.repository_id}@{self.issuer}"

    @property
    def workflow_repository(self) -> str:
        """``owner/repo`` of the workflow file that defines the job (from ``job_workflow_ref``)."""
        owner, repo, _ = self.job_workflow_ref.split("/", 2)
        return f"{owner}/{repo}"

    @property
    def audit_reference(self) -> str:
        """What the attestation record keeps as its ``sig`` (an audit reference).

        The subject; for a reproduction also the workflow ref, its commit and the runner.
        """
        if not self.is_reproducer:
            return self.subject
        return (
            f"{self.subject} workflow={self.job_workflow_ref} workflow_sha={self.job_workflow_sha}"
            f" runner={self.runner_environment}"
        )

    @property
    def flake_ref(self) -> str:
        """Provenance flake reference ``github:<repository>`` (protocol.md §1)."""
        return f"github:{self.repository}"


@dataclass(slots=True)
class _KeySet:
    keys: dict[str, RSAPublicKey]
    fetched_at: float
    static: bool = False


@dataclass(slots=True)
class _IssuerKeys:
    """One issuer's cached keys and its own fetch lock (a slow issuer delays only itself)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: _KeySet | None = None
    failed_until: float = 0.0
    failure: str = ""


def parse_jwks(doc: object) -> dict[str, RSAPublicKey]:
    """The RS256-usable RSA keys of a JWKS document, by ``kid``.

    Keys that are not RSA, are marked for another algorithm or use, have no ``kid``, or are
    shorter than 2048 bits are skipped.

    Raises:
        FormatError: ``doc`` is not a JWKS object with a ``keys`` list.
    """
    obj = require_object(doc, "jwks")
    entries = obj.get("keys")
    if not isinstance(entries, list):
        raise FormatError("jwks: expected a 'keys' list")
    keys: dict[str, RSAPublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        if entry.get("alg", "RS256") != "RS256" or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.algorithms.RSAAlgorithm.from_jwk(entry)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, RSAPublicKey) and key.key_size >= _MIN_RSA_BITS:
            keys[kid] = key
    return keys


class JwksCache:
    """Signing keys of each trusted issuer, fetched by OpenID discovery and cached.

    Each issuer has its own lock, held only while its keys are fetched, so a slow or hanging
    issuer delays tokens of that issuer alone (a caller waits at most ``deadline_s`` for another
    caller's fetch). A fetch has a wall-clock deadline (``deadline_s`` for discovery and JWKS
    together, besides each read's timeout). A failed fetch is remembered for ``negative_ttl_s``:
    meanwhile tokens of that issuer are answered from the keys cached before (or refused with a
    NetworkError at once) instead of fetching again.

    Args:
        http: client used for discovery and JWKS fetches.
        now: clock, epoch seconds.
        max_age_s: a key set older than this is refetched before use.
        min_refresh_s: an unknown ``kid`` triggers a refetch only if the set is at least this old
            (so a flood of made-up ``kid`` values cannot turn into a flood of fetches).
        negative_ttl_s: how long a failed fetch is not retried.
        deadline_s: wall-clock bound of one fetch, and of waiting for another caller's.
        limits: timeout (per read) and body cap of each request.
    """

    def __init__(
        self,
        http: httpx2.Client,
        now: Callable[[], float],
        *,
        max_age_s: float = 3600.0,
        min_refresh_s: float = 60.0,
        negative_ttl_s: float = 30.0,
        deadline_s: float = 10.0,
        limits: FetchLimits = FetchLimits(timeout_s=5.0),  # noqa: B008 - frozen value
    ) -> None:
        self._http = http
        self._now = now
        self._max_age_s = max_age_s
        self._min_refresh_s = min_refresh_s
        self._negative_ttl_s = negative_ttl_s
        self._deadline_s = deadline_s
        self._limits = limits
        self._issuers: dict[str, _IssuerKeys] = {}
        self._lock = threading.Lock()  # guards _issuers only, never held during a fetch
        self.fetches = 0
        """How many JWKS documents have been fetched (tests and metrics read it)."""

    def _entry(self, issuer: str) -> _IssuerKeys:
        with self._lock:
            return self._issuers.setdefault(issuer, _IssuerKeys())

    def add_static(self, issuer: str, keys: Mapping[str, RSAPublicKey]) -> None:
        """Pin ``issuer``'s keys (the development issuer); they are never fetched."""
        self._entry(issuer).keys = _KeySet(keys=dict(keys), fetched_at=self._now(), static=True)

    def _cached(self, current: _KeySet | None, kid: str, now: float) -> RSAPublicKey | None:
        """The key from the cache when no fetch is due; AuthError when it is unknown and no fetch may help."""
        if current is None or (not current.static and now - current.fetched_at > self._max_age_s):
            return None
        found = current.keys.get(kid)
        if found is None and (current.static or now - current.fetched_at < self._min_refresh_s):
            raise _reject("oidc token signing key is unknown to its issuer")
        return found

    def key(self, issuer: str, kid: str) -> RSAPublicKey:
        """The key ``kid`` of ``issuer``, fetching or refreshing the set when needed.

        Raises:
            AuthError: the issuer has no key ``kid``.
            NetworkError: the issuer's keys could not be fetched (now, or within the last
                ``negative_ttl_s``) and none are cached.
        """
        entry = self._entry(issuer)
        found = self._cached(entry.keys, kid, self._now())
        if found is not None:
            return found
        if not entry.lock.acquire(timeout=self._deadline_s):
            raise NetworkError(f"the signing keys of {issuer} are still being fetched")
        try:
            now = self._now()
            found = self._cached(entry.keys, kid, now)  # another caller may have fetched meanwhile
            if found is not None:
                return found
            if now < entry.failed_until:
                current = entry.keys
                if current is None:
                    raise NetworkError(f"could not fetch the signing keys of {issuer}: {entry.failure}")
            else:
                current = self._refresh(issuer, entry)
            found = current.keys.get(kid)
            if found is None:
                raise _reject("oidc token signing key is unknown to its issuer")
            return found
        finally:
            entry.lock.release()

    def _refresh(self, issuer: str, entry: _IssuerKeys) -> _KeySet:
        stale = entry.keys
        try:
            keys = self._fetch(issuer)
        except (NetworkError, FormatError) as e:
            entry.failed_until = self._now() + self._negative_ttl_s
            entry.failure = e.message
            if stale is None:
                raise NetworkError(f"could not fetch the signing keys of {issuer}: {e.message}") from e
            log.warning("keeping cached keys of %s: %s", issuer, e.message)
            return stale
        fresh = _KeySet(keys=keys, fetched_at=self._now())
        entry.keys = fresh
        entry.failed_until = 0.0
        return fresh

    def _fetch(self, issuer: str) -> dict[str, RSAPublicKey]:
        self.fetches += 1
        deadline = time.monotonic() + self._deadline_s
        conf = fetch_json(
            self._http, f"{issuer}/.well-known/openid-configuration", limits=self._limits, deadline=deadline
        )
        if conf.status != 200:
            raise NetworkError(f"openid configuration of {issuer}: status {conf.status}")
        doc = require_object(conf.body, "openid configuration")
        if doc.get("issuer") != issuer:
            raise FormatError("openid configuration: issuer does not match")
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _same_origin(jwks_uri, issuer):
            raise FormatError("openid configuration: jwks_uri is missing or on another origin")
        got = fetch_json(self._http, jwks_uri, limits=self._limits, deadline=deadline)
        if got.status != 200:
            raise NetworkError(f"jwks of {issuer}: status {got.status}")
        return parse_jwks(got.body)


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc) == (pb.scheme, pb.netloc) and pa.scheme in ("https", "http")


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcVerifier:
    """Verifies Actions OIDC tokens for one control plane.

    Args:
        jwks: the key cache.
        audience: the control plane's public URL; ``aud`` must name it (:func:`normalise_audience`).
        issuers: the exact issuer strings trusted.
        reproducer_workflows: ``owner/repo/path@ref`` entries (:func:`parse_reproducer_workflows`);
            a matching job makes the identity a reproduction.
        reproducer_self_hosted: ``owner/repo`` repositories whose self-hosted runners may
            reproduce; every other reproduction must run on a GitHub-hosted runner.
        now: clock, epoch seconds.
        leeway_s: tolerated clock skew for ``exp``, ``nbf`` and ``iat``.
        max_lifetime_s: longest ``exp - iat`` (and ``exp - nbf``) accepted; GitHub's tokens live
            minutes, so a token valid for days is refused whoever signed it.

    Raises:
        ConfigError: a reproducer entry names no ref or is malformed.
    """

    jwks: JwksCache
    audience: str
    issuers: frozenset[str]
    now: Callable[[], float]
    reproducer_workflows: tuple[str, ...] = ()
    reproducer_self_hosted: tuple[str, ...] = ()
    leeway_s: float = 30.0
    max_lifetime_s: float = 3600.0
    _workflows: tuple[ReproducerWorkflow, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_workflows", parse_reproducer_workflows(self.reproducer_workflows))

    def verify(self, token: str) -> OidcIdentity:
        """Verify ``token`` and return the identity its claims give.

        Raises:
            AuthError: the token is not acceptable (the message says which check failed).
            NetworkError: the issuer's keys could not be fetched.
        """
        if not token or len(token) > _MAX_TOKEN_CHARS or not token.isascii():
            raise _reject("oidc token is malformed")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _reject("oidc token is malformed") from None
        alg = header.get("alg")
        if alg != "RS256":
            raise _reject(f"oidc token algorithm {str(alg)[:20]!r} is not allowed (RS256 only)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _reject("oidc token has no key id")
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self.issuers:
            raise _reject(f"oidc token issuer {str(issuer)[:100]!r} is not trusted")
        key = self.jwks.key(issuer, kid)
        claims = self._decode(token, key, issuer)
        self._check_times(claims)
        return self._identity(issuer, claims)

    def _decode(self, token: str, key: RSAPublicKey, issuer: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=issuer,
                options={
                    "require": ["exp", "iat", "nbf", "iss", "aud"],
                    "verify_aud": False,  # compared below, normalised
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise _reject("oidc token signature is invalid") from None
        except jwt.MissingRequiredClaimError as e:
            raise _reject(f"oidc token is missing claim {e.claim!r}") from None
        except jwt.InvalidIssuerError:
            raise _reject("oidc token issuer is not trusted") from None
        except jwt.PyJWTError as e:
            raise _reject(f"oidc token is invalid: {type(e).__name__}") from None
        aud = claims["aud"]
        want = normalise_audience(self.audience)
        if not isinstance(aud, str) or want is None or normalise_audience(aud) != want:
            raise _reject("oidc token audience is not this control plane")
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self.now()
        for name in ("exp", "nbf", "iat"):
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _reject(f"oidc token claim {name!r} is not a number")
        if now > claims["exp"] + self.leeway_s:
            raise _reject("oidc token has expired")
        if now + self.leeway_s < claims["nbf"]:
            raise _reject("oidc token is not valid yet")
        if now + self.leeway_s < claims["iat"]:
            raise _reject("oidc token was issued in the future")
        if claims["exp"] - min(claims["iat"], claims["nbf"]) > self.max_lifetime_s:
            raise _reject(f"oidc token lifetime is longer than {self.max_lifetime_s:.0f} s")

    def _identity(self, issuer: str, claims: Mapping[str, Any]) -> OidcIdentity:
        values: dict[str, str] = {}
        for name in (*REQUIRED_CLAIMS, "sub"):
            value = claims.get(name)
            if value is None and name != "sub":
                raise _reject(f"oidc token is missing claim {name!r}")
            if value is not None and not isinstance(value, str):
                raise _reject(f"oidc token claim {name!r} is not a string")
            values[name] = value or ""
        checks = (
            ("repository", _REPOSITORY),
            ("repository_id", _DIGITS),
            ("repository_owner_id", _DIGITS),
            ("sha", _SHA),
            ("run_id", _DIGITS),
            ("run_attempt", _DIGITS),
            ("job_workflow_ref", _WORKFLOW_REF),
        )
        for name, pattern in checks:
            if not pattern.fullmatch(values[name]):
                raise _reject(f"oidc token claim {name!r} is malformed")
        ref = values["job_workflow_ref"]
        optional: dict[str, str] = {}
        for name in ("job_workflow_sha", "runner_environment"):
            value = claims.get(name)
            if value is not None and not isinstance(value, str):
                raise _reject(f"oidc token claim {name!r} is not a string")
            optional[name] = value or ""
        workflow_sha = optional["job_workflow_sha"]
        runner = optional["runner_environment"]
        named_self_hosted = runner == "self-hosted" and _fold_repo(values["repository"]) in {
            _fold_repo(r) for r in self.reproducer_self_hosted
        }
        reproducer = any(w.matches(ref, workflow_sha) for w in self._workflows) and (
            runner == GITHUB_HOSTED or named_self_hosted
        )
        return OidcIdentity(
            issuer=issuer,
            subject=values["sub"],
            repository=values["repository"],
            repository_id=values["repository_id"],
            repository_owner_id=values["repository_owner_id"],
            sha=values["sha"],
            run_id=values["run_id"],
            run_attempt=values["run_attempt"],
            job_workflow_ref=ref,
            is_reproducer=reproducer,
            job_workflow_sha=workflow_sha,
            runner_environment=runner,
        )


@dataclass(frozen=True, slots=True)
class ReproducerWorkflow:
    """One configured reproducer workflow: a workflow file and the ref (or refs) it may run at."""

    path: str
    """``owner/repo/.github/workflows/file.yml``."""
    ref: str
    """``refs/heads/<branch>``, ``refs/tags/<tag>``, ``refs/tags/<prefix>*`` or a 40-hex commit."""

    @property
    def is_commit(self) -> bool:
        """Whether the entry pins a commit SHA (then ``job_workflow_sha`` must equal it)."""
        return _COMMIT_REF.fullmatch(self.ref) is not None

    def matches(self, job_workflow_ref: str, job_workflow_sha: str) -> bool:
        """Whether a job's ``job_workflow_ref`` (and ``job_workflow_sha``) are this entry.

        Owner and repository compare case-insensitively (GitHub names are); the workflow path and
        the ref compare exactly; ``*`` (tag patterns only) stands for one or more characters of a
        tag name other than ``/``. ``job_workflow_sha`` must be a full commit SHA, and equal to the
        entry when the entry is a commit.
        """
        path, at, ref = job_workflow_ref.partition("@")
        if not at or _fold(path) != _fold(self.path) or not _COMMIT_REF.fullmatch(job_workflow_sha):
            return False
        if self.is_commit:
            return ref == self.ref and job_workflow_sha == self.ref
        if self.ref.endswith("*"):
            prefix = self.ref[:-1]
            rest = ref[len(prefix) :]
            return ref.startswith(prefix) and re.fullmatch(r"[A-Za-z0-9_.+-]+", rest) is not None
        return ref == self.ref

    def __str__(self) -> str:
        return f"{self.path}@{self.ref}"


def parse_reproducer_workflows(entries: Sequence[str]) -> tuple[ReproducerWorkflow, ...]:
    """Parse the ``reproducer_workflows`` setting; every entry must name a ref.

    Raises:
        ConfigError: an entry without ``@ref``, with a ref that is neither a branch, a tag, a tag
            pattern nor a full commit SHA, or with a malformed workflow path (the message names it).
    """
    parsed = []
    for entry in entries:
        path, at, ref = entry.strip().partition("@")
        if not _WORKFLOW_PATH.fullmatch(path):
            raise ConfigError(
                f"reproducer_workflows: {entry[:200]!r} is not owner/repo/.github/workflows/<file>.yml@<ref>"
            )
        if not at:
            raise ConfigError(
                f"reproducer_workflows: {entry[:200]!r} names no ref, so a fork's commit reachable "
                "through the repository's name would count as a reproduction",
                next_steps=[
                    f"pin it, e.g. {path}@refs/heads/main, {path}@refs/tags/v1 or {path}@<commit sha>"
                ],
            )
        if not (
            _BRANCH_REF.fullmatch(ref)
            or _TAG_REF.fullmatch(ref)
            or _TAG_PATTERN.fullmatch(ref)
            or _COMMIT_REF.fullmatch(ref)
        ):
            raise ConfigError(
                f"reproducer_workflows: {entry[:200]!r}: the ref must be refs/heads/<branch>, "
                "refs/tags/<tag>, refs/tags/<prefix>* or a full 40-hex commit SHA"
            )
        parsed.append(ReproducerWorkflow(path, ref))
    return tuple(parsed)


def is_reproducer_workflow(
    job_workflow_ref: str, configured: Sequence[str], *, job_workflow_sha: str
) -> bool:
    """Whether a job's workflow ref and commit match one configured reproducer workflow.

    Entries are parsed by :func:`parse_reproducer_workflows`; matching is
    :meth:`ReproducerWorkflow.matches`. The runner check is the verifier's.

    Raises:
        ConfigError: an entry is not acceptable.
    """
    return any(w.matches(job_workflow_ref, job_workflow_sha) for w in parse_reproducer_workflows(configured))


def _fold(ref: str) -> str:
    owner, _, rest = ref.partition("/")
    repo, _, tail = rest.partition("/")
    return f"{owner.lower()}/{repo.lower()}/{tail}"


def _fold_repo(repository: str) -> str:
    return repository.strip().lower()
