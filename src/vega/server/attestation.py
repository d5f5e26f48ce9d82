"""Attestations and pushes: log the attestation, record it, publish into the tenant, decide.

Steps 4-5 of an attestation or push (see :mod:`vega.server.service`): the attestation leaf is
appended to the log (dedupe keys are deterministic, so a retried request logs once) before it is
stored; then, under the store path's lock, the attestation is recorded (idempotent per attester
and fingerprint), the narinfo is published into the tenant namespace signed with the tenant key,
the output is queued for reproduction, and ``core.promotion`` decides; a promotion is logged and
then published by :class:`vega.server.promotion.PromotionRules`.

Spec: protocol.md §4.2-§4.4 (attest, push), §7 (promotion), §8 (reproduction queue).
"""

from __future__ import annotations

import re

from vega.core import tlog
from vega.core.api import AttestBody, AttestResult, PushResult
from vega.core.narinfo import NarInfo, fingerprint, format_narinfo, sign_narinfo
from vega.core.promotion import (
    AttestationRecord,
    BuildProvenance,
    Lane,
    PromotionDecision,
    decide,
    is_independent_reproduction,
)
from vega.core.tlog import AttestationLeaf, encode_leaf
from vega.server.db import Tx
from vega.server.errors import ServiceError
from vega.server.log.log import LogEntry
from vega.server.promotion import PromotionRules
from vega.server.servicecore import CiIdentity, OwnerPrincipal, check_tenant
from vega.server.store import AttestationRow, ReproRow
from vega.server.upload import UploadRules

__all__ = ["AttestationRules"]


class AttestationRules(UploadRules, PromotionRules):
    """``attest`` (CI and reproducer jobs) and ``push`` (owners), over uploads and promotion."""

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
            sig=identity.audit_reference,
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
            if not added and not self._recorded_for(tx, record, hash_part):
                # The attester id is unique per issuer, repository and run (issue 14): a record
                # under this key for another tenant is a collision, and nothing is published
                # for an attestation that was not itself recorded and logged.
                raise ServiceError("this attester already attested this path for another tenant", status=409)
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
            rows = self.store.attestations(tx, hash_part)
            if is_independent_reproduction(record, [r.record for r in rows]):
                self.store.retire_repro(tx, hash_part, "reproduced", now)
            revoked = self.store.is_revoked(tx, hash_part)
            decision = self._closure_gate(
                tx, rows, decide([r.record for r in rows], self.policy, now, revoked)
            )
        if decision.shared.promoted and decision.shared.fingerprint is not None:
            self.log.append([self._promotion_entry(store_path, hash_part, decision, now)])
        return decision

    def _recorded_for(self, tx: Tx, record: AttestationRecord, hash_part: str) -> bool:
        """Whether the stored attestation under ``record``'s key is the same tenant's and lane's."""
        return any(
            r.record.attester_id == record.attester_id
            and r.record.fingerprint == record.fingerprint
            and r.record.tenant == record.tenant
            and r.record.lane == record.lane
            for r in self.store.attestations(tx, hash_part)
        )
