"""What the control plane's rules stand on: the identities and log they are given, keys, tenants.

:class:`ServiceCore` holds the adapters (store, blobs, log), the promotion policy, the keys and
the clock, and derives tenant keys. The rule modules extend it (:mod:`vega.server.upload`,
:mod:`vega.server.promotion`, :mod:`vega.server.attestation`, :mod:`vega.server.status`) and
:class:`vega.server.service.CacheService` joins them; the protocols here are what handlers pass in.

Spec: protocol.md §1 (actors, namespaces), §2.6 (tenant keys), §4 (write API), §10 (OIDC);
house-style.md §4.9.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from vega.core import nixbase32
from vega.core.promotion import PromotionPolicy
from vega.core.signing import SecretKey, format_public_key, tenant_key
from vega.server.blobs import BlobStore
from vega.server.errors import ServiceError
from vega.server.log.log import LogEntry
from vega.server.store import Store

__all__ = [
    "HASH_PART",
    "Authenticator",
    "CiIdentity",
    "LogAppender",
    "OwnerPrincipal",
    "ServerKeys",
    "ServiceCore",
    "check_tenant",
]

# Any repository GitHub allows (names may start with "." or "_", e.g. ".github"), or an owner id.
_TENANT = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}|owner:[0-9]{1,20}")
HASH_PART = re.compile(f"[{nixbase32.ALPHABET}]{{32}}")
"""A store path's 32-character hash part."""


class CiIdentity(Protocol):
    """A verified GitHub Actions job (``identity.oidc.OidcIdentity`` satisfies it)."""

    @property
    def tenant(self) -> str:
        """``owner/repo`` of the run."""

    @property
    def repository_owner_id(self) -> str:
        """Immutable owner id."""

    @property
    def sha(self) -> str:
        """The commit."""

    @property
    def subject(self) -> str:
        """The ``sub`` claim (audit reference)."""

    @property
    def attester_id(self) -> str:
        """Unique per run attempt."""

    @property
    def flake_ref(self) -> str:
        """``github:<owner>/<repo>``."""

    @property
    def is_reproducer(self) -> bool:
        """Whether the job is a reproduction (pinned reproducer workflow, trusted runner)."""

    @property
    def workflow_repository(self) -> str:
        """``owner/repo`` of the workflow file that defines the job."""

    @property
    def audit_reference(self) -> str:
        """What the attestation record keeps as its ``sig``."""


class OwnerPrincipal(Protocol):
    """A verified owner credential (``identity.owner.OwnerIdentity`` satisfies it)."""

    @property
    def user_id(self) -> str:
        """Immutable numeric GitHub user id."""


class Authenticator(Protocol):
    """Turns bearer tokens into identities; raises ``AuthError`` (status 401/403) otherwise."""

    def oidc(self, bearer: str) -> CiIdentity:
        """Verify a GitHub Actions OIDC JWT."""

    def owner(self, bearer: str) -> OwnerPrincipal:
        """Verify an owner credential."""


class LogAppender(Protocol):
    """The transparency log's append (``TransparencyLog`` or its ``Sequencer``)."""

    def append(self, entries: Sequence[LogEntry]) -> list[int]:
        """Append atomically; entries with a logged dedupe key return the existing index."""


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """The server's secret keys."""

    shared: SecretKey
    """Signs promoted narinfos and the STH (``vega-cache-1``-style); derives tenant keys."""
    log: SecretKey
    """Signs the log's checkpoint notes."""

    @property
    def upload_secret(self) -> bytes:
        """HMAC key of presigned upload URLs, derived from the shared seed."""
        return hashlib.sha256(self.shared.seed + b"vega-upload-url-v1").digest()


def check_tenant(tenant: str) -> str:
    """Return ``tenant`` if it is ``owner/repo`` or ``owner:<id>``; else raise ServiceError 404."""
    if not _TENANT.fullmatch(tenant) or {".", ".."} & set(tenant.split("/")):
        raise ServiceError(f"not a tenant: {tenant[:80]!r}", status=404)
    return tenant


class ServiceCore:
    """The adapters, keys, policy and clock every rule uses; tenant keys derived once each."""

    def __init__(
        self,
        *,
        store: Store,
        blobs: BlobStore,
        keys: ServerKeys,
        log: LogAppender,
        policy: PromotionPolicy,
        now: Callable[[], int],
        public_url: str,
        upload_url_ttl_s: int = 21600,
        max_upload_bytes: int = 16 * 2**30,
        max_nar_bytes: int = 64 * 2**30,
    ) -> None:
        """Wire the rules to their adapters (``now`` gives epoch milliseconds)."""
        self.store = store
        self.blobs = blobs
        self.keys = keys
        self.log = log
        self.policy = policy
        self.now = now
        self.public_url = public_url.rstrip("/")
        self.upload_url_ttl_s = upload_url_ttl_s
        self.max_upload_bytes = max_upload_bytes
        self.max_nar_bytes = max_nar_bytes
        self._tenant_keys: dict[str, SecretKey] = {}
        self.nar_reads = 0
        """Objects read back and decompressed to learn their NAR (those without a NAR record)."""

    # -- keys ------------------------------------------------------------------------

    def tenant_secret(self, tenant: str) -> SecretKey:
        """The tenant's signing key (derived, protocol.md §2.6; cached)."""
        key = self._tenant_keys.get(tenant)
        if key is None:
            key = tenant_key(self.keys.shared, tenant)
            self._tenant_keys[tenant] = key
        return key

    def tenant_public_key(self, tenant: str) -> str:
        """The tenant's public key text, ``vega-<tenant>-1:<base64>`` (§6.2)."""
        return format_public_key(self.tenant_secret(check_tenant(tenant)).public)

    @property
    def shared_public_key(self) -> str:
        """The shared tier's public key text."""
        return format_public_key(self.keys.shared.public)
