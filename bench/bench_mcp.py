"""``vega_assess_change`` over 200 added paths against a log of 100,000 entries, within its time budget.

In process (Starlette TestClient over the server's real SQLite transparency log, the cache fixture
of tests/client/conftest.py, as bench_verify does): 200 promoted builds spread at random through a
100,000-entry log; the change assessment the MCP tool runs (:func:`vega.mcp.assess.assess_change`
with the tool's bounds: 200 paths, 60 s, 20 s per NAR), on a fresh machine, again once the
checkpoint is remembered, and after the log grew (a consistency proof is due). Printed: wall time
against the 60 s budget, HTTP requests in all and per path, and the verdicts. The peer is the
original's algorithm (25 paths per call, a newest-first scan of at most 2,000 log entries per
path), whose requests are computed from where each promotion sits in the log, as bench_verify
does; it denies every build logged more than 2,000 entries ago.

Exit 1 when the assessment is over its budget or any path is not allowed.

Usage: .venv/bin/python -m bench.bench_mcp [--entries N] [--paths N]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

from tests.client.conftest import CacheServer

from vega.client.verify import VerifyOptions
from vega.mcp.assess import MCP_BOUNDS, assess_change
from vega.mcp.tools import ToolContext

ORIGINAL_PATH_CAP = 25
ORIGINAL_SCAN_CAP = 2000


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--paths", type=int, default=200)
    a = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        server = CacheServer(tmp=Path(tmp))
        with server.test_client:
            t0 = time.perf_counter()
            builds = [server.add(f"pkg{n}", f"pkg {n} ".encode() * 40) for n in range(a.paths)]
            rng = random.Random(9)
            filler = a.entries - len(builds)
            slots = sorted(rng.sample(range(filler + 1), len(builds)))
            order = builds[:]
            rng.shuffle(order)
            promoted_at: dict[str, int] = {}
            done = 0
            for build, slot in zip(order, slots, strict=True):
                if slot > done:
                    server.filler(slot - done, start=done)
                    done = slot
                promoted_at[build.hash] = server.promote(build)
            if filler > done:
                server.filler(filler - done, start=done)
            size = server.log.latest().size
            print(
                f"log: {size} entries, {len(builds)} added paths (built in {time.perf_counter() - t0:.1f}s)"
            )

            ctx = ToolContext(verify=server.context(), options=VerifyOptions(max_scan=ORIGINAL_SCAN_CAP))
            paths = [b.path.absolute for b in builds]
            ok = True
            for label in ("fresh machine", "checkpoint remembered", "after the log grew by 1,000"):
                if label.startswith("after"):
                    server.filler(1000, start=filler + 10)
                server.recorder.reset()
                t1 = time.perf_counter()
                env = assess_change(ctx, paths, MCP_BOUNDS)
                took = time.perf_counter() - t1
                requests = len(server.recorder.paths)
                consistency = server.recorder.paths.count("/log/proof/consistency")
                closure = env["evidence"]["addedClosure"]  # type: ignore[index]
                verdicts = env["evidence"]["summary"]["verdicts"]  # type: ignore[index]
                budget = MCP_BOUNDS.budget_s or math.inf
                within = took <= budget and not closure["truncated"]
                ok = ok and within and verdicts["allow"] == len(builds)
                print(
                    f"vega_assess_change, {label}: {took:.2f}s of a {budget:.0f}s budget "
                    f"({'within' if within else 'OVER'}); {requests} requests = "
                    f"{requests / len(builds):.2f} per path ({consistency} consistency proofs); "
                    f"verdict {env['verdict']} "
                    f"({verdicts['allow']} allow, {verdicts['warn']} warn, {verdicts['deny']} deny; "
                    f"assessed {closure['assessed']} of {closure['count']})"
                )

            calls = math.ceil(len(builds) / ORIGINAL_PATH_CAP)
            original = sum(_original_requests(size, promoted_at[b.hash]) for b in builds)
            denied = sum(size - promoted_at[b.hash] > ORIGINAL_SCAN_CAP for b in builds)
            print(
                f"original: {calls} calls of at most {ORIGINAL_PATH_CAP} paths; {original} requests = "
                f"{original / len(builds):.0f} per path; denies {denied} of {len(builds)} paths "
                f"(promoted more than {ORIGINAL_SCAN_CAP} entries ago) with NO_TRANSPARENCY_RECORD"
            )
    return 0 if ok else 1


def _original_requests(size: int, index: int) -> int:
    """mcp.md §4.2 with cli.md §10.4: narinfo, sth, entries newest first (at most 2,000), inclusion, NAR."""
    scan = size - index
    if scan > ORIGINAL_SCAN_CAP:
        return 1 + 1 + ORIGINAL_SCAN_CAP + 1  # narinfo, sth, the whole capped scan, NAR; not found
    return 1 + 1 + scan + 1 + 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
