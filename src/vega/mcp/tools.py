"""The four read-only tools of ``vega mcp``, as plain functions over the shared verify core.

Each tool returns a JSON-ready dict (the MCP layer, :mod:`vega.mcp.server`, only frames it). A
store path is checked by the SAME code as ``vega verify`` (:func:`vega.client.verify.verify_target`:
store-path/hash match, signature under a pinned key, checkpoint signed and consistent with the one
this machine remembered, promotion proven included, no revocation, NAR re-hash), with the MCP's
fixed context: only the pinned URL (no tenant discovery), never a key served by the cache.

Verdicts are computed from those checked facts only (:func:`risk_of`): deny only on a refutation
(wrong store path, bad signature, NAR mismatch, untrusted tree head, a fork of the remembered log,
a missing or unprovable promotion, a revocation); anything not checked, unreachable or not
assessable is ``warn``, never ``allow`` and never ``deny``. A tool error is ``{"error","code"}``
plus ``"verdict": "warn"`` so an agent that reads only ``verdict`` still cannot read it as allow.

Every string from the cache, the control plane or the caller goes through
:func:`vega.mcp.sanitize.untrusted_text` with the lengths of mcp.md §6.

Spec: mcp.md §1, §4, §6; cli.md §10.4; issue 9.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import TypeVar

from vega.client.http import Http
from vega.client.verify import VerifyContext, VerifyOptions, VerifyReport, parse_target, verify_target
from vega.errors import ConfigError, VegaError
from vega.mcp.sanitize import untrusted, untrusted_text

__all__ = [
    "DEFAULT_CALL_BUDGET_S",
    "REPRODUCE_STATUSES",
    "ToolContext",
    "bounded",
    "in_thread",
    "mcp_options",
    "risk_of",
    "tool_error",
    "vega_reproduce",
    "vega_risk",
    "vega_verify",
    "verify_output",
    "verify_path",
    "worst",
]

log = logging.getLogger(__name__)

DEFAULT_CALL_BUDGET_S = 180.0
"""Wall-clock budget of one ``vega_verify``/``vega_risk``/``vega_reproduce`` call (> the NAR's 120 s)."""

REPRODUCE_STATUSES = ("reproducible", "diverged", "uncorroborated", "mirrored", "unknown")
"""The reproduction statuses a cache may report (protocol.md §6.1); anything else is ``unknown``."""

_RANK = {"allow": 0, "warn": 1, "deny": 2}
_REFUTE_ACTIONS = ["build_locally", "pin_previous_verified_version"]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolContext:
    """The context fixed at start-up; no caller can change it (mcp.md §1)."""

    verify: VerifyContext
    """The edges: HTTP client, the pinned cache URL, the trusted keys, the remembered checkpoints."""
    options: VerifyOptions
    """``--public-key``, ``--max-scan``; no tenant discovery, no cache-published key."""
    call_budget_s: float = DEFAULT_CALL_BUDGET_S
    """Wall-clock budget of one single-path call."""
    nar_timeout_s: float | None = 120.0
    """Deadline of one NAR download (mcp.md §1: 120 s; None: the HTTP limits' own)."""
    clock: Callable[[], float] = field(default=time.monotonic)
    """A monotonic clock (seconds), injected for the budget tests."""

    @property
    def base_url(self) -> str:
        """The pinned cache URL."""
        return self.verify.base_url


def mcp_options(options: VerifyOptions) -> VerifyOptions:
    """``options`` as the MCP and ``vega assess`` must use them: only the pinned URL and keys (mcp.md §1)."""
    return replace(options, tenant_discovery=False, trust_fetched_key=False, check_nar=True)


def worst(verdicts: list[str]) -> str:
    """The worst of ``verdicts`` (deny > warn > allow); empty ⇒ allow."""
    return max(verdicts, key=lambda v: _RANK[v], default="allow")


def tool_error(message: str, code: str | None = None, **extra: object) -> dict[str, object]:
    """A tool error (mcp.md §4.2) with ``verdict: warn``: no trust statement could be made."""
    out: dict[str, object] = {"error": untrusted_text(message, 200)}
    if code is not None:
        out["code"] = code
    out["verdict"] = "warn"
    out.update(extra)
    return out


def in_thread(work: Callable[[], _T], name: str = "vega-mcp-work") -> Future[_T]:
    """Run ``work`` on a new daemon thread; its outcome arrives in the returned future.

    NOTE: a daemon thread, not an executor's: work abandoned when a budget runs out must not hold
    the process at exit (executor threads are joined then); it ends within its HTTP deadlines.
    """
    future: Future[_T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(work())
        except BaseException as e:
            future.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def bounded(work: Callable[[], _T], seconds: float) -> tuple[_T | None, bool]:
    """Run ``work`` with a wall-clock budget: ``(result, False)``, or ``(None, True)`` when it ran out.

    The work runs on its own thread (:func:`in_thread`); when the budget runs out the caller gets
    control back and the thread is left to finish within the HTTP deadlines, its result discarded.
    """
    future = in_thread(work, "vega-mcp-call")
    try:
        return future.result(timeout=max(seconds, 0.0)), False
    except FutureTimeout:
        return None, True


def _budget_error(ctx: ToolContext) -> dict[str, object]:
    return tool_error(
        f"the call ran out of its time budget ({ctx.call_budget_s:g} s); nothing was concluded",
        "TIME_BUDGET_EXCEEDED",
        partial=True,
    )


# -- the shared verification run (mcp.md §4.2) ------------------------------------------------------


def _not_a_store_path(target: object) -> dict[str, object]:
    return tool_error(f"'{untrusted(target, 80)}' is not a store path or hash", "NOT_A_STORE_PATH")


def verify_path(
    ctx: ToolContext,
    target: str,
    nar_timeout_s: float | None = None,
    revocation_lists: dict[str, object] | None = None,
) -> VerifyReport | None:
    """mcp.md §4.2 steps 1-6 through the verify core; None when ``target`` is no store path or hash.

    Args:
        ctx: the fixed context.
        target: the caller's string.
        nar_timeout_s: the NAR deadline (None: the context's).
        revocation_lists: signed revocation lists fetched so far in this call (shared by the paths
            of one change); None: a fresh one, so a long-running server never answers from a list
            it fetched for an earlier call.
    """
    try:
        parse_target(target)
    except ConfigError:
        return None
    timeout = nar_timeout_s if nar_timeout_s is not None else ctx.nar_timeout_s
    limits = ctx.verify.limits if timeout is None else replace(ctx.verify.limits, stream_timeout_s=timeout)
    vctx = replace(
        ctx.verify, limits=limits, revocation_lists={} if revocation_lists is None else revocation_lists
    )
    return verify_target(vctx, target, mcp_options(ctx.options))


def _refuted(report: VerifyReport) -> tuple[str, str] | None:
    """The refutation found before any failure, as ``(code, tier)``, or None."""
    tier = report.scope or "unknown"
    path = next((c for c in report.checks if c.name == "store-path"), None)
    if path is not None and not path.ok and report.store_path is not None:
        return "STORE_PATH_MISMATCH", tier
    if report.key_name is not None and not report.signature_ok:
        return "SIGNATURE_INVALID", tier
    if report.nar is not None and report.nar.checked and not report.nar.ok:
        return "NAR_HASH_MISMATCH", tier
    return None


def verify_output(report: VerifyReport) -> dict[str, object]:
    """The ``vega_verify`` output (mcp.md §4.3) of a report without an error, plus the new checks."""
    t = report.transparency
    nar = report.nar
    checked = nar is not None and nar.checked
    nar_verified = checked and nar is not None and nar.ok
    path_ok = any(c.name == "store-path" and c.ok for c in report.checks)
    transparency: dict[str, object] = {
        "found": bool(t and t.found),
        "index": t.index if t is not None and t.found else None,
        "sthVerified": bool(t and t.sth_verified),
        "leafHashOk": bool(t and t.leaf_hash_ok),
        "inclusionOk": bool(t and t.inclusion_ok),
        "bindingOk": bool(t and t.binding_ok),
        "scanned": t.scanned if t is not None else 0,
    }
    note = report.to_json()["transparency"]
    if isinstance(note, dict) and isinstance(note.get("note"), str):
        transparency["note"] = untrusted_text(note["note"], 256)
    transparency.update(
        consistencyOk=bool(t and t.consistency_ok),
        fork=bool(t and t.fork),
        revoked=report.revoked or bool(t and t.revoked and not _revocation_undecided(report)),
        revocationUnknown=bool(t and t.revoked and _revocation_undecided(report)),
        legacy=bool(t and t.legacy),
    )
    return {
        "storePath": untrusted_text(report.store_path or "", 512),
        "storePathMatches": path_ok,
        "narHash": untrusted_text(report.nar_hash or "", 128),
        "signature": {
            "ok": report.signature_ok,
            "keyName": untrusted_text(report.key_name or "", 128),
            "scope": report.scope,
        },
        "transparency": transparency,
        "narHashChecked": checked,
        "narHashVerified": nar_verified,
        "verified": report.fully_verified and nar_verified,
    }


def _report_error(report: VerifyReport) -> dict[str, object]:
    return tool_error(report.error or "verification failed", report.error_code or "NOT_ASSESSABLE")


def risk_of(report: VerifyReport) -> dict[str, object]:
    """``vega_risk``'s verdict of one report (mcp.md §4.4, with the new refutations).

    Rules, first match wins: a refutation denies (store path, signature, NAR); a report that
    stopped early (unreachable, not in the cache, no key, log unreadable) is a tool error with
    ``verdict: warn``; then upstream allow, scoped warn, and for the shared tier every proof.
    """
    refuted = _refuted(report)
    if refuted is not None:
        code, tier = refuted
        return _risk(report, "deny", tier, [code], list(_REFUTE_ACTIONS))
    if report.error is not None:
        return _report_error(report)
    if report.revoked:  # the signed revocation list names it: every scope (changes-0.19.md)
        return _risk(report, "deny", report.scope or "unknown", ["REVOKED"], list(_REFUTE_ACTIONS))
    unchecked = report.nar is None or not report.nar.checked
    extra = ["NAR_NOT_LOCALLY_CHECKED"] if unchecked else []
    if report.scope == "upstream":
        return _risk(
            report, "allow", "upstream", ["MIRRORED_UPSTREAM", "NOT_A_VEGA_TRUST_STATEMENT", *extra], []
        )
    if report.scope == "scoped":
        return _risk(
            report,
            "warn",
            "scoped",
            ["SCOPED_BINDING_NOT_GLOBAL", *extra],
            ["request_shared_promotion", "build_locally"],
        )
    t = report.transparency
    if t is None or not t.sth_verified:
        return _risk(report, "deny", "shared", ["STH_SIGNATURE_INVALID"], ["build_locally"])
    if t.fork or not t.consistency_ok:
        return _risk(
            report, "deny", "shared", ["LOG_FORK_DETECTED"], ["build_locally", "report_log_fork_to_operator"]
        )
    undecided = t.revoked and _revocation_undecided(report)
    if t.revoked and not undecided:
        return _risk(report, "deny", "shared", ["REVOKED"], list(_REFUTE_ACTIONS))
    if not t.found:
        return _risk(
            report, "deny", "shared", ["NO_TRANSPARENCY_RECORD"], ["request_reproduction", "build_locally"]
        )
    if not (t.leaf_hash_ok and t.inclusion_ok and t.binding_ok):
        return _risk(
            report, "deny", "shared", ["INCLUSION_PROOF_FAILED"], ["request_reproduction", "build_locally"]
        )
    if undecided:
        return _risk(report, "warn", "shared", ["REVOCATION_UNKNOWN"], ["build_locally"])
    if not report.fully_verified:
        # Another check of the core did not pass. A revocation check that could not conclude
        # (nothing revoked was found, but it cannot be ruled out) is no refutation: warn.
        failed = [c.name for c in report.checks if c.name != "nar" and not c.ok and not c.skipped]
        if failed == ["revocation"]:
            return _risk(report, "warn", "shared", ["REVOCATION_UNKNOWN"], ["build_locally"])
        return _risk(report, "deny", "shared", ["PROOF_CHECK_FAILED"], ["build_locally"])
    if unchecked:
        return _risk(
            report,
            "warn",
            "shared",
            ["SHARED_REPRODUCED", "TRANSPARENCY_LOG_INCLUDED", "NAR_NOT_LOCALLY_CHECKED"],
            ["substitute the path through nix, which re-checks the NAR hash on download"],
        )
    return _risk(report, "allow", "shared", ["SHARED_REPRODUCED", "TRANSPARENCY_LOG_INCLUDED"], [])


def _revocation_undecided(report: VerifyReport) -> bool:
    """No revocation was found, but none can be ruled out (a truncated lookup, a stale list...)."""
    check = next((c for c in report.checks if c.name == "revocation"), None)
    return (
        check is not None
        and not check.ok
        and ("cannot be ruled out" in check.detail or check.detail.startswith("unknown"))
    )


def _risk(
    report: VerifyReport, verdict: str, tier: str, codes: list[str], actions: list[str]
) -> dict[str, object]:
    return {
        "verdict": verdict,
        "tier": tier,
        "reasonCodes": codes,
        "proofs": verify_output(report),
        "nextActions": actions,
    }


# -- the tools ----------------------------------------------------------------------------------------


def _bad_target() -> dict[str, object]:
    return tool_error("missing required string argument 'target'", "INVALID_ARGUMENTS")


def vega_verify(ctx: ToolContext, target: object) -> dict[str, object]:
    """``vega_verify``: the proof-backed facts about one store path (mcp.md §4.3)."""
    if not isinstance(target, str):
        return _bad_target()
    report, timed_out = bounded(lambda: verify_path(ctx, target), ctx.call_budget_s)
    if timed_out:
        return _budget_error(ctx)
    if report is None:
        return _not_a_store_path(target)
    refuted = _refuted(report)
    if report.error is not None and refuted is None:
        return _report_error(report)
    return verify_output(report)


def vega_risk(ctx: ToolContext, target: object) -> dict[str, object]:
    """``vega_risk``: allow, warn or deny with proof-backed reason codes (mcp.md §4.4)."""
    if not isinstance(target, str):
        return _bad_target()
    report, timed_out = bounded(lambda: verify_path(ctx, target), ctx.call_budget_s)
    if timed_out:
        return _budget_error(ctx)
    if report is None:
        return _not_a_store_path(target)
    return risk_of(report)


def _status(ctx: ToolContext, hash_part: str) -> dict[str, object]:
    """``GET /api/status/<hash>`` parsed fail-closed (mcp.md §4.5 steps 2-3); no server string kept."""
    http = Http(ctx.verify.client, ctx.verify.limits, sleep=ctx.verify.sleep)
    try:
        resp = http.get(f"{ctx.base_url}/api/status/{hash_part}")
    except VegaError:
        return tool_error(f"status lookup failed for {hash_part}", "CACHE_UNREACHABLE")
    if not resp.ok:
        return tool_error(f"no status for {hash_part} (HTTP {resp.status})", "NO_STATUS")
    try:
        obj = resp.json()
    except VegaError:
        obj = None
    if not isinstance(obj, dict):
        return tool_error(f"malformed status response for {hash_part}", "MALFORMED_STATUS")
    verdict = obj.get("verdict")
    status = verdict if isinstance(verdict, str) and verdict in REPRODUCE_STATUSES else "unknown"
    agree = obj.get("agree")
    count = (
        math.floor(agree)
        if isinstance(agree, int | float)
        and not isinstance(agree, bool)
        and math.isfinite(agree)
        and agree >= 0
        else 0
    )
    return {
        "status": status,
        "agreeCount": count,
        "diverged": status == "diverged",
        "inSharedCache": obj.get("inSharedCache") is True,
    }


def vega_reproduce(ctx: ToolContext, target: object) -> dict[str, object]:
    """``vega_reproduce``: the cache's reproduction status, capped by the proof (mcp.md §4.5, extended).

    The status is the cache's self-report (``evidence: origin-asserted``). Unlike the original, the
    verdict is also capped by :func:`risk_of` of the same path: a cache cannot report
    ``reproducible`` for a build its own proofs refute (deny), nor for one it cannot prove (warn).
    """
    if not isinstance(target, str):
        return _bad_target()
    try:
        hash_part = parse_target(target)
    except ConfigError:
        return _not_a_store_path(target)

    def work() -> tuple[dict[str, object], VerifyReport | None]:
        return _status(ctx, hash_part), verify_path(ctx, target)

    got, timed_out = bounded(work, ctx.call_budget_s)
    if got is None or timed_out:
        return _budget_error(ctx)
    status, report = got
    if "error" in status:
        return status
    reproduction = status["status"]
    own = {"reproducible": "allow", "diverged": "deny"}.get(str(reproduction), "warn")
    proof = risk_of(report) if report is not None else _not_a_store_path(target)
    listed = proof.get("reasonCodes")
    proof_codes = (
        [str(c) for c in listed] if isinstance(listed, list) else [str(proof.get("code") or "NOT_ASSESSABLE")]
    )
    proof_verdict = str(proof["verdict"])
    verdict = worst([own, proof_verdict])
    codes = [f"reproduce.{reproduction}"]
    if proof_verdict != "allow":
        codes.extend(proof_codes)
    actions: list[str] = []
    if reproduction == "diverged":
        actions.append("this build is not reproducible: a Vega reproduction disagreed")
    if verdict != "allow":
        actions.append("reproduce it locally: nix build --rebuild <the flake output> and compare the outputs")
    return {
        "target": hash_part,
        "verdict": verdict,
        "evidence": "origin-asserted",
        "reproduction": status,
        "proof": {
            "verdict": proof_verdict,
            "tier": proof.get("tier", "unknown"),
            "reasonCodes": proof_codes,
        },
        "reasonCodes": codes,
        "nextActions": actions,
    }
