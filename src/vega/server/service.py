"""The control plane's rules: presign, accept uploads, attest, push, decide, sign, log, serve.

Order of an attestation (``/api/cache/attest``) or push (``/api/cache/push``):

1. the identity is already verified (handlers call the :class:`Authenticator`);
   tenant and provenance come from it, never from the body;
2. the object ``nar/<FileHash>.nar.zst`` must exist with ``FileSize`` bytes
   (objects are written only when their SHA-256 matches their key, so
   existence proves ``FileHash``);
3. the object is decompressed and hashed: ``NarHash``/``NarSize`` must match
   (remembered per object, so a retry does not decompress again). A client
   that lies never gets a narinfo signed;
4. append the attestation leaf to the transparency log (dedupe keys are
   deterministic, so a retried request logs once). It is logged before it is
   stored, so nothing the policy counts or the tenant tier serves can be
   missing from the log after a crash;
5. under the store path's lock: record the attestation (idempotent per
   attester and fingerprint), publish the narinfo into the tenant namespace
   signed with the tenant key, queue the output for reproduction, decide
   (``core.promotion``); when promoted, append the promotion leaf;
6. only then, under the lock again, record the promotion and publish the
   narinfo signed with the shared key. So nothing enters the shared tier
   before its promotion is in the log.

The rules live in one module per seam, each a mixin over :class:`ServiceCore`: uploads and
objects (steps 2-3, :mod:`vega.server.upload`), attest and push recording (steps 4-5,
:mod:`vega.server.attestation`), promotion, sweep and revocation (step 6,
:mod:`vega.server.promotion`), the read side (:mod:`vega.server.status`), an owner's namespace
management and the orphan sweep (:mod:`vega.server.namespace`), and trust edges and personal
views (:mod:`vega.server.views`). This module joins
them into :class:`CacheService` and re-exports the names handlers and the app import.

Spec: protocol.md §4 (write API), §3 and §6 (read paths), §7 (promotion);
house-style.md §4.9; docs/server-api.md.
"""

from __future__ import annotations

from vega.server.attestation import AttestationRules
from vega.server.namespace import NamespaceRules
from vega.server.servicecore import (
    Authenticator,
    CiIdentity,
    LogAppender,
    OwnerPrincipal,
    ServerKeys,
    ServiceCore,
    check_tenant,
)
from vega.server.status import StatusRules
from vega.server.views import ViewRules

__all__ = [
    "Authenticator",
    "CacheService",
    "CiIdentity",
    "LogAppender",
    "OwnerPrincipal",
    "ServerKeys",
    "ServiceCore",
    "check_tenant",
]


class CacheService(AttestationRules, StatusRules, NamespaceRules, ViewRules):
    """The rules, over a Store, a BlobStore and the log. Thread-safe; never sees a Request."""

    def ping(self) -> None:
        """Raise unless the database answers (``/healthz``)."""
        with self.store.read() as tx:
            tx.fetchone("SELECT 1")
