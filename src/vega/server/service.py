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

Spec: protocol.md §4 (write API), §3 and §6 (read paths), §7 (promotion);
house-style.md §4.9; docs/server-api.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlencode

import zstandard

from vega.core import nixbase32, tlog
from vega.core.api import (
    AttestBody,
    AttestResult,
    DispatchFailedBody,
    PushResult,
    ReproCandidate,
    ReproQueueResponse,
    StatusResponse,
    UploadUrlRequest,
    UploadUrlResponse,
    Verdict,
    nar_url_for,
)
from vega.core.narinfo import NarInfo, SignedFields, fingerprint, format_narinfo, parse_narinfo, sign_narinfo
from vega.core.promotion import (
    AttestationRecord,
    BuildProvenance,
    Lane,
    PromotionDecision,
    PromotionPolicy,
    decide,
)
from vega.core.signing import SecretKey, format_public_key, tenant_key
from vega.core.tlog import AttestationLeaf, PromotionLeaf, RevocationLeaf, encode_leaf
from vega.errors import FormatError, VerificationError
from vega.server.blobs import BlobStore
from vega.server.errors import ServiceError
from vega.server.log.log import LogEntry
from vega.server.store import SHARED, AttestationRow, PromotionRecord, ReproRow, Store

__all__ = [
    "Authenticator",
    "CacheService",
    "CiIdentity",
    "LogAppender",
    "OwnerPrincipal",
    "ServerKeys",
    "check_tenant",
]

# Any repository GitHub allows (names may start with "." or "_", e.g. ".github"), or an owner id.
_TENANT = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}|owner:[0-9]{1,20}")
# What clients accept in /api/status tenants (protocol.md §6.1); others are left out of that list.
_STATUS_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9][A-Za-z0-9._-]{0,99}|owner:[0-9]+")
_HASH_PART = re.compile(f"[{nixbase32.ALPHABET}]{{32}}")
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_CHUNK = 1 << 20
_MAX_REPRO_ATTEMPTS = 3
_CLOCK_SKEW_MS = 5 * 60 * 1000


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
        """Whether the job runs a configured reproducer workflow."""


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


class CacheService:
    """The rules, over a Store, a BlobStore and the log. Thread-safe; never sees a Request."""

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

    # -- uploads ---------------------------------------------------------------------

    def _upload_signature(self, key: str, date: str, expires: str) -> str:
        message = f"PUT\n{key}\n{date}\n{expires}".encode()
        return hmac.new(self.keys.upload_secret, message, hashlib.sha256).hexdigest()

    def upload_url(self, request: UploadUrlRequest) -> UploadUrlResponse:
        """Presign a PUT of one object: bound to its key (= its SHA-256) and expiring (§4.1)."""
        key = request.nar_url
        direct = self.blobs.presign_put(key, request.file_hash.digest, self.upload_url_ttl_s)
        if direct is not None:  # object storage takes the bytes itself (checksum-bound, expiring)
            return UploadUrlResponse(direct)
        date = datetime.fromtimestamp(self.now() // 1000, UTC).strftime(_AMZ_DATE)
        expires = str(self.upload_url_ttl_s)
        query = urlencode(
            {
                "X-Amz-Date": date,
                "X-Amz-Expires": expires,
                "X-Vega-Signature": self._upload_signature(key, date, expires),
            }
        )
        return UploadUrlResponse(f"{self.public_url}/api/cache/upload/{key}?{query}")

    def check_upload(
        self, key: str, date: str, expires: str, signature: str, checksum_b64: str | None
    ) -> bytes:
        """Check a presigned PUT's URL and checksum header; return the SHA-256 the body must have.

        Raises:
            ServiceError: 403 for a URL we did not sign or that expired; 400 for a missing or
                mismatching ``x-amz-checksum-sha256``.
        """
        expected = self._upload_signature(key, date, expires)
        if not hmac.compare_digest(expected, signature):
            raise ServiceError("upload URL signature is not valid", status=403)
        try:
            issued_ms = int(datetime.strptime(date, _AMZ_DATE).replace(tzinfo=UTC).timestamp()) * 1000
            ttl_ms = int(expires) * 1000
        except ValueError:
            raise ServiceError("upload URL is malformed", status=403) from None
        now = self.now()
        if now >= issued_ms + ttl_ms or issued_ms > now + _CLOCK_SKEW_MS:
            raise ServiceError("upload URL expired", status=403)
        digest = nixbase32.decode(key[4:56])
        if checksum_b64 is None:
            raise ServiceError("x-amz-checksum-sha256 header is required", status=400)
        if checksum_b64 != base64.b64encode(digest).decode("ascii"):
            raise ServiceError("x-amz-checksum-sha256 does not match the object key", status=400)
        return digest

    def record_upload(self, key: str, size: int) -> None:
        """Remember a stored object (after the blob store committed it)."""
        with self.store.write() as tx:
            self.store.put_object(tx, key, size, self.now())

    def object_size(self, key: str) -> int | None:
        """A stored object's size (the resume probe), or None."""
        return self.blobs.size(key)

    # -- attest and push -------------------------------------------------------------------

    def _verified_narinfo(self, body: AttestBody) -> NarInfo:
        """Steps 2-3: the object exists with the claimed size, and holds the claimed NAR."""
        key = nar_url_for(body.file_hash)
        size = self.blobs.size(key)
        if size is None:
            raise ServiceError(f"{key} has not been uploaded", status=400)
        if size != body.file_size:
            raise VerificationError(
                f"fileSize {body.file_size} does not match the stored object ({size} bytes)"
            )
        with self.store.read() as tx:
            obj = self.store.get_object(tx, key)
        if obj is None or obj.nar_hash is None or obj.nar_size is None:
            nar_hash, nar_size = self._hash_nar(key, body.nar_size)
            if nar_size <= body.nar_size:  # a complete read: remember it
                with self.store.write() as tx:
                    self.store.put_object(tx, key, size, self.now())
                    self.store.set_object_nar(tx, key, nar_hash, nar_size)
        else:
            nar_hash, nar_size = obj.nar_hash, obj.nar_size
        if nar_size != body.nar_size or nar_hash != str(body.nar_hash):
            raise VerificationError("narHash/narSize do not match the uploaded NAR")
        return NarInfo(
            signed=SignedFields(
                store_path=body.store_path,
                nar_hash=body.nar_hash,
                nar_size=body.nar_size,
                references=body.references,
            ),
            url=key,
            compression="zstd",
            file_hash=body.file_hash,
            file_size=body.file_size,
            deriver=body.deriver,
        )

    def _hash_nar(self, key: str, claimed_size: int) -> tuple[str, int]:
        """Decompress the object and hash it, reading at most one byte past the claimed size."""
        cap = min(self.max_nar_bytes, claimed_size) + 1
        f = self.blobs.open(key)
        if f is None:
            raise ServiceError(f"{key} has not been uploaded", status=400)
        h = hashlib.sha256()
        total = 0
        try:
            with f, zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True) as reader:
                while total < cap:
                    chunk = reader.read(min(_CHUNK, cap - total))
                    if not chunk:
                        break
                    h.update(chunk)
                    total += len(chunk)
        except zstandard.ZstdError:
            raise VerificationError(f"{key} is not a valid zstd stream") from None
        return f"sha256:{nixbase32.encode(h.digest())}", total

    def attest(self, identity: CiIdentity, body: AttestBody) -> AttestResult:
        """``POST /api/cache/attest``: record a CI (or reproducer) attestation and decide (§4.3)."""
        info = self._verified_narinfo(body)
        fp = fingerprint(info)
        lane: Lane = "vega-repro" if identity.is_reproducer else "gh-actions"
        tenant = check_tenant(identity.tenant)
        provenance = None
        if body.attr is not None:
            # dir is honoured only with a 40-hex commit (protocol.md §4.2).
            dir_ = body.dir if re.fullmatch(r"[0-9a-f]{40}", identity.sha) else None
            provenance = BuildProvenance(
                flake_ref=identity.flake_ref, attr=body.attr, rev=identity.sha, dir=dir_
            )
        now = self.now()
        record = AttestationRecord(
            attester_id=identity.attester_id,
            tenant=tenant,
            lane=lane,
            fingerprint=fp,
            is_trust_root=True,
            weight=1,
            sig=identity.subject,
            attested_at_ms=now,
            provenance=provenance,
            continent="XX",  # no geolocation here: always unknown (noContinent is trivially honoured)
            owner_id=identity.repository_owner_id,
        )
        decision = self._record(
            record, info, body, now, queue=provenance is not None and lane == "gh-actions"
        )
        promotion = self._promote(info.store_path.hash_part, decision)
        published_shared = promotion is not None and promotion.fingerprint == fp
        return AttestResult(decision=decision, published_tenant=True, published_shared=published_shared)

    def push(self, owner: OwnerPrincipal, body: AttestBody) -> PushResult:
        """``POST /api/cache/push``: publish into ``owner:<userId>`` (§4.4); no shared-tier evidence."""
        info = self._verified_narinfo(body)
        tenant = check_tenant(f"owner:{owner.user_id}")
        now = self.now()
        record = AttestationRecord(
            attester_id=f"owner:{owner.user_id}",
            tenant=tenant,
            lane="owner",
            fingerprint=fingerprint(info),
            is_trust_root=True,
            weight=1,
            sig=f"owner:{owner.user_id}",
            attested_at_ms=now,
            continent="XX",
            owner_id=owner.user_id,
        )
        self._record(record, info, body, now, queue=False)
        return PushResult(published=True, tenant=tenant, substituter=f"/tenant/{tenant}")

    def _record(
        self, record: AttestationRecord, info: NarInfo, body: AttestBody, now: int, *, queue: bool
    ) -> PromotionDecision:
        """Step 4 (log the attestation), step 5 under the lock, then log a promotion."""
        hash_part = info.store_path.hash_part
        tenant = record.tenant or ""
        store_path = info.store_path.absolute
        p = record.provenance
        # Logged before it is stored: a crash in between leaves a logged attestation that the
        # retry completes, never a stored one (counted by the policy, served) the log lacks.
        self.log.append(
            [
                LogEntry(
                    encode_leaf(
                        AttestationLeaf(
                            store_path=store_path,
                            fingerprint=record.fingerprint,
                            nar_hash=str(info.nar_hash),
                            tenant=record.tenant,
                            lane=record.lane,
                            attester_id=record.attester_id,
                            at=now,
                            provenance=None
                            if p is None
                            else tlog.BuildProvenance(
                                flake_ref=p.flake_ref, attr=p.attr, rev=p.rev, dir=p.dir
                            ),
                        )
                    ),
                    f"attest:{hash_part}:{record.attester_id}:{record.fingerprint}",
                    (hash_part,),
                )
            ]
        )
        with self.store.lock_path(hash_part) as tx:
            added = self.store.add_attestation(
                tx,
                AttestationRow(
                    record=record,
                    hash_part=hash_part,
                    store_path=store_path,
                    nar_hash=str(info.nar_hash),
                    narinfo=format_narinfo(info),
                ),
            )
            if added or self.store.get_narinfo(tx, tenant, hash_part) is None:
                signed = sign_narinfo(info, self.tenant_secret(tenant))
                self.store.put_narinfo(
                    tx, tenant, hash_part, format_narinfo(signed), record.fingerprint, info.url, now
                )
            if queue and p is not None:
                self.store.enqueue_repro(
                    tx,
                    ReproRow(
                        hash_part=hash_part,
                        store_path=store_path,
                        nar_hash=str(info.nar_hash),
                        flake_ref=p.flake_ref,
                        attr=p.attr,
                        rev=p.rev,
                        dir=p.dir,
                        queued_at_ms=now,
                        attempts=0,
                    ),
                )
            if record.lane == "vega-repro":
                self.store.retire_repro(tx, hash_part, "reproduced", now)
            rows = self.store.attestations(tx, hash_part)
            revoked = self.store.is_revoked(tx, hash_part)
        decision = decide([r.record for r in rows], self.policy, now, revoked)
        if decision.shared.promoted and decision.shared.fingerprint is not None:
            self.log.append([self._promotion_entry(store_path, hash_part, decision, now)])
        return decision

    def _promotion_entry(
        self, store_path: str, hash_part: str, decision: PromotionDecision, now: int
    ) -> LogEntry:
        fp = decision.shared.fingerprint or ""
        nar_hash = fp.split(";")[2]
        return LogEntry(
            encode_leaf(
                PromotionLeaf(
                    store_path=store_path,
                    fingerprint=fp,
                    nar_hash=nar_hash,
                    agreed_since=decision.shared.agreed_since_ms,
                    at=now,
                )
            ),
            f"promote:{hash_part}:{fp}",
            (hash_part,),
        )

    def _promote(self, hash_part: str, decision: PromotionDecision) -> PromotionRecord | None:
        """Step 6: after the promotion leaf is logged, sign with the shared key and publish.

        Returns:
            The store path's promotion (new or earlier), or None when it is not promoted.
        """
        fp = decision.shared.fingerprint
        if not decision.shared.promoted or fp is None:  # the common case: a read is enough
            with self.store.read() as tx:
                revoked = self.store.is_revoked(tx, hash_part)
                return None if revoked else self.store.get_promotion(tx, hash_part)
        with self.store.lock_path(hash_part) as tx:
            if self.store.is_revoked(tx, hash_part):
                return None
            existing = self.store.get_promotion(tx, hash_part)
            if existing is not None:
                return existing
            chosen = None
            for row in self.store.attestations(tx, hash_part):  # oldest first
                if row.record.fingerprint != fp:
                    continue
                candidate = parse_narinfo(row.narinfo)
                if self.blobs.size(candidate.url) == candidate.file_size:
                    chosen = candidate
                    break
            if chosen is None:
                return None
            now = self.now()
            promotion = PromotionRecord(
                hash_part=hash_part,
                fingerprint=fp,
                store_path=chosen.store_path.absolute,
                nar_hash=str(chosen.nar_hash),
                agreed_since_ms=decision.shared.agreed_since_ms or now,
                promoted_at_ms=now,
            )
            self.store.add_promotion(tx, promotion)
            signed = sign_narinfo(chosen, self.keys.shared)
            self.store.put_narinfo(tx, SHARED, hash_part, format_narinfo(signed), fp, chosen.url, now)
            return promotion

    def sweep(self, limit: int = 1000) -> int:
        """Promote store paths whose settling window has passed since their last attestation.

        Returns:
            How many were promoted.
        """
        with self.store.read() as tx:
            candidates = self.store.unpromoted(tx, limit)
        promoted = 0
        for hash_part in candidates:
            with self.store.read() as tx:
                rows = self.store.attestations(tx, hash_part)
                revoked = self.store.is_revoked(tx, hash_part)
            now = self.now()
            decision = decide([r.record for r in rows], self.policy, now, revoked)
            if not decision.shared.promoted or not rows:
                continue
            self.log.append([self._promotion_entry(rows[0].store_path, hash_part, decision, now)])
            if self._promote(hash_part, decision) is not None:
                promoted += 1
        return promoted

    def revoke(self, hash_part: str, reason: str) -> bool:
        """Revoke a store path: log it, then stop serving it from the shared tier."""
        if not _HASH_PART.fullmatch(hash_part):
            raise FormatError(f"not a store-path hash: {hash_part[:80]!r}")
        now = self.now()
        with self.store.read() as tx:
            rows = self.store.attestations(tx, hash_part)
        store_path = rows[0].store_path if rows else f"/nix/store/{hash_part}"
        self.log.append(
            [
                LogEntry(
                    encode_leaf(RevocationLeaf(store_path=store_path, reason=reason, at=now)),
                    f"revoke:{hash_part}",
                    (hash_part,),
                )
            ]
        )
        with self.store.lock_path(hash_part) as tx:
            added = self.store.revoke(tx, hash_part, reason, now)
            self.store.delete_narinfo(tx, SHARED, hash_part)
            self.store.retire_repro(tx, hash_part, "revoked", now)
        return added

    def ping(self) -> None:
        """Raise unless the database answers (``/healthz``)."""
        with self.store.read() as tx:
            tx.fetchone("SELECT 1")

    # -- reads -----------------------------------------------------------------------------

    def narinfo(self, namespace: str, hash_part: str) -> str | None:
        """The narinfo text served in a namespace (``""`` = shared tier), or None."""
        if not _HASH_PART.fullmatch(hash_part):
            return None
        with self.store.read() as tx:
            return self.store.get_narinfo(tx, namespace, hash_part)

    def status(self, hash_part: str) -> StatusResponse | None:
        """``GET /api/status/<hash>`` (§6.1), or None when nothing is known."""
        if not _HASH_PART.fullmatch(hash_part):
            return None
        with self.store.read() as tx:
            rows = self.store.attestations(tx, hash_part)
            namespaces = self.store.namespaces_of(tx, hash_part)
            revoked = self.store.is_revoked(tx, hash_part)
            promotion = self.store.get_promotion(tx, hash_part)
        if not rows and not namespaces:
            return None
        decision = decide([r.record for r in rows], self.policy, self.now(), revoked)
        in_shared = SHARED in namespaces
        verdict: Verdict
        if in_shared and promotion is not None:
            verdict = "reproducible"
        elif decision.shared.reason == "diverged" or any(
            r.record.lane == "vega-repro" and r.record.fingerprint != decision.shared.fingerprint
            for r in rows
        ):
            verdict = "diverged"
        else:
            verdict = "uncorroborated"
        tenants = tuple(n for n in namespaces if n != SHARED and _STATUS_TENANT.fullmatch(n))[:50]
        return StatusResponse(
            verdict=verdict,
            agree=decision.shared.distinct_tenants,
            in_shared_cache=in_shared,
            tenants=tenants,
        )

    def repro_queue(self, limit: int = 100) -> ReproQueueResponse:
        """Outputs with provenance awaiting independent reproduction, oldest first."""
        with self.store.read() as tx:
            rows = self.store.repro_queue(tx, max(1, min(limit, 1000)), _MAX_REPRO_ATTEMPTS)
        return ReproQueueResponse(
            tuple(
                ReproCandidate(
                    hash=r.hash_part,
                    store_path=r.store_path,
                    nar_hash=r.nar_hash,
                    flake_ref=r.flake_ref,
                    attr=r.attr,
                    rev=r.rev,
                    dir=r.dir,
                    since_ms=r.queued_at_ms,
                    attempts=r.attempts,
                )
                for r in rows
            )
        )

    def dispatch_failed(self, identity: CiIdentity, body: DispatchFailedBody) -> None:
        """``POST /api/repro/dispatch-failed`` (§4.5): retire (unresolvable) or count a failure."""
        if not identity.is_reproducer:
            raise ServiceError("only a reproducer workflow may report reproduction failures", status=403)
        now = self.now()
        with self.store.lock_path(body.hash) as tx:
            self.store.add_dispatch_failure(tx, body.hash, identity.attester_id, body.reason, now)
            if body.reason == "unresolvable":
                self.store.retire_repro(tx, body.hash, "unresolvable", now)
