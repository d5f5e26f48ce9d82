"""protocol.md §4.8 and §3 (/u/<token>): the view's resolution rules as a table of cases."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vega.core.promotion import AttestationRecord, Lane
from vega.core.trust import TrustEdge, TrustRequest, TrustScope, edge_admits, resolve_view
from vega.errors import FormatError

FP_A = "1;/nix/store/aaaa-hello;sha256:aaaa;1;"
FP_B = "1;/nix/store/aaaa-hello;sha256:bbbb;1;"
B = "100"  # builder B
C = "200"  # builder C
D = "300"  # a builder nobody trusts


def rec(
    owner: str,
    fp: str = FP_A,
    *,
    tenant: str | None = None,
    lane: Lane = "owner",
    at: int = 1000,
) -> AttestationRecord:
    return AttestationRecord(
        attester_id=f"{lane}:{owner}:{tenant}:{fp[-6:]}",
        tenant=tenant if tenant is not None else (f"owner:{owner}" if lane == "owner" else None),
        lane=lane,
        fingerprint=fp,
        is_trust_root=True,
        weight=1,
        sig="s",
        attested_at_ms=at,
        owner_id=owner,
    )


def ci(owner: str, tenant: str, fp: str = FP_A) -> AttestationRecord:
    return rec(owner, fp, tenant=tenant, lane="gh-actions")


def edge(builder: str, kind: str = "all", name: str | None = None, **kw: object) -> TrustEdge:
    return TrustEdge(builder=builder, scope=TrustScope(kind, name), **kw)  # type: ignore[arg-type]


REPRO_A = rec("999", FP_A, tenant="vega/reproducer", lane="vega-repro")
REPRO_B = rec("999", FP_B, tenant="vega/reproducer", lane="vega-repro")


@dataclass(frozen=True)
class Case:
    name: str
    edges: tuple[TrustEdge, ...]
    atts: tuple[AttestationRecord, ...]
    reason: str
    fingerprint: str | None = None
    store_name: str = "hello"
    revoked: bool = False


CASES = [
    # no edges, nobody trusted
    Case("no edge", (), (rec(B),), "untrusted"),
    Case("edge to someone else", (edge(C),), (rec(B),), "untrusted"),
    Case("no attestations", (edge(B),), (), "untrusted"),
    # scope all
    Case("all: owner push", (edge(B),), (rec(B),), "trusted", FP_A),
    Case("all: CI build", (edge(B),), (ci(B, "bob/app"),), "trusted", FP_A),
    Case("all: a reproduction by B is not B's build", (edge(B),), (rec(B, lane="vega-repro"),), "untrusted"),
    Case("all: pool lane is not a builder lane", (edge(B),), (rec(B, lane="pool"),), "untrusted"),
    # not transitive: trusting C, who trusts nobody's output but their own
    Case("not transitive", (edge(C),), (rec(B), rec(D)), "untrusted"),
    # package scope
    Case("package: same name", (edge(B, "package", "hello"),), (rec(B),), "trusted", FP_A),
    Case("package: other name", (edge(B, "package", "hello"),), (rec(B),), "out-of-scope", store_name="curl"),
    # flake scope: verified CI provenance from that repository only
    Case("flake: that repo", (edge(B, "flake", "bob/app"),), (ci(B, "Bob/App"),), "trusted", FP_A),
    Case("flake: other repo", (edge(B, "flake", "bob/app"),), (ci(B, "bob/other"),), "out-of-scope"),
    Case("flake: owner push has no CI provenance", (edge(B, "flake", "bob/app"),), (rec(B),), "out-of-scope"),
    Case(
        "flake: tenant named like the repo but owner lane",
        (edge(B, "flake", "bob/app"),),
        (rec(B, tenant="bob/app"),),
        "out-of-scope",
    ),
    Case(
        "flake: that repo built by an untrusted owner id",
        (edge(B, "flake", "bob/app"),),
        (ci(D, "bob/app"),),
        "untrusted",
    ),
    Case(
        "flake: CI record without tenant",
        (edge(B, "flake", "bob/app"),),
        (rec(B, lane="gh-actions"),),
        "out-of-scope",
    ),
    # org scope
    Case("org: any repo of the owner", (edge(B, "org", "bob"),), (ci(B, "bob/x"),), "trusted", FP_A),
    Case("org: other owner", (edge(B, "org", "bob"),), (ci(B, "alice/x"),), "out-of-scope"),
    Case("org: owner push", (edge(B, "org", "bob"),), (rec(B),), "out-of-scope"),
    # agreement and conflict
    Case("two trusted builders agree", (edge(B), edge(C)), (rec(B), rec(C)), "trusted", FP_A),
    Case("two trusted builders disagree", (edge(B), edge(C)), (rec(B), rec(C, FP_B)), "conflict"),
    Case(
        "disagreement from an edge of another scope still conflicts",
        (edge(B), edge(C, "package", "curl")),
        (rec(B), rec(C, FP_B)),
        "conflict",
    ),
    Case("one builder attested two outputs", (edge(B),), (rec(B), ci(B, "bob/x", FP_B)), "conflict"),
    Case(
        "an untrusted builder's disagreement is ignored", (edge(B),), (rec(B), rec(D, FP_B)), "trusted", FP_A
    ),
    # divergence from Vega's reproduction
    Case("reproduction agrees", (edge(B),), (rec(B), REPRO_A), "trusted", FP_A),
    Case("reproduction diverged: withheld", (edge(B),), (rec(B), REPRO_B), "diverged"),
    Case(
        "reproduction diverged: edge accepts unreproducible",
        (edge(B, accept_unreproducible=True),),
        (rec(B), REPRO_B),
        "trusted",
        FP_A,
    ),
    Case(
        "reproductions disagree among themselves: withheld",
        (edge(B),),
        (rec(B), REPRO_A, REPRO_B),
        "diverged",
    ),
    # revocation
    Case("revoked edge", (edge(B, revoked_at_ms=5),), (rec(B),), "untrusted"),
    Case(
        "revoked edge then re-added",
        (edge(B, revoked_at_ms=5), edge(B, "package", "hello")),
        (rec(B),),
        "trusted",
        FP_A,
    ),
    Case(
        "revoked edge no longer makes a conflict",
        (edge(B), edge(C, revoked_at_ms=5)),
        (rec(B), rec(C, FP_B)),
        "trusted",
        FP_A,
    ),
    Case("revoked store path", (edge(B),), (rec(B),), "revoked", revoked=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_resolution_table(case: Case) -> None:
    got = resolve_view(case.edges, case.atts, case.store_name, revoked=case.revoked)
    assert got.reason == case.reason
    assert got.fingerprint == case.fingerprint
    assert got.served == (case.reason == "trusted")
    assert got.explain()


def test_resolution_names_the_builders_and_the_first_attestation() -> None:
    first, second = rec(B, at=5), rec(C, at=3)
    got = resolve_view([edge(B), edge(C)], [first, second], "hello")
    assert got.builders == (B, C)
    assert got.attester_id == second.attester_id
    conflict = resolve_view([edge(B), edge(C)], [first, rec(C, FP_B)], "hello")
    assert conflict.builders == (B, C)
    assert B in conflict.explain()
    assert C in conflict.explain()


def test_edge_admits_needs_an_active_edge() -> None:
    assert edge_admits(edge(B), rec(B), "hello")
    assert not edge_admits(edge(B, revoked_at_ms=1), rec(B), "hello")
    assert not edge_admits(edge(B), rec(C), "hello")


@pytest.mark.parametrize(
    ("body", "scope"),
    [
        ({"kind": "all"}, TrustScope("all")),
        ({"kind": "package", "name": "hello"}, TrustScope("package", "hello")),
        ({"kind": "flake", "name": "Bob/App"}, TrustScope("flake", "bob/app")),
        ({"kind": "org", "name": "BOB"}, TrustScope("org", "bob")),
    ],
)
def test_scope_wire_shapes(body: dict[str, object], scope: TrustScope) -> None:
    parsed = TrustScope.from_json(body)
    assert parsed == scope
    assert TrustScope.from_json(parsed.to_json()) == parsed


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"kind": "everything"},
        {"kind": 1},
        {"kind": "all", "name": "x"},
        {"kind": "package"},
        {"kind": "package", "name": ""},
        {"kind": "package", "name": 5},
        {"kind": "package", "name": "a/b"},
        {"kind": "flake", "name": "noslash"},
        {"kind": "flake", "name": "-bad/x"},
        {"kind": "org", "name": "a/b"},
    ],
)
def test_bad_scopes(body: object) -> None:
    with pytest.raises(FormatError, match="scope"):
        TrustScope.from_json(body)


def test_scope_rejects_unknown_kind_directly() -> None:
    with pytest.raises(FormatError, match=r"scope\.kind"):
        TrustScope("nope")  # type: ignore[arg-type]


def test_edge_wire_shape() -> None:
    e = TrustEdge(builder=B, scope=TrustScope("org", "bob"), accept_unreproducible=True, revoked_at_ms=7)
    assert e.to_json() == {
        "builder": B,
        "scope": {"kind": "org", "name": "bob"},
        "acceptUnreproducible": True,
        "revokedAt": 7,
    }
    assert not e.active
    assert edge(B).to_json() == {"builder": B, "scope": {"kind": "all"}}
    with pytest.raises(FormatError, match="builder"):
        edge("octocat")


def test_trust_request() -> None:
    body = {"builder": B, "scope": {"kind": "all"}, "acceptUnreproducible": True}
    req = TrustRequest.from_json(body)
    assert req.to_json() == body
    plain = TrustRequest.from_json({"builder": B, "scope": {"kind": "all"}})
    assert plain.to_json() == {"builder": B, "scope": {"kind": "all"}}
    for bad, what in [
        ({"builder": "octocat", "scope": {"kind": "all"}}, "builder"),
        ({"builder": 100, "scope": {"kind": "all"}}, "builder"),
        ({"builder": "0", "scope": {"kind": "all"}}, "builder"),
        ({"builder": B, "scope": {"kind": "all"}, "acceptUnreproducible": "yes"}, "acceptUnreproducible"),
        ({"builder": B}, "scope"),
    ]:
        with pytest.raises(FormatError, match=what):
            TrustRequest.from_json(bad)


def test_view_token_wire_shape() -> None:
    from vega.core.trust import ViewToken

    body = {
        "token": "abc_-1",
        "substituter": "/u/abc_-1",
        "publicKey": "vega-view-7-1:" + "A" * 43 + "=",
        "sharedKey": "vega-cache-1:" + "B" * 43 + "=",
    }
    view = ViewToken.from_json(body)
    assert view.to_json() == body
    assert "abc_-1" not in repr(view)
    no_token = {k: v for k, v in body.items() if k != "token"}
    assert ViewToken.from_json(no_token).token == "abc_-1"
    for field, value, message in [
        ("substituter", "/u/../x", "unexpected substituter path"),
        ("substituter", "https://evil/u/x", "unexpected substituter path"),
        ("substituter", None, "unexpected substituter path"),
        ("publicKey", "no key", "malformed public key"),
        ("sharedKey", 5, "malformed public key"),
    ]:
        with pytest.raises(FormatError, match=message):
            ViewToken.from_json({**body, field: value})
