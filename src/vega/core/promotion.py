"""Attestation records and the promotion decision: when a build enters the shared tier.

The policy is one pure function, :func:`decide`, over every attestation of one
store path (docs/adr/0009, revised by docs/adr/0011 after issue 14). Owners cost
nothing (anyone can make GitHub accounts), so the policy rests on reproductions,
not on head counts: a reproduction is a job of the operator's pinned reproducer
workflow on a runner the attester does not control (the identity layer decides
that; here it is lane ``vega-repro``).

Definitions, per fingerprint: its *builders* are the owners of its verified CI
runs; its *independent reproductions* are the distinct owners of its
reproductions that are none of its builders (a reproduction the builder's own
organisation ran proves nothing about that builder); its *owners* are all of
these. Owners are counted by the immutable ``repository_owner_id``.

The *leading* fingerprint is the reproduced one: the fingerprint the
reproductions matched, whatever any number of builders claim. Only when no
reproduction exists yet does the fingerprint with the most owners lead. It is
promoted into the shared tier when all of these hold:

1. the store path is not revoked (reason ``revoked``);
2. the reproductions agree with each other: two reproductions of different
   fingerprints are a divergence and nothing is promoted (reason ``diverged``);
3. at least ``quorum`` distinct owners are behind the leading fingerprint
   (reason ``insufficient``, or ``diverged`` when other fingerprints were
   attested). Builders of other fingerprints never block or flip a reproduced
   fingerprint: they only set ``diverged: true`` in the decision;
4. at least ``min_reproductions`` (at least 1) independent reproductions
   matched it (reason ``awaiting-repro``): builders that agree, however many,
   never promote without one;
5. ``settling_ms`` have passed since all of the above last became true (reason
   ``settling``); then the reason is ``agreement``.

Only evidence lanes count towards the shared tier: verified CI runs
(``gh-actions`` or ``pool`` with ``isTrustRoot``) and reproductions. An owner
push (lane ``owner``) is published in its own namespace and produces no
shared-tier evidence (protocol.md §4.4). ``diverged`` in the decision records
whether more than one fingerprint was ever observed, over every lane.

Spec: protocol.md §7 (records and the decision JSON), §4.3.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from vega.core.tlog import BuildProvenance
from vega.errors import FormatError

__all__ = [
    "LANES",
    "REASONS",
    "AttestationRecord",
    "BuildProvenance",
    "Lane",
    "PromotionDecision",
    "PromotionPolicy",
    "Reason",
    "SharedDecision",
    "TenantTierEntry",
    "decide",
    "is_independent_reproduction",
    "owner_key",
]

Lane = Literal["gh-actions", "owner", "pool", "vega-repro"]
LANES: tuple[Lane, ...] = ("gh-actions", "owner", "pool", "vega-repro")
"""Every lane of §7.1."""
Reason = Literal["agreement", "insufficient", "diverged", "settling", "awaiting-repro", "revoked"]
REASONS: tuple[Reason, ...] = (
    "agreement",
    "insufficient",
    "diverged",
    "settling",
    "awaiting-repro",
    "revoked",
)
"""Every value of ``shared.reason`` (§7.2)."""
UNKNOWN_CONTINENT = "XX"


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationRecord:
    """One attestation of one store path (§7.1)."""

    attester_id: str
    """Unique per attestation source (a CI run id, an owner id)."""
    tenant: str | None
    """``owner/repo``, ``owner:<id>``, or None (pool)."""
    lane: Lane
    """Which kind of identity attested."""
    fingerprint: str
    """The §2.5 fingerprint claimed: the agreement key."""
    is_trust_root: bool
    """A verified CI run or a registered owner."""
    weight: int
    """Reputation weight computed server-side."""
    sig: str
    """Audit reference (e.g. the OIDC run identity)."""
    attested_at_ms: int
    """When, in epoch milliseconds."""
    provenance: BuildProvenance | None = None
    """The build's provenance, when known."""
    continent: str | None = None
    """Continent code, or ``XX``/None when unknown."""
    owner_id: str | None = None
    """The immutable id of the owner behind the attester (GitHub ``repository_owner_id``)."""

    def __post_init__(self) -> None:
        if self.lane not in LANES:
            raise FormatError(f"unknown attestation lane {self.lane!r}")
        if self.weight < 0:
            raise FormatError(f"attestation weight must be non-negative, got {self.weight}")


def owner_key(record: AttestationRecord) -> str:
    """The owner an attestation counts for: its owner id, else the owner part of its tenant.

    Returns:
        ``id:<owner id>``, ``name:<lowercased owner>`` or ``attester:<id>``.
    """
    if record.owner_id:
        return f"id:{record.owner_id}"
    if record.tenant:
        if record.tenant.startswith("owner:"):
            return f"id:{record.tenant[len('owner:') :]}"
        return f"name:{record.tenant.split('/', 1)[0].lower()}"
    return f"attester:{record.attester_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionPolicy:
    """The thresholds of :func:`decide`."""

    quorum: int = 2
    """Distinct owners that must agree on one fingerprint."""
    min_reproductions: int = 1
    """Independent reproductions (distinct owners, none a builder) that must match it; at least 1."""
    settling_ms: int = 0
    """How long agreement must stand before promotion."""

    def __post_init__(self) -> None:
        if self.quorum < 1:
            raise FormatError(f"quorum must be at least 1, got {self.quorum}")
        if self.min_reproductions < 1:
            raise FormatError(
                f"min_reproductions must be at least 1, got {self.min_reproductions}: "
                "agreement without an independent reproduction never promotes"
            )
        if self.settling_ms < 0:
            raise FormatError("settling_ms must be non-negative")


@dataclass(frozen=True, slots=True)
class TenantTierEntry:
    """A tenant published in its own namespace, and the fingerprint it vouches for."""

    tenant: str
    """The tenant."""
    fingerprint: str
    """Its latest attested fingerprint."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedDecision:
    """The shared-tier half of a decision (§7.2 ``shared``)."""

    promoted: bool
    """Signed into the shared tier."""
    fingerprint: str | None
    """The leading fingerprint."""
    reason: Reason
    """Why."""
    distinct_tenants: int = 0
    """Distinct tenants behind the leading fingerprint."""
    weight: int = 0
    """Summed weight behind it."""
    agreeing_tenants: tuple[str, ...] = ()
    """Tenants on the leading fingerprint, sorted."""
    agreed_since_ms: int | None = None
    """When quorum and reproduction first held, else None."""
    vega_reproductions: int = 0
    """Distinct reproductions matching the leading fingerprint."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionDecision:
    """The outcome of :func:`decide` (§7.2)."""

    tenant_tier: tuple[TenantTierEntry, ...]
    """Tenants published in their own namespace."""
    shared: SharedDecision
    """The shared-tier decision."""
    diverged: bool
    """More than one fingerprint was ever observed."""
    continents: tuple[str, ...]
    """Distinct known continents, sorted."""

    def to_json(self) -> dict[str, object]:
        """The §7.2 JSON object."""
        s = self.shared
        return {
            "tenantTier": [{"tenant": t.tenant, "fingerprint": t.fingerprint} for t in self.tenant_tier],
            "shared": {
                "promoted": s.promoted,
                "fingerprint": s.fingerprint,
                "reason": s.reason,
                "distinctTenants": s.distinct_tenants,
                "weight": s.weight,
                "agreeingTenants": list(s.agreeing_tenants),
                "agreedSince": s.agreed_since_ms,
                "vegaReproductions": s.vega_reproductions,
            },
            "diverged": self.diverged,
            "continents": list(self.continents),
        }

    @classmethod
    def from_json(cls, obj: object, path: str = "decision") -> PromotionDecision:
        """Read the §7.2 JSON; only ``shared.reason`` is required, as for clients.

        Raises:
            FormatError: a field has the wrong type, named by its JSON path.
        """
        top = _object(obj, path)
        shared = _object(top.get("shared"), f"{path}.shared")
        reason = shared.get("reason")
        if reason not in REASONS:
            raise FormatError(f"{path}.shared.reason: expected one of {', '.join(REASONS)}, got {reason!r}")
        tiers = []
        for i, item in enumerate(_list(top.get("tenantTier", []), f"{path}.tenantTier")):
            entry = _object(item, f"{path}.tenantTier[{i}]")
            tiers.append(
                TenantTierEntry(
                    _str(entry.get("tenant"), f"{path}.tenantTier[{i}].tenant"),
                    _str(entry.get("fingerprint"), f"{path}.tenantTier[{i}].fingerprint"),
                )
            )
        fingerprint = shared.get("fingerprint")
        agreed = shared.get("agreedSince")
        return cls(
            tenant_tier=tuple(tiers),
            shared=SharedDecision(
                promoted=_bool(shared.get("promoted", False), f"{path}.shared.promoted"),
                fingerprint=None if fingerprint is None else _str(fingerprint, f"{path}.shared.fingerprint"),
                reason=reason,
                distinct_tenants=_int(shared.get("distinctTenants", 0), f"{path}.shared.distinctTenants"),
                weight=_int(shared.get("weight", 0), f"{path}.shared.weight"),
                agreeing_tenants=tuple(
                    _str(t, f"{path}.shared.agreeingTenants[{i}]")
                    for i, t in enumerate(
                        _list(shared.get("agreeingTenants", []), f"{path}.shared.agreeingTenants")
                    )
                ),
                agreed_since_ms=None if agreed is None else _int(agreed, f"{path}.shared.agreedSince"),
                vega_reproductions=_int(
                    shared.get("vegaReproductions", 0), f"{path}.shared.vegaReproductions"
                ),
            ),
            diverged=_bool(top.get("diverged", False), f"{path}.diverged"),
            continents=tuple(
                _str(c, f"{path}.continents[{i}]")
                for i, c in enumerate(_list(top.get("continents", []), f"{path}.continents"))
            ),
        )


def _object(obj: object, path: str) -> Mapping[str, object]:
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: expected an object")
    return cast(Mapping[str, object], obj)  # JSON object keys are strings


def _list(obj: object, path: str) -> list[object]:
    if not isinstance(obj, list):
        raise FormatError(f"{path}: expected an array")
    return obj


def _str(obj: object, path: str) -> str:
    if not isinstance(obj, str):
        raise FormatError(f"{path}: expected a string")
    return obj


def _bool(obj: object, path: str) -> bool:
    if not isinstance(obj, bool):
        raise FormatError(f"{path}: expected true or false")
    return obj


def _int(obj: object, path: str) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int | float) or obj != obj or obj < 0:
        raise FormatError(f"{path}: expected a non-negative number")
    if isinstance(obj, float) and not obj.is_integer():
        raise FormatError(f"{path}: expected a non-negative integer")
    return int(obj)


def _counts(record: AttestationRecord) -> bool:
    """Whether a record is shared-tier evidence (verified CI run or Vega reproduction)."""
    if record.lane == "vega-repro":
        return True
    return record.lane in ("gh-actions", "pool") and record.is_trust_root


@dataclass(slots=True)
class _Group:
    fingerprint: str
    records: list[AttestationRecord]

    def builders(self) -> set[str]:
        return {owner_key(r) for r in self.records if r.lane != "vega-repro"}

    def owners(self) -> set[str]:
        return {owner_key(r) for r in self.records}

    def reproduced(self) -> bool:
        return any(r.lane == "vega-repro" for r in self.records)

    def independent(self) -> set[str]:
        """Owners of reproductions that are none of this fingerprint's builders."""
        return {owner_key(r) for r in self.records if r.lane == "vega-repro"} - self.builders()

    def first_ms(self) -> int:
        return min(r.attested_at_ms for r in self.records)


def is_independent_reproduction(record: AttestationRecord, attestations: Sequence[AttestationRecord]) -> bool:
    """Whether ``record`` is a reproduction whose owner built none of its fingerprint's attestations.

    The server takes a candidate off the reproduction queue only for such a reproduction, so a
    builder's own organisation cannot retire its candidate by "reproducing" it.
    """
    if record.lane != "vega-repro":
        return False
    group = _Group(
        record.fingerprint, [r for r in attestations if r.fingerprint == record.fingerprint and _counts(r)]
    )
    return owner_key(record) not in group.builders()


def _met(group: _Group, policy: PromotionPolicy) -> bool:
    return len(group.owners()) >= policy.quorum and len(group.independent()) >= policy.min_reproductions


def _agreed_since(group: _Group, policy: PromotionPolicy) -> int:
    """When quorum and independent reproductions last became true together (callers know they hold).

    Independence can be lost (a reproducer's owner later attests as a builder), so this is the
    start of the latest uninterrupted stretch, not the first time they held.
    """
    ordered = sorted(group.records, key=lambda r: (r.attested_at_ms, r.attester_id))
    since = ordered[-1].attested_at_ms
    held = False
    for i, r in enumerate(ordered):
        now_met = _met(_Group(group.fingerprint, ordered[: i + 1]), policy)
        if now_met and not held:
            since = r.attested_at_ms
        held = now_met
    return since


def _tenant_tier(records: Iterable[AttestationRecord]) -> tuple[TenantTierEntry, ...]:
    latest: dict[str, AttestationRecord] = {}
    for r in records:
        if r.tenant is None:
            continue
        seen = latest.get(r.tenant)
        if seen is None or (r.attested_at_ms, r.fingerprint) > (seen.attested_at_ms, seen.fingerprint):
            latest[r.tenant] = r
    return tuple(TenantTierEntry(t, latest[t].fingerprint) for t in sorted(latest))


def decide(
    attestations: Sequence[AttestationRecord], policy: PromotionPolicy, now_ms: int, revoked: bool
) -> PromotionDecision:
    """Decide whether one store path's leading fingerprint is promoted to the shared tier.

    Args:
        attestations: every attestation of the store path (any order; duplicates harmless).
        policy: the thresholds.
        now_ms: the current time, epoch milliseconds.
        revoked: whether the store path has been revoked.

    Returns:
        The decision, with the reason codes described in the module docstring.
    """
    continents = tuple(
        sorted({r.continent for r in attestations if r.continent and r.continent != UNKNOWN_CONTINENT})
    )
    diverged = len({r.fingerprint for r in attestations}) > 1
    groups: dict[str, _Group] = {}
    for r in attestations:
        if _counts(r):
            groups.setdefault(r.fingerprint, _Group(r.fingerprint, [])).records.append(r)
    tenant_tier = _tenant_tier(attestations)

    def result(reason: Reason, lead: _Group | None, agreed: int | None = None) -> PromotionDecision:
        if lead is None:
            shared = SharedDecision(promoted=False, fingerprint=None, reason=reason)
        else:
            unique = {r.attester_id: r for r in lead.records}.values()
            tenants = tuple(sorted({r.tenant for r in lead.records if r.tenant is not None}))
            shared = SharedDecision(
                promoted=reason == "agreement",
                fingerprint=lead.fingerprint,
                reason=reason,
                distinct_tenants=len(tenants),
                weight=sum(r.weight for r in unique),
                agreeing_tenants=tenants,
                agreed_since_ms=agreed,
                vega_reproductions=len(lead.independent()),
            )
        return PromotionDecision(
            tenant_tier=tenant_tier, shared=shared, diverged=diverged, continents=continents
        )

    # Leading fingerprint: the reproduced one; with none, the one with most owners. Ties: more
    # independent reproductions, more owners, earliest, then text (deterministic).
    reproduced = [g for g in groups.values() if g.reproduced()]
    ranked = sorted(
        reproduced or groups.values(),
        key=lambda g: (-len(g.independent()), -len(g.owners()), g.first_ms(), g.fingerprint),
    )
    lead = ranked[0] if ranked else None
    if revoked:
        return result("revoked", lead)
    if lead is None:
        return result("insufficient", None)
    if len(reproduced) > 1:
        return result("diverged", lead)
    if len(lead.owners()) < policy.quorum:
        return result("diverged" if len(groups) > 1 else "insufficient", lead)
    if len(lead.independent()) < policy.min_reproductions:
        return result("awaiting-repro", lead)
    agreed = _agreed_since(lead, policy)
    if now_ms - agreed < policy.settling_ms:
        return result("settling", lead, agreed)
    return result("agreement", lead, agreed)
