"""Issue 14, "who counts as an independent reproducer": each attack on the promotion, refused.

Every test is an attack that succeeded before the fix (docs/adr/0011), run against the real
control plane over each storage backend (SQLite, PostgreSQL) with tokens from the development
OIDC issuer: an impostor workflow ref, a self-hosted runner, a reproduction run by a builder's
own owner, a spoofed failure report, a crowd of throw-away owners, two tenants sharing a run id,
and a path promoted before its closure.

Spec: protocol.md §4.3, §4.5, §7, §10; agent.md §12; issue 14.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.cachekit import REPRO_WORKFLOW, REPRO_WORKFLOW_REF, Harness, Output
from vega.errors import ConfigError
from vega.server.db import Database

IMPOSTOR = "0123456789abcdef0123456789abcdef01234567"
"""A fork commit reachable through the parent repository's name ("impostor commit")."""


@pytest.fixture
def h(database: Database, tmp_path: Path) -> Harness:
    return Harness(database, tmp_path)


def attest(h: Harness, token: str, out: Output, **over: object) -> dict[str, object]:
    r = h.attest(token, out.body(**over))
    assert r.status_code == 200, r.text
    result: dict[str, object] = r.json()
    return result


def shared(result: dict[str, object]) -> dict[str, object]:
    decision = result["decision"]
    assert isinstance(decision, dict)
    value = decision["shared"]
    assert isinstance(value, dict)
    return value


def not_in_shared_tier(h: Harness, out: Output) -> None:
    assert h.client.get(f"/{out.hash_part}.narinfo").status_code == 404
    assert h.client.get(f"/api/status/{out.hash_part}").json()["inSharedCache"] is False


def test_a_reproducer_entry_without_a_ref_is_refused_and_an_impostor_ref_is_no_reproducer(
    database: Database, tmp_path: Path
) -> None:
    # Before the fix the server started with this entry, and the impostor ref below was a reproducer.
    with pytest.raises(ConfigError, match="names no ref"):
        Harness(database, tmp_path, reproducer_workflows=(REPRO_WORKFLOW,))
    h = Harness(database, tmp_path)
    evil = Output("hello", b"malicious bytes " * 40)
    builder = h.ci_token("mallory/hello", run_id="1", owner_id="101")
    impostor = h.ci_token(
        "mallory2/hello", run_id="2", owner_id="102", workflow=f"{REPRO_WORKFLOW}@{IMPOSTOR}"
    )
    h.upload(builder, evil)
    attest(h, builder, evil, attr="default")
    result = attest(h, impostor, evil)
    assert shared(result)["reason"] == "awaiting-repro"
    assert shared(result)["vegaReproductions"] == 0
    assert result["publishedShared"] is False
    not_in_shared_tier(h, evil)
    lanes = {e["lane"] for e in h.log_entries()}
    assert lanes == {"gh-actions"}


def test_a_self_hosted_runner_is_no_reproducer_unless_named(database: Database, tmp_path: Path) -> None:
    h = Harness(database, tmp_path)
    evil = Output("hello", b"malicious bytes " * 40)
    builder = h.ci_token("mallory/hello", run_id="1", owner_id="101")
    # The pinned workflow, but on a runner the attacker controls (a self-hosted "ubuntu-latest").
    own_runner = h.ci_token(
        "mallory2/x", run_id="2", owner_id="102", reproducer=True, runner_environment="self-hosted"
    )
    h.upload(builder, evil)
    attest(h, builder, evil)
    result = attest(h, own_runner, evil)
    assert shared(result)["reason"] == "awaiting-repro"
    not_in_shared_tier(h, evil)
    # The operator can name repositories whose self-hosted runners reproduce.
    named = Harness(database, tmp_path / "named", reproducer_self_hosted=("vega-org/vega",))
    token = named.ci_token("vega-org/vega", run_id="3", reproducer=True, runner_environment="self-hosted")
    assert named.auth.oidc(token).is_reproducer
    stranger = named.ci_token("mallory2/x", run_id="4", reproducer=True, runner_environment="self-hosted")
    assert not named.auth.oidc(stranger).is_reproducer


def test_a_reproduction_by_a_builders_owner_is_not_independent(h: Harness) -> None:
    evil = Output("hello", b"malicious bytes " * 40)
    alice = h.ci_token("mallory/hello", run_id="1", owner_id="101")
    bob = h.ci_token("throwaway/hello", run_id="2", owner_id="102")
    # The pinned reproducer workflow, called (workflow_call) from a repository of builder 101.
    own = h.ci_token("mallory/repro", run_id="3", owner_id="101", reproducer=True)
    h.upload(alice, evil)
    attest(h, alice, evil)
    attest(h, bob, evil)
    result = attest(h, own, evil)
    assert shared(result)["reason"] == "awaiting-repro"
    assert shared(result)["vegaReproductions"] == 0
    not_in_shared_tier(h, evil)
    # An independent reproduction (another owner) confirms it.
    independent = h.ci_token("vega-org/vega", run_id="4", owner_id="900", reproducer=True)
    assert shared(attest(h, independent, evil))["reason"] == "agreement"


def queued(h: Harness) -> list[str]:
    return [c["hash"] for c in h.client.get("/api/repro/queue").json()["candidates"]]


def report(h: Harness, token: str, hash_part: str, reason: str = "unresolvable") -> int:
    r = h.client.post(
        "/api/repro/dispatch-failed",
        headers={"authorization": f"Bearer {token}"},
        json={"hash": hash_part, "reason": reason},
    )
    return r.status_code


def test_a_spoofed_failure_report_cannot_retire_a_candidate(h: Harness) -> None:
    a = Output("a", b"a" * 50)
    b = Output("b", b"b" * 50)
    alice = h.ci_token("alice/hello", run_id="1")
    for out in (a, b):
        h.upload(alice, out)
        attest(h, alice, out, attr=out.name)
    assert sorted(queued(h)) == sorted([a.hash_part, b.hash_part])
    impostor = h.ci_token("mallory/x", run_id="2", workflow=f"{REPRO_WORKFLOW}@{IMPOSTOR}")
    self_hosted = h.ci_token("mallory/x", run_id="3", reproducer=True, runner_environment="self-hosted")
    # The pinned workflow called from a stranger's repository: its inputs are the caller's.
    caller = h.ci_token("mallory/x", run_id="4", reproducer=True)
    for token in (impostor, self_hosted, caller, alice):
        assert report(h, token, a.hash_part) == 403
        assert report(h, token, a.hash_part, "build-failed") == 403
    assert sorted(queued(h)) == sorted([a.hash_part, b.hash_part])
    attempts = {c["hash"]: c["attempts"] for c in h.client.get("/api/repro/queue").json()["candidates"]}
    assert attempts == {a.hash_part: 0, b.hash_part: 0}
    # The operator's own dispatched run may retire the candidate it names, and only that one.
    repro = h.ci_token("vega-org/vega", run_id="5", reproducer=True)
    assert report(h, repro, "0" * 32) == 404
    assert report(h, repro, a.hash_part) == 200
    assert queued(h) == [b.hash_part]


def test_a_crowd_cannot_block_or_flip_a_reproduced_output(h: Harness) -> None:
    good = Output("hello", b"honest build " * 40)
    evil = Output("hello", b"malicious bytes " * 40)
    alice = h.ci_token("alice/hello", run_id="1", owner_id="1")
    h.upload(alice, good)
    attest(h, alice, good)
    for i in range(4):  # throw-away owners cost nothing
        crowd = h.ci_token(f"sock{i}/hello", run_id=str(10 + i), owner_id=str(200 + i))
        h.upload(crowd, evil)
        result = attest(h, crowd, evil)
        assert result["publishedShared"] is False
    repro = h.ci_token("vega-org/vega", run_id="50", owner_id="900", reproducer=True)
    h.upload(repro, good)
    result = attest(h, repro, good)
    assert shared(result)["reason"] == "agreement"
    assert result["publishedShared"] is True
    decision = result["decision"]
    assert isinstance(decision, dict)
    assert decision["diverged"] is True
    assert f"URL: {good.nar_url}\n" in h.client.get(f"/{good.hash_part}.narinfo").text  # the honest one
    status = h.client.get(f"/api/status/{good.hash_part}").json()
    assert status["inSharedCache"] is True
    assert status["diverged"] is True  # the dissent is recorded, visibly
    fingerprints = {e["fingerprint"] for e in h.log_entries() if e["event"] == "attestation"}
    assert len(fingerprints) == 2  # and in the log


def test_a_crowd_that_agrees_without_a_reproduction_never_promotes(
    database: Database, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="min_reproductions"):
        Harness(database, tmp_path, min_reproductions=0)
    h = Harness(database, tmp_path / "b", quorum=2)
    evil = Output("hello", b"malicious bytes " * 40)
    for i in range(5):
        token = h.ci_token(f"sock{i}/hello", run_id=str(10 + i), owner_id=str(200 + i))
        h.upload(token, evil)
        reason = shared(attest(h, token, evil))["reason"]
        assert reason == ("insufficient" if i == 0 else "awaiting-repro")
    assert h.app.state.service.sweep() == 0
    not_in_shared_tier(h, evil)


def test_two_reproductions_that_disagree_never_promote(h: Harness) -> None:
    one = Output("hello", b"build one " * 40)
    two = Output("hello", b"build two " * 40)
    alice = h.ci_token("alice/hello", run_id="1", owner_id="1")
    r1 = h.ci_token("vega-org/vega", run_id="2", owner_id="900", reproducer=True)
    r2 = h.ci_token("vega-org/vega", run_id="3", owner_id="900", reproducer=True)
    h.upload(alice, one)
    h.upload(r2, two)
    attest(h, alice, one)
    attest(h, r2, two)
    result = attest(h, r1, one)
    assert shared(result)["reason"] == "diverged"
    assert result["publishedShared"] is False
    not_in_shared_tier(h, one)
    assert h.client.get(f"/api/status/{one.hash_part}").json()["verdict"] == "diverged"


def test_two_tenants_with_the_same_run_id_are_two_attesters(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 40)
    alice = h.ci_token("alice/hello", run_id="777", owner_id="1")
    bob = h.ci_token("bob/hello", run_id="777", owner_id="2")
    h.upload(alice, out)
    attest(h, alice, out)
    attest(h, bob, out)
    attestations = [e for e in h.log_entries() if e["event"] == "attestation"]
    assert [e["tenant"] for e in attestations] == ["alice/hello", "bob/hello"]
    assert len({e["attesterId"] for e in attestations}) == 2
    # every tenant narinfo served has its own recorded, logged attestation
    assert h.client.get(f"/tenant/bob/hello/{out.hash_part}.narinfo").status_code == 200
    assert h.client.get(f"/api/status/{out.hash_part}").json()["agree"] == 2
    # Even an issuer that reuses a repository id for another name publishes nothing unrecorded.
    carol = h.ci_token("carol/hello", run_id="777", owner_id="3", repository_id=_repository_id(h, alice))
    r = h.attest(carol, out.body())
    assert r.status_code == 409
    assert h.client.get(f"/tenant/carol/hello/{out.hash_part}.narinfo").status_code == 404
    assert len([e for e in h.log_entries() if e["event"] == "attestation"]) == 2


def _repository_id(h: Harness, token: str) -> str:
    return h.auth.oidc(token).repository_id


def test_a_path_is_signed_into_the_shared_tier_only_with_its_closure(h: Harness) -> None:
    dep = Output("greeting", b"greeting " * 40)
    top = Output("hello", b"hello " * 40, references=[])
    top.references = [dep.base, top.base]  # a self-reference is fine
    alice = h.ci_token("alice/hello", run_id="1", owner_id="1")
    repro = h.ci_token("vega-org/vega", run_id="2", owner_id="900", reproducer=True)
    for out in (dep, top):
        h.upload(alice, out)
    attest(h, alice, top)
    result = attest(h, repro, top)
    assert shared(result)["reason"] == "awaiting-repro"  # agreed, but its reference is not shared
    assert result["publishedShared"] is False
    not_in_shared_tier(h, top)
    assert [e["event"] for e in h.log_entries()].count("promotion") == 0
    attest(h, alice, dep)
    assert attest(h, repro, dep)["publishedShared"] is True
    # The dependent waiting on it is promoted by the next sweep (docs/adr/0011).
    assert h.app.state.service.sweep() == 1
    assert h.client.get(f"/{top.hash_part}.narinfo").status_code == 200
    assert h.client.get(f"/api/status/{top.hash_part}").json()["verdict"] == "reproducible"


def test_the_pinned_reproducer_still_promotes(h: Harness) -> None:
    assert REPRO_WORKFLOW_REF.endswith("@refs/heads/main")
    out = Output("hello", b"nar bytes " * 40)
    alice = h.ci_token("alice/hello", run_id="1", owner_id="1")
    repro = h.ci_token("vega-org/vega", run_id="2", owner_id="900", reproducer=True)
    h.upload(alice, out)
    attest(h, alice, out)
    assert attest(h, repro, out)["publishedShared"] is True
