"""Promotion into the shared tier, the settling-window sweep, and revocation.

Step 6 of an attestation (see :mod:`vega.server.service`): only after the promotion leaf is in
the log, under the store path's lock, the promotion is recorded and the narinfo is published
signed with the shared key, so nothing enters the shared tier before its promotion is logged.
A revocation is logged first too, then the shared narinfo is withdrawn.

The closure rule (issue 14, docs/adr/0011): a path is signed into the shared tier only when every
path it references (itself aside) is already served by the shared tier, so whatever the shared
key signs is substitutable with its closure. Until then the decision says ``awaiting-repro`` (its
dependencies await their own reproduction) and no promotion is logged. A dependent is promoted
by the sweep that follows its last dependency's promotion (the sweep runs every
``clamp(settling_s, 1, 30)`` seconds and repeats its pass while a pass promotes something).

Spec: protocol.md §7 (promotion), §2.7 and §5 (log leaves); house-style.md §4.9.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from vega.core.narinfo import NarInfo, format_narinfo, parse_narinfo, sign_narinfo
from vega.core.promotion import PromotionDecision, decide
from vega.core.tlog import PromotionLeaf, RevocationLeaf, encode_leaf
from vega.errors import FormatError
from vega.server.db import Tx
from vega.server.log.log import LogEntry
from vega.server.servicecore import HASH_PART, ServiceCore
from vega.server.store import SHARED, AttestationRow, PromotionRecord

_SWEEP_PASSES = 16

__all__ = ["PromotionRules"]


class PromotionRules(ServiceCore):
    """Log and publish promotions (at attestation time or by the sweep); revoke."""

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

    def _missing_references(self, tx: Tx, info: NarInfo) -> list[str]:
        """References of ``info`` (itself aside) that the shared tier does not serve."""
        own = info.store_path.hash_part
        return [
            ref.absolute
            for ref in info.references
            if ref.hash_part != own and self.store.get_narinfo(tx, SHARED, ref.hash_part) is None
        ]

    def _closure_gate(
        self, tx: Tx, rows: Sequence[AttestationRow], decision: PromotionDecision
    ) -> PromotionDecision:
        """``decision``, held at ``awaiting-repro`` while a reference is not in the shared tier."""
        fp = decision.shared.fingerprint
        if not decision.shared.promoted or fp is None:
            return decision
        if self.store.get_promotion(tx, rows[0].hash_part) is not None:
            return decision  # promoted earlier: its closure was checked then
        row = next(r for r in rows if r.record.fingerprint == fp)
        if not self._missing_references(tx, parse_narinfo(row.narinfo)):
            return decision
        held = dataclasses.replace(decision.shared, promoted=False, reason="awaiting-repro")
        return dataclasses.replace(decision, shared=held)

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
            if chosen is None or self._missing_references(tx, chosen):
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
        """Promote store paths whose settling window has passed or whose closure is now shared.

        A pass re-decides every unpromoted path with shared-tier evidence; passes repeat (at most
        16) while one promotes something, so a chain of dependents follows its dependencies.

        Returns:
            How many were promoted.
        """
        promoted = 0
        for _ in range(_SWEEP_PASSES):
            with self.store.read() as tx:
                candidates = self.store.unpromoted(tx, limit)
            progress = 0
            for hash_part in candidates:
                with self.store.read() as tx:
                    rows = self.store.attestations(tx, hash_part)
                    revoked = self.store.is_revoked(tx, hash_part)
                    now = self.now()
                    decision = decide([r.record for r in rows], self.policy, now, revoked)
                    if rows:
                        decision = self._closure_gate(tx, rows, decision)
                if not decision.shared.promoted or not rows:
                    continue
                self.log.append([self._promotion_entry(rows[0].store_path, hash_part, decision, now)])
                if self._promote(hash_part, decision) is not None:
                    progress += 1
            promoted += progress
            if not progress:
                break
        return promoted

    def revoke(self, hash_part: str, reason: str) -> bool:
        """Revoke a store path: log it, then stop serving it from the shared tier."""
        if not HASH_PART.fullmatch(hash_part):
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
