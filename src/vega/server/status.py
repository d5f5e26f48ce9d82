"""Read-side rules: served narinfos, ``/api/status``, and the reproduction queue.

Spec: protocol.md §3 (read paths), §6.1 (status), §4.5 and §8 (reproduction dispatch).
"""

from __future__ import annotations

import re

from vega.core.api import DispatchFailedBody, ReproCandidate, ReproQueueResponse, StatusResponse, Verdict
from vega.core.promotion import decide
from vega.server.errors import ServiceError
from vega.server.servicecore import HASH_PART, CiIdentity, ServiceCore
from vega.server.store import SHARED

__all__ = ["StatusRules"]

# What clients accept in /api/status tenants (protocol.md §6.1); others are left out of that list.
_STATUS_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9][A-Za-z0-9._-]{0,99}|owner:[0-9]+")
_MAX_REPRO_ATTEMPTS = 3


class StatusRules(ServiceCore):
    """What a namespace serves, a store path's status, and the reproduction queue."""

    def narinfo(self, namespace: str, hash_part: str) -> str | None:
        """The narinfo text served in a namespace (``""`` = shared tier), or None."""
        if not HASH_PART.fullmatch(hash_part):
            return None
        with self.store.read() as tx:
            return self.store.get_narinfo(tx, namespace, hash_part)

    def status(self, hash_part: str) -> StatusResponse | None:
        """``GET /api/status/<hash>`` (§6.1), or None when nothing is known."""
        if not HASH_PART.fullmatch(hash_part):
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
            diverged=decision.diverged,
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
        """``POST /api/repro/dispatch-failed`` (§4.5): retire (unresolvable) or count a failure.

        Only a reproduction (the identity rules of the reproducer lane, docs/adr/0011) that runs
        in the reproducer workflow's own repository may report: that is a run the control plane
        dispatched. The pinned workflow called from anybody else's repository is still a
        reproduction when it attests (its build is honest), but its inputs, and so the candidate
        it names, are that caller's, so it cannot retire or back off anyone's candidate. The
        report touches only the open candidate it names (404 when there is none).
        """
        if not identity.is_reproducer:
            raise ServiceError("only a reproducer workflow may report reproduction failures", status=403)
        if identity.tenant.lower() != identity.workflow_repository.lower():
            raise ServiceError(
                "only a reproduction dispatched in the reproducer workflow's own repository may report "
                "failures",
                status=403,
            )
        if not HASH_PART.fullmatch(body.hash):
            raise ServiceError(f"not a store-path hash: {body.hash[:80]!r}", status=404)
        now = self.now()
        with self.store.lock_path(body.hash) as tx:
            if not self.store.is_queued(tx, body.hash):
                raise ServiceError(f"no open reproduction candidate {body.hash}", status=404)
            self.store.add_dispatch_failure(
                tx, body.hash, identity.attester_id, body.reason, now, body.diagnosis, body.excerpt
            )
            if body.reason == "unresolvable":
                self.store.retire_repro(tx, body.hash, "unresolvable", now)
