"""The tools and the change assessment over the real control plane in process (every rule, every bound).

The control plane is :class:`tests.server.cachekit.Harness` (real app, real SQLite, dev OIDC), the
client the real verify core over its transport, with the Recorder in between to make the cache lie.

Spec: mcp.md §4.2-§4.5, §5 (test-pinned behaviours), §6; issue 9.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.client.conftest import Recorder
from tests.server.cachekit import PUBLIC_URL, Harness, Output
from vega.client.http import HttpLimits
from vega.client.logstate import LogState
from vega.client.verify import VerifyContext, VerifyOptions, verify_target
from vega.core.narinfo import format_narinfo, parse_narinfo, sign_narinfo
from vega.core.signing import generate_secret_key, parse_public_key
from vega.mcp.assess import CLI_BOUNDS, MCP_BOUNDS, AssessBounds, assess_change
from vega.mcp.tools import ToolContext, bounded, risk_of, vega_reproduce, vega_risk, vega_verify, worst
from vega.server.db import open_database

HELLO = Output("hello", b"nix-archive-1 hello world " * 200)
UPSTREAM = generate_secret_key("cache.example.org-1", b"\x07" * 32)


class ScriptedClock:
    """Returns the given readings in order, then the last one forever."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def __call__(self) -> float:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.h = Harness(open_database(f"sqlite:///{tmp}/cp.db"), tmp / "cp")
        self.recorder = Recorder(self.h.client._transport)
        self.client = httpx2.Client(transport=self.recorder, base_url=PUBLIC_URL)
        shared = self.h.keys.shared.public
        self.vctx = VerifyContext(
            client=self.client,
            base_url=PUBLIC_URL,
            trusted_keys={shared.name: shared, UPSTREAM.public.name: UPSTREAM.public},
            state=LogState(tmp / "state"),
            limits=HttpLimits(),
            sleep=lambda s: None,
        )
        self.ctx = ToolContext(verify=self.vctx, options=VerifyOptions(max_scan=2000))

    def attest(self, out: Output, repository: str, run_id: str, *, reproducer: bool = False) -> None:
        self.h.attest_as(out, repository, run_id, reproducer=reproducer)

    def promote(self, out: Output) -> None:
        self.h.promote(out)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    with b.h.client:
        yield b


def _json_lookup(change: dict[str, object]) -> object:
    def rewrite(body: bytes) -> bytes:
        obj = json.loads(body)
        obj.update(change)
        return json.dumps(obj).encode()

    return rewrite


# -- vega_risk rules ---------------------------------------------------------------------------------


def test_promoted_allow_and_request_count(bench: Bench) -> None:
    bench.promote(HELLO)
    bench.recorder.reset()
    risk = vega_risk(bench.ctx, HELLO.store_path)
    assert risk["verdict"] == "allow"
    assert risk["tier"] == "shared"
    assert risk["nextActions"] == []
    assert len(bench.recorder.paths) <= 4  # narinfo, lookup, (consistency), NAR


def test_sth_not_trusted_denies(bench: Bench) -> None:
    bench.promote(HELLO)

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        obj["sth"]["rootHash"] = "0" * 64
        return json.dumps(obj).encode()

    bench.recorder.tamper["/log/lookup/"] = change
    risk = vega_risk(bench.ctx, HELLO.hash_part)
    assert (risk["verdict"], risk["reasonCodes"]) == ("deny", ["STH_SIGNATURE_INVALID"])


def test_forged_log_entry_denies(bench: Bench) -> None:
    bench.promote(HELLO)

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        for e in obj["entries"]:
            e["data"] = e["data"].replace('"at":', '"at":9')
        return json.dumps(obj).encode()

    bench.recorder.tamper["/log/lookup/"] = change
    risk = vega_risk(bench.ctx, HELLO.hash_part)
    assert risk["verdict"] == "deny"
    assert risk["reasonCodes"] in (["INCLUSION_PROOF_FAILED"], ["REVOKED"])


def test_no_log_record_denies(bench: Bench) -> None:
    bench.promote(HELLO)

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        obj["entries"] = []
        return json.dumps(obj).encode()

    bench.recorder.tamper["/log/lookup/"] = change
    risk = vega_risk(bench.ctx, HELLO.hash_part)
    assert (risk["verdict"], risk["reasonCodes"]) == ("deny", ["NO_TRANSPARENCY_RECORD"])


def test_nar_mismatch_denies_and_unchecked_nar_only_warns(bench: Bench) -> None:
    bench.promote(HELLO)
    bench.recorder.serve[f"/{HELLO.nar_url}"] = (200, Output("evil", HELLO.nar[:-1] + b"X").compressed)
    risk = vega_risk(bench.ctx, HELLO.hash_part)
    assert (risk["verdict"], risk["reasonCodes"]) == ("deny", ["NAR_HASH_MISMATCH"])
    bench.recorder.serve[f"/{HELLO.nar_url}"] = (404, b"")
    risk = vega_risk(bench.ctx, HELLO.hash_part)
    assert risk["verdict"] == "warn"
    assert risk["reasonCodes"] == [
        "SHARED_REPRODUCED",
        "TRANSPARENCY_LOG_INCLUDED",
        "NAR_NOT_LOCALLY_CHECKED",
    ]
    out = vega_verify(bench.ctx, HELLO.hash_part)
    assert out["narHashChecked"] is False
    assert out["narHashVerified"] is False
    assert out["verified"] is False  # an unchecked NAR never reads as verified


def _upstream_narinfo(bench: Bench, compression: str) -> bytes:
    info = parse_narinfo(bench.h.client.get(f"/{HELLO.hash_part}.narinfo").content)
    info = replace(info, sigs=(), compression=compression)
    return format_narinfo(sign_narinfo(info, UPSTREAM)).encode()


def test_upstream_mirror_with_unchecked_nar_is_allowed_and_says_so(bench: Bench) -> None:
    bench.promote(HELLO)
    bench.recorder.serve[f"/{HELLO.hash_part}.narinfo"] = (200, _upstream_narinfo(bench, "lz4"))
    risk = vega_risk(bench.ctx, HELLO.hash_part)
    assert risk["verdict"] == "allow"
    assert risk["tier"] == "upstream"
    assert risk["reasonCodes"] == [
        "MIRRORED_UPSTREAM",
        "NOT_A_VEGA_TRUST_STATEMENT",
        "NAR_NOT_LOCALLY_CHECKED",
    ]
    env = assess_change(bench.ctx, [HELLO.store_path], MCP_BOUNDS)
    assert env["verdict"] == "allow"
    assert env["evidence"]["paths"][0]["reasonCodes"][-1] == "NAR_NOT_LOCALLY_CHECKED"  # type: ignore[index]


def test_no_trusted_key_is_a_tool_error_that_warns(bench: Bench) -> None:
    bench.promote(HELLO)
    ctx = replace(bench.ctx, verify=replace(bench.vctx, trusted_keys={}))
    out = vega_risk(ctx, HELLO.hash_part)
    assert out["code"] == "NO_TRUSTED_KEY"
    assert out["verdict"] == "warn"
    assert "vega-cache-1" in str(out["error"])


def test_tenant_build_is_not_discovered_and_cache_keys_are_never_used(bench: Bench) -> None:
    bench.attest(HELLO, "alice/hello", "1")
    out = vega_risk(bench.ctx, HELLO.hash_part)
    assert out["code"] == "NOT_IN_CACHE"
    assert not any(p.startswith("/api/status") or p.startswith("/tenant/") for p in bench.recorder.paths)
    tenant = replace(bench.vctx, base_url=f"{PUBLIC_URL}/tenant/alice/hello", trusted_keys={})
    out = vega_risk(replace(bench.ctx, verify=tenant), HELLO.hash_part)
    assert out["code"] == "NO_TRUSTED_KEY"  # the tenant's published key is never fetched
    assert not any(p.endswith("/key") for p in bench.recorder.paths)


def test_target_errors_make_no_request(bench: Bench) -> None:
    for tool in (vega_verify, vega_risk, vega_reproduce):
        out = tool(bench.ctx, "not-a-hash\x1b[31m" + "x" * 200)
        assert out["code"] == "NOT_A_STORE_PATH"
        assert "\x1b" not in str(out["error"])
        assert "…[truncated]" in str(out["error"])
        assert tool(bench.ctx, 5)["code"] == "INVALID_ARGUMENTS"
    assert bench.recorder.paths == []


# -- vega_reproduce ----------------------------------------------------------------------------------


def test_reproduce_status_parsing_is_fail_closed(bench: Bench) -> None:
    bench.promote(HELLO)
    path = f"/api/status/{HELLO.hash_part}"
    bench.recorder.serve[path] = (200, b'{"verdict":"totally-fine","agree":-3,"inSharedCache":"yes"}')
    out = vega_reproduce(bench.ctx, HELLO.hash_part)
    assert out["reproduction"] == {
        "status": "unknown",
        "agreeCount": 0,
        "diverged": False,
        "inSharedCache": False,
    }
    assert out["verdict"] == "warn"
    bench.recorder.serve[path] = (200, b'{"verdict":"diverged","agree":2.7,"inSharedCache":true}')
    out = vega_reproduce(bench.ctx, HELLO.hash_part)
    assert out["verdict"] == "deny"
    assert out["reproduction"]["agreeCount"] == 2  # type: ignore[index]
    assert "not reproducible" in str(out["nextActions"][0])  # type: ignore[index]
    bench.recorder.serve[path] = (200, b"not json")
    assert (
        vega_reproduce(bench.ctx, HELLO.hash_part)["error"]
        == f"malformed status response for {HELLO.hash_part}"
    )
    bench.recorder.serve[path] = (404, b"{}")
    assert (
        vega_reproduce(bench.ctx, HELLO.hash_part)["error"] == f"no status for {HELLO.hash_part} (HTTP 404)"
    )


# -- the change assessment (mcp.md §5.3 test-pinned behaviours) ----------------------------------------


def test_empty_change_is_allow_no_paths(bench: Bench) -> None:
    env = assess_change(bench.ctx, [], MCP_BOUNDS)
    assert env["verdict"] == "allow"
    assert env["reasonCodes"] == ["change.noPaths"]
    assert env["evidence"]["addedClosure"] == {"count": 0, "assessed": 0, "truncated": False}  # type: ignore[index]
    assert env["target"] == {"type": "closureDelta", "value": "0 of 0 added path(s)"}


def test_duplicates_count_once_and_the_worst_path_decides(bench: Bench) -> None:
    bench.promote(HELLO)
    env = assess_change(bench.ctx, [HELLO.store_path] * 3, MCP_BOUNDS)
    assert env["evidence"]["addedClosure"]["count"] == 1  # type: ignore[index]
    assert env["verdict"] == "allow"
    missing = "/nix/store/" + "1" * 32 + "-gone"
    env = assess_change(bench.ctx, [HELLO.store_path, missing, 7], MCP_BOUNDS)
    assert env["verdict"] == "warn"
    assert env["reasonCodes"] == ["change.hasUnverifiedPaths"]
    assert env["evidence"]["summary"] == {  # type: ignore[index]
        "verdicts": {"allow": 1, "warn": 1, "deny": 0},
        "tiers": {"shared": 1, "unknown": 1},
    }


def test_cap_truncates_and_is_never_allow(bench: Bench) -> None:
    paths = [f"not a path {i}" for i in range(55)]
    env = assess_change(bench.ctx, paths, CLI_BOUNDS)
    assert env["evidence"]["addedClosure"] == {"count": 55, "assessed": 50, "truncated": True}  # type: ignore[index]
    assert "change.truncated" in env["reasonCodes"]  # type: ignore[operator]
    assert env["verdict"] != "allow"
    assert "batches of at most 50" in env["nextActions"][0]  # type: ignore[index]


def test_time_budget_stops_and_marks_partial(bench: Bench) -> None:
    bench.promote(HELLO)
    # Readings: the start, the check before the first path, the wait for it (the budget's 600 s
    # are real seconds the first path may take), then the check before the second: past the end.
    ctx = replace(bench.ctx, clock=ScriptedClock(0.0, 0.0, 0.0, 700.0))
    bounds = AssessBounds(max_paths=10, budget_s=600.0, nar_timeout_s=None, workers=1)
    env = assess_change(ctx, [HELLO.store_path, "/nix/store/" + "2" * 32 + "-b"], bounds)
    assert env["evidence"]["addedClosure"] == {"count": 2, "assessed": 1, "truncated": True}  # type: ignore[index]
    assert env["reasonCodes"] == ["change.allPathsVerified", "change.timeBudgetExceeded"]
    assert env["verdict"] == "warn"


def test_hostile_path_string_is_sanitised_and_warns(bench: Bench) -> None:
    env = assess_change(bench.ctx, ["\x1b[31mevil\x07 path"], MCP_BOUNDS)
    p = env["evidence"]["paths"][0]  # type: ignore[index]
    assert p == {
        "path": "[31mevil path",
        "verdict": "warn",
        "tier": "unknown",
        "reasonCodes": ["NOT_A_STORE_PATH"],
    }


def test_refuted_path_denies_the_change(bench: Bench) -> None:
    bench.promote(HELLO)
    bench.recorder.tamper[f"/{HELLO.hash_part}.narinfo"] = lambda b: b.replace(b"NarSize: ", b"NarSize: 9")
    env = assess_change(bench.ctx, [HELLO.store_path], MCP_BOUNDS)
    assert env["verdict"] == "deny"
    assert env["reasonCodes"] == ["change.hasDeniedPaths"]
    assert "build the denied paths locally" in env["nextActions"][-1]  # type: ignore[index]


# -- bounds ------------------------------------------------------------------------------------------


def test_bounded_returns_control_when_the_budget_runs_out() -> None:
    import threading

    release = threading.Event()
    got, timed_out = bounded(lambda: release.wait(30), 0.01)
    release.set()
    assert (got, timed_out) == (None, True)
    assert bounded(lambda: 7, 5) == (7, False)


def test_single_call_budget_is_a_partial_tool_error(tmp_path: Path) -> None:
    """A cache that accepts the connection and never answers: the call returns within its budget."""
    from tests.e2e.conftest import loopback_socket

    sock, url = loopback_socket()  # listens, never accepts: the request waits for its deadline
    with sock, httpx2.Client() as client:
        vctx = VerifyContext(
            client=client,
            base_url=url,
            trusted_keys={},
            state=LogState(tmp_path / "state"),
            limits=HttpLimits(timeout_s=2.0, tries=1),
            sleep=lambda s: None,
        )
        ctx = ToolContext(verify=vctx, options=VerifyOptions(), call_budget_s=0.2)
        out = vega_risk(ctx, HELLO.hash_part)
        assert out["code"] == "TIME_BUDGET_EXCEEDED"
        assert out["partial"] is True
        assert out["verdict"] == "warn"


def test_worst() -> None:
    assert worst([]) == "allow"
    assert worst(["allow", "warn"]) == "warn"
    assert worst(["warn", "deny", "allow"]) == "deny"


# -- the MCP server in process (the SDK's own client over its in-memory transport) --------------------


def test_server_in_process(bench: Bench) -> None:
    import anyio

    from mcp import Client
    from vega.mcp.server import TOOL_DESCRIPTIONS, build_server

    bench.promote(HELLO)

    async def run() -> tuple[list[Any], list[Any]]:
        async with Client(build_server(bench.ctx)) as client:
            listed = await client.list_tools()
            results = [
                await client.call_tool("vega_risk", {"target": HELLO.store_path}),
                await client.call_tool("vega_assess_change", {"paths": [HELLO.store_path]}),
                await client.call_tool("vega_assess_change", {"paths": "nope"}),
                await client.call_tool("vega_verify", {"target": HELLO.hash_part}),
                await client.call_tool("vega_reproduce", {"target": HELLO.hash_part}),
            ]
            return list(listed.tools), results

    tools, results = anyio.run(run)
    assert [t.name for t in tools] == list(TOOL_DESCRIPTIONS)
    risk, assess, bad, verify, repro = results
    assert risk.structured_content["verdict"] == "allow"
    assert assess.structured_content["verdict"] == "allow"
    assert bad.is_error
    assert bad.structured_content["code"] == "INVALID_ARGUMENTS"
    assert verify.structured_content["verified"] is True
    assert repro.structured_content["verdict"] == "allow"
    assert json.loads(verify.content[0].text) == verify.structured_content


def test_other_failed_checks_never_allow(bench: Bench) -> None:
    """A check the rules do not name (say, a revocation list that could not conclude) is not ignored."""
    from vega.client.transparency import Check

    bench.promote(HELLO)
    vctx = bench.ctx.verify
    good = verify_target(vctx, HELLO.hash_part, VerifyOptions())
    assert risk_of(good)["verdict"] == "allow"
    unknown = Check(name="revocation", ok=False, detail="the revocation list is stale")
    checks = tuple(unknown if c.name == "revocation" else c for c in good.checks)
    risk = risk_of(replace(good, checks=checks))
    assert (risk["verdict"], risk["reasonCodes"]) == ("warn", ["REVOCATION_UNKNOWN"])
    other = (*good.checks, Check(name="witness", ok=False, detail="no cosignature"))
    risk = risk_of(replace(good, checks=other))
    assert (risk["verdict"], risk["reasonCodes"]) == ("deny", ["PROOF_CHECK_FAILED"])


def test_revoked_tenant_build_is_denied_by_the_signed_revocation_list(bench: Bench) -> None:
    """changes-0.19.md: a revoked path fails in every scope, tenant included (served by a stale mirror)."""
    bench.attest(HELLO, "alice/hello", "1")
    base = f"{PUBLIC_URL}/tenant/alice/hello"
    tenant_key = parse_public_key(bench.h.client.get("/tenant/alice/hello/key").json()["publicKey"])
    stale = bench.h.client.get(f"/tenant/alice/hello/{HELLO.hash_part}.narinfo").content
    shared = bench.h.keys.shared.public  # the user's nix.conf: the shared key and the tenant's
    keys = {tenant_key.name: tenant_key, shared.name: shared}
    vctx = replace(bench.vctx, base_url=base, trusted_keys=keys, now_ms=bench.h.clock)
    ctx = replace(bench.ctx, verify=vctx)
    before = vega_risk(ctx, HELLO.hash_part)
    assert (before["verdict"], before["reasonCodes"]) == ("warn", ["SCOPED_BINDING_NOT_GLOBAL"])
    assert bench.h.app.state.service.revoke(HELLO.hash_part, "compromised builder") is True
    bench.recorder.serve[f"/tenant/alice/hello/{HELLO.hash_part}.narinfo"] = (200, stale)
    after = vega_risk(ctx, HELLO.hash_part)
    assert (after["verdict"], after["tier"], after["reasonCodes"]) == ("deny", "scoped", ["REVOKED"])
    env = assess_change(ctx, [HELLO.store_path], MCP_BOUNDS)
    assert env["verdict"] == "deny"
