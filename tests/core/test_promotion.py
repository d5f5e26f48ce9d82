"""protocol.md §7: the promotion policy, as a table of cases."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core.promotion import (
    REASONS,
    AttestationRecord,
    BuildProvenance,
    Lane,
    PromotionDecision,
    PromotionPolicy,
    decide,
    is_independent_reproduction,
    owner_key,
)
from vega.errors import FormatError

FP_A = "1;/nix/store/aaaa-x;sha256:aaaa;1;"
FP_B = "1;/nix/store/aaaa-x;sha256:bbbb;1;"


def rec(
    attester: str,
    tenant: str | None,
    fp: str = FP_A,
    *,
    lane: Lane = "gh-actions",
    at: int = 1000,
    owner: str | None = None,
    trust: bool = True,
    weight: int = 1,
    continent: str | None = None,
) -> AttestationRecord:
    return AttestationRecord(
        attester_id=attester,
        tenant=tenant,
        lane=lane,
        fingerprint=fp,
        is_trust_root=trust,
        weight=weight,
        sig=f"run:{attester}",
        attested_at_ms=at,
        continent=continent,
        owner_id=owner,
    )


REPRO = rec("repro-1", "vega-org/reproducer", lane="vega-repro", at=3000, owner="999")
POLICY = PromotionPolicy(quorum=2, min_reproductions=1, settling_ms=1000)


@dataclass
class Case:
    name: str
    records: list[AttestationRecord]
    now: int
    reason: str
    promoted: bool = False
    revoked: bool = False
    diverged: bool = False
    fingerprint: str | None = FP_A
    policy: PromotionPolicy = POLICY


CASES = [
    Case("nothing attested", [], 5000, "insufficient", fingerprint=None),
    Case("one builder", [rec("r1", "org/a", owner="1")], 5000, "insufficient"),
    Case(
        "two repos of one owner are one owner",
        [rec("r1", "org/a", owner="1"), rec("r2", "org/b", owner="1")],
        9000,
        "insufficient",
    ),
    Case(
        "two repos of one owner by name, no ids",
        [rec("r1", "Org/a"), rec("r2", "org/b")],
        9000,
        "insufficient",
    ),
    Case(
        "two owners, no reproduction",
        [rec("r1", "org/a", owner="1"), rec("r2", "other/b", owner="2")],
        9000,
        "awaiting-repro",
    ),
    Case(
        "builder + reproducer of another owner, settled",
        [rec("r1", "org/a", owner="1"), REPRO],
        4000,
        "agreement",
        promoted=True,
    ),
    Case(
        "builder + reproducer, within the settling window",
        [rec("r1", "org/a", owner="1"), REPRO],
        3999,
        "settling",
    ),
    Case(
        "reproducer run by the builder's own owner does not make a quorum",
        [rec("r1", "org/a", owner="1"), rec("rep", "org/fork", lane="vega-repro", owner="1", at=3000)],
        9000,
        "insufficient",
    ),
    Case(
        "owner pushes produce no shared-tier evidence",
        [rec("p1", "owner:1", lane="owner", owner="1"), rec("p2", "owner:2", lane="owner", owner="2"), REPRO],
        9000,
        "insufficient",
    ),
    Case(
        "unverified builders do not count",
        [rec("r1", "org/a", owner="1", trust=False), REPRO],
        9000,
        "insufficient",
    ),
    Case(
        "revoked wins over agreement",
        [rec("r1", "org/a", owner="1"), REPRO],
        9000,
        "revoked",
        revoked=True,
    ),
    Case("revoked with nothing attested", [], 9000, "revoked", revoked=True, fingerprint=None),
    Case(
        "reproduction disagrees: the reproduced fingerprint leads, the builders' quorum is no help",
        [
            rec("r1", "org/a", owner="1"),
            rec("r2", "x/b", owner="2"),
            rec("rep", None, FP_B, lane="vega-repro"),
        ],
        9000,
        "diverged",
        diverged=True,
        fingerprint=FP_B,
    ),
    Case(
        "builders disagree and none has a quorum",
        [rec("r1", "org/a", owner="1"), rec("r2", "x/b", FP_B, owner="2")],
        9000,
        "diverged",
        diverged=True,
    ),
    Case(
        "a lone dissenting builder does not block a reproduced quorum",
        [
            rec("r1", "org/a", owner="1"),
            rec("r2", "x/b", owner="2"),
            rec("r3", "y/c", FP_B, owner="3"),
            REPRO,
        ],
        9000,
        "agreement",
        promoted=True,
        diverged=True,
    ),
    Case(
        "an owner push of another fingerprint records divergence only",
        [rec("r1", "org/a", owner="1"), rec("p", "owner:5", FP_B, lane="owner", owner="5")],
        9000,
        "insufficient",
        diverged=True,
    ),
    Case(
        "quorum of three",
        [rec("r1", "org/a", owner="1"), rec("r2", "x/b", owner="2"), REPRO],
        9000,
        "agreement",
        promoted=True,
        policy=PromotionPolicy(quorum=3, min_reproductions=1, settling_ms=0),
    ),
    # -- issue 14 (docs/adr/0011): owners cost nothing ------------------------------------------
    Case(
        "a reproduction run by a builder's own owner is not independent",
        [
            rec("r1", "org/a", owner="1"),
            rec("r2", "x/b", owner="2"),
            rec("rep", "org/fork", lane="vega-repro", owner="1"),
        ],
        9000,
        "awaiting-repro",
    ),
    Case(
        "a crowd disagreeing with a reproduced output cannot block or flip it",
        [
            rec("r1", "org/a", owner="1"),
            *[rec(f"sock{i}", f"sock{i}/x", FP_B, owner=str(100 + i)) for i in range(5)],
            REPRO,
        ],
        9000,
        "agreement",
        promoted=True,
        diverged=True,
    ),
    Case(
        "a crowd cannot take the lead from a reproduction still short of quorum",
        [*[rec(f"sock{i}", f"sock{i}/x", FP_B, owner=str(100 + i)) for i in range(5)], REPRO],
        9000,
        "diverged",
        diverged=True,
    ),
    Case(
        "a crowd that agrees without a reproduction never promotes",
        [rec(f"sock{i}", f"sock{i}/x", owner=str(100 + i)) for i in range(9)],
        9000,
        "awaiting-repro",
    ),
    Case(
        "two reproductions that disagree never promote",
        [
            rec("r1", "org/a", owner="1"),
            REPRO,
            rec("rep2", "vega-org/r2", FP_B, lane="vega-repro", owner="998"),
        ],
        9000,
        "diverged",
        diverged=True,
    ),
    Case(
        "two reproductions by one owner are one reproduction",
        [
            rec("r1", "org/a", owner="1"),
            REPRO,
            rec("repro-2", "vega-org/reproducer", lane="vega-repro", owner="999"),
        ],
        9000,
        "awaiting-repro",
        policy=PromotionPolicy(quorum=2, min_reproductions=2, settling_ms=0),
    ),
    Case(
        "two independent reproductions need no builder",
        [REPRO, rec("repro-2", "other/reproducer", lane="vega-repro", owner="998", at=3000)],
        9000,
        "agreement",
        promoted=True,
    ),
    Case(
        "settling restarts when a reproduction stops being independent",
        [
            rec("r1", "org/a", owner="1", at=1000),
            rec("rep", "vega-org/r", lane="vega-repro", owner="9", at=2000),
            rec("r9", "vega-org/app", owner="9", at=3000),
            rec("rep2", "other/r", lane="vega-repro", owner="8", at=4000),
        ],
        4999,
        "settling",
    ),
    Case(
        "pool lane counts when verified",
        [rec("pool1", None, lane="pool"), REPRO],
        9000,
        "agreement",
        promoted=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide_table(case: Case) -> None:
    d = decide(case.records, case.policy, case.now, case.revoked)
    assert d.shared.reason == case.reason
    assert d.shared.promoted is case.promoted
    assert d.diverged is case.diverged
    assert d.shared.fingerprint == case.fingerprint
    assert PromotionDecision.from_json(json.loads(json.dumps(d.to_json()))) == d


def test_every_reason_is_in_the_table() -> None:
    assert {c.reason for c in CASES} == set(REASONS)


def test_decision_fields() -> None:
    records = [
        rec("r1", "org/a", owner="1", at=1000, weight=2, continent="EU"),
        rec("r1", "org/a", owner="1", at=1500, weight=2, continent="EU"),  # duplicate attester
        rec("r2", "other/b", owner="2", at=2000, weight=3, continent="XX"),
        rec("rep", "vega/repro", lane="vega-repro", owner="9", at=2500, continent="NA"),
        rec("r3", "org/a", FP_B, lane="owner", owner="1", at=2600),
    ]
    d = decide(records, PromotionPolicy(quorum=2, settling_ms=100), 2600, False)
    assert d.to_json() == {
        "tenantTier": [
            {"tenant": "org/a", "fingerprint": FP_B},
            {"tenant": "other/b", "fingerprint": FP_A},
            {"tenant": "vega/repro", "fingerprint": FP_A},
        ],
        "shared": {
            "promoted": True,
            "fingerprint": FP_A,
            "reason": "agreement",
            "distinctTenants": 3,
            "weight": 6,
            "agreeingTenants": ["org/a", "other/b", "vega/repro"],
            "agreedSince": 2500,
            "vegaReproductions": 1,
        },
        "diverged": True,
        "continents": ["EU", "NA"],
    }


def test_order_of_records_does_not_matter() -> None:
    records = [rec("r1", "org/a", owner="1"), rec("r2", "x/b", owner="2"), REPRO, rec("r3", "y/c", FP_B)]
    assert decide(records, POLICY, 9000, False) == decide(list(reversed(records)), POLICY, 9000, False)


def test_owner_key_forms() -> None:
    assert owner_key(rec("a", "Org/x")) == "name:org"
    assert owner_key(rec("a", "owner:42", lane="owner")) == "id:42"
    assert owner_key(rec("a", None, lane="pool")) == "attester:a"
    assert owner_key(rec("a", "org/x", owner="7")) == "id:7"


def test_invalid_values_cannot_exist() -> None:
    with pytest.raises(FormatError):
        rec("a", None, lane="bogus")  # type: ignore[arg-type]
    with pytest.raises(FormatError):
        rec("a", None, weight=-1)
    with pytest.raises(FormatError):
        PromotionPolicy(quorum=0)
    with pytest.raises(FormatError):
        PromotionPolicy(settling_ms=-1)
    with pytest.raises(FormatError, match="never promotes"):
        PromotionPolicy(min_reproductions=0)
    assert BuildProvenance(flake_ref="github:o/r", attr="a", rev="0" * 40).dir is None


def test_from_json_minimal_and_errors() -> None:
    d = PromotionDecision.from_json({"shared": {"reason": "settling"}})
    assert d.shared.reason == "settling"
    assert d.shared.fingerprint is None
    bad = [
        (None, "decision: expected an object"),
        ({"shared": {"reason": "nope"}}, "decision.shared.reason"),
        ({"shared": {"reason": "agreement"}, "tenantTier": {}}, "decision.tenantTier: expected an array"),
        ({"shared": {"reason": "agreement"}, "tenantTier": [{"tenant": 1}]}, "decision.tenantTier[0].tenant"),
        ({"shared": {"reason": "agreement", "promoted": 1}}, "decision.shared.promoted"),
        ({"shared": {"reason": "agreement", "weight": -1}}, "decision.shared.weight"),
        ({"shared": {"reason": "agreement", "weight": True}}, "decision.shared.weight"),
        ({"shared": {"reason": "agreement", "weight": 1.5}}, "decision.shared.weight"),
        ({"shared": {"reason": "agreement", "agreedSince": "x"}}, "decision.shared.agreedSince"),
        ({"shared": {"reason": "agreement"}, "continents": [1]}, "decision.continents[0]"),
    ]
    for obj, message in bad:
        with pytest.raises(FormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
            PromotionDecision.from_json(obj)
    assert PromotionDecision.from_json({"shared": {"reason": "agreement", "weight": 5.0}}).shared.weight == 5


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_from_json_arbitrary_raises_only_format_error(obj: object) -> None:
    with contextlib.suppress(FormatError):
        PromotionDecision.from_json(obj)


lanes = st.sampled_from(["gh-actions", "owner", "pool", "vega-repro"])


@given(
    st.lists(
        st.builds(
            rec,
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from([None, "o1/r", "o2/r", "owner:3"]),
            st.sampled_from([FP_A, FP_B]),
            lane=lanes,
            at=st.integers(0, 5000),
            trust=st.booleans(),
        ),
        max_size=8,
    ),
    st.integers(0, 10000),
    st.booleans(),
)
def test_decide_invariants(records: list[AttestationRecord], now: int, revoked: bool) -> None:
    d = decide(records, POLICY, now, revoked)
    assert d.shared.reason in REASONS
    assert d.shared.promoted == (d.shared.reason == "agreement")
    if d.shared.promoted:
        assert d.shared.vega_reproductions >= 1
        assert d.shared.agreed_since_ms is not None
        assert now - d.shared.agreed_since_ms >= POLICY.settling_ms
        assert not revoked


def test_agreed_since_is_the_latest_uninterrupted_stretch() -> None:
    records = [
        rec("r1", "org/a", owner="1", at=1000),
        rec("rep", "vega-org/r", lane="vega-repro", owner="9", at=2000),
        rec("r9", "vega-org/app", owner="9", at=3000),
        rec("rep2", "other/r", lane="vega-repro", owner="8", at=4000),
    ]
    d = decide(records, POLICY, 5000, False)
    assert (d.shared.reason, d.shared.agreed_since_ms, d.shared.vega_reproductions) == ("agreement", 4000, 1)
    assert decide(records[:2], POLICY, 5000, False).shared.agreed_since_ms == 2000


@given(
    st.lists(
        st.builds(
            rec,
            st.sampled_from(["a", "b", "c", "d", "e"]),
            st.sampled_from(["o1/r", "o2/r", "o3/r"]),
            st.sampled_from([FP_A, FP_B]),
            lane=st.just("gh-actions"),
            owner=st.sampled_from(["1", "2", "3", "4"]),
        ),
        max_size=10,
    ),
    st.sampled_from([FP_A, FP_B]),
)
def test_builders_never_outvote_a_lone_reproduction(crowd: list[AttestationRecord], fp: str) -> None:
    repro = rec("repro", "vega-org/r", fp, lane="vega-repro", owner="999", at=3000)
    d = decide([*crowd, repro], PromotionPolicy(quorum=2, min_reproductions=1), 9000, False)
    assert d.shared.fingerprint == fp
    if d.shared.promoted:
        assert any(r.fingerprint == fp for r in crowd)


def test_is_independent_reproduction() -> None:
    builder = rec("r1", "org/a", owner="1")
    own = rec("rep", "org/fork", lane="vega-repro", owner="1")
    other = rec("rep2", "vega-org/r", lane="vega-repro", owner="9")
    elsewhere = rec("r2", "vega-org/app", FP_B, owner="9")
    records = [builder, own, other, elsewhere]
    assert not is_independent_reproduction(own, records)
    assert is_independent_reproduction(other, records)  # owner 9 built only another fingerprint
    assert not is_independent_reproduction(builder, records)
