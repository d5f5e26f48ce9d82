"""One allow/warn/deny for a dependency change: ``vega_assess_change`` and ``vega assess``.

Every added path gets the verdict ``vega_risk`` would give it (:func:`vega.mcp.tools.risk_of`, so
the same verify core as ``vega verify``); a path that cannot be assessed (not a store path, not in
the cache, unreachable, no trusted key) is ``warn``, never ``deny`` and never ``allow``. The change
is the worst of its paths, and a change not assessed whole (path cap or time budget) is never
``allow`` and says so (``truncated``, ``change.truncated`` / ``change.timeBudgetExceeded``).

Unlike the original (serial, 25 paths, a 2,000-entry newest-first log scan per path), paths are
verified concurrently and each is a handful of requests with the log's lookup endpoint, so the
MCP default cap is 200 paths; the wall-clock budget is taken once at the start and a path not
finished by then is not assessed.

Spec: mcp.md §5 (bounds, algorithm, the ``vega.verdict.v1`` envelope); cli.md §13; issue 9.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from functools import partial

from vega.client.verify import VerifyReport
from vega.mcp.sanitize import untrusted_text
from vega.mcp.tools import ToolContext, in_thread, risk_of, verify_path, worst

__all__ = ["CLI_BOUNDS", "MCP_BOUNDS", "SCHEMA_VERSION", "AssessBounds", "assess_change"]

SCHEMA_VERSION = "vega.verdict.v1"
"""The envelope's schema version (mcp.md §5.3); bumped only on a breaking shape change."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AssessBounds:
    """How much one change assessment may do (mcp.md §5.1)."""

    max_paths: int
    """Unique paths verified at most; the rest make the change ``truncated``."""
    budget_s: float | None
    """Wall-clock budget of the whole assessment (None: none)."""
    nar_timeout_s: float | None
    """Deadline of each NAR download (None: the context's default)."""
    workers: int = 8
    """Paths verified concurrently."""


MCP_BOUNDS = AssessBounds(max_paths=200, budget_s=60.0, nar_timeout_s=20.0)
"""``vega_assess_change``'s bounds."""
CLI_BOUNDS = AssessBounds(max_paths=50, budget_s=None, nar_timeout_s=120.0)
"""``vega assess``'s bounds (cli.md §13)."""


def _path_result(
    ctx: ToolContext, path: str, nar_timeout_s: float | None, lists: dict[str, object]
) -> dict[str, object]:
    report: VerifyReport | None = verify_path(ctx, path, nar_timeout_s, lists)
    shown = untrusted_text(path, 512)
    if report is None:
        return {"path": shown, "verdict": "warn", "tier": "unknown", "reasonCodes": ["NOT_A_STORE_PATH"]}
    risk = risk_of(report)
    if "error" in risk:
        code = risk.get("code")
        return {
            "path": shown,
            "verdict": "warn",
            "tier": "unknown",
            "reasonCodes": [code if isinstance(code, str) else "NOT_ASSESSABLE"],
        }
    return {
        "path": shown,
        "verdict": risk["verdict"],
        "tier": risk["tier"],
        "reasonCodes": risk["reasonCodes"],
    }


def assess_change(
    ctx: ToolContext, paths: Sequence[object], bounds: AssessBounds, *, tool: str = "vega_assess_change"
) -> dict[str, object]:
    """The ``vega.verdict.v1`` envelope for the change that adds ``paths`` (mcp.md §5.2-§5.3).

    Raises:
        Exception: an unexpected failure inside a path's verification aborts the whole assessment.
    """
    unique = list(dict.fromkeys(p for p in paths if isinstance(p, str)))
    capped = unique[: max(bounds.max_paths, 0)]
    start = ctx.clock()
    deadline = None if bounds.budget_s is None else start + bounds.budget_s
    results: dict[int, dict[str, object]] = {}
    lists: dict[str, object] = {}  # the signed revocation list, fetched once for the whole change
    timed_out = False
    pending: dict[Future[dict[str, object]], int] = {}
    queue = list(enumerate(capped))
    queue.reverse()
    while queue or pending:
        if deadline is not None and ctx.clock() >= deadline:
            timed_out = True  # paths still running are abandoned (daemon threads), not assessed
            break
        while queue and len(pending) < max(1, bounds.workers):
            i, path = queue.pop()
            pending[
                in_thread(partial(_path_result, ctx, path, bounds.nar_timeout_s, lists), "vega-assess")
            ] = i
        remaining = None if deadline is None else max(deadline - ctx.clock(), 0.0)
        done, _ = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
        for fut in done:
            results[pending.pop(fut)] = fut.result()
    assessed = [results[i] for i in sorted(results)]
    return _envelope(tool, unique, assessed, bounds, timed_out)


def _envelope(
    tool: str,
    unique: list[str],
    assessed: list[dict[str, object]],
    bounds: AssessBounds,
    timed_out: bool,
) -> dict[str, object]:
    verdicts = {"allow": 0, "warn": 0, "deny": 0}
    tiers: dict[str, int] = {}
    for r in assessed:
        verdicts[str(r["verdict"])] += 1
        tiers[str(r["tier"])] = tiers.get(str(r["tier"]), 0) + 1
    truncated = len(assessed) < len(unique)
    verdict = worst([str(r["verdict"]) for r in assessed])
    codes: list[str] = []
    if assessed:
        if verdicts["deny"]:
            codes.append("change.hasDeniedPaths")
        elif verdicts["warn"]:
            codes.append("change.hasUnverifiedPaths")
        else:
            codes.append("change.allPathsVerified")
    elif not truncated:
        codes.append("change.noPaths")
    actions: list[str] = []
    if truncated:
        codes.append("change.timeBudgetExceeded" if timed_out else "change.truncated")
        verdict = worst([verdict, "warn"])
        actions.append(
            f"assess the change in batches of at most {bounds.max_paths} paths, "
            "passing only the paths it adds"
        )
    if verdicts["warn"]:
        actions.append("check a specific path with vega_verify or vega_risk to see why it is not verified")
    if verdicts["deny"]:
        actions.append("build the denied paths locally: a Vega proof refuted them")
    return {
        "schemaVersion": SCHEMA_VERSION,
        "tool": tool,
        "target": {"type": "closureDelta", "value": f"{len(assessed)} of {len(unique)} added path(s)"},
        "verdict": verdict,
        "reasonCodes": codes,
        "nextActions": actions,
        "evidence": {
            "kind": "changeAssessment",
            "addedClosure": {"count": len(unique), "assessed": len(assessed), "truncated": truncated},
            "summary": {"verdicts": verdicts, "tiers": tiers},
            "paths": assessed,
        },
    }
