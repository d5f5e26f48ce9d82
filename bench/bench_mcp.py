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

Then the same over real processes and sockets: a ``vega-server serve --dev`` subprocess whose log
holds the 200 promotions (attested over HTTP with dev OIDC tokens, as tests/mcp does) followed by
~100,000 unrelated entries (appended while it is stopped, through the server's own log code), and
``vega mcp`` as a subprocess driven by the MCP SDK's stdio client, one ``vega_assess_change`` call
of 200 paths; requests are counted by a loopback proxy in front of the server.

Exit 1 when an assessment is over its budget or any path is not allowed.

Usage: .venv/bin/python -m bench.bench_mcp [--entries N] [--paths N] [--in-process-only]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

from tests.client.conftest import CacheServer

from bench.bench_verify import promote_among_filler
from vega.client.verify import VerifyOptions
from vega.mcp.assess import MCP_BOUNDS, assess_change
from vega.mcp.tools import ToolContext

ORIGINAL_PATH_CAP = 25
ORIGINAL_SCAN_CAP = 2000


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--paths", type=int, default=200)
    ap.add_argument("--in-process-only", action="store_true")
    a = ap.parse_args(argv)
    ok = _in_process(a.entries, a.paths)
    if not a.in_process_only:
        ok = _over_sockets(a.entries, a.paths) and ok
    return 0 if ok else 1


def _in_process(entries: int, count: int) -> bool:
    print("-- in process (the cache fixture over the server's SQLite log)")

    with tempfile.TemporaryDirectory() as tmp:
        server = CacheServer(tmp=Path(tmp))
        with server.test_client:
            t0 = time.perf_counter()
            builds = [server.add(f"pkg{n}", f"pkg {n} ".encode() * 40) for n in range(count)]
            promoted_at = promote_among_filler(server, builds, entries, seed=9)
            filler = entries - len(builds)  # filler entries so far (their seeds are 0..filler-1)
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
    return ok


def _over_sockets(entries: int, count: int) -> bool:
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from tests.e2e.conftest import loopback_socket, serving
    from tests.mcp.conftest import ROOT, Proxy, VegaServer
    from tests.server.cachekit import Output

    from vega.server.__main__ import revocation_service
    from vega.server.db import open_database
    from vega.server.log.log import LogEntry, TransparencyLog
    from vega.server.settings import ServerSettings

    print("-- over sockets (vega-server serve --dev, vega mcp, the SDK's stdio client)")
    with tempfile.TemporaryDirectory() as tmp:
        data, home = Path(tmp) / "data", Path(tmp) / "home"
        home.mkdir()
        t0 = time.perf_counter()
        server = VegaServer(data, Path(tmp) / "server.log")
        outs = [Output(f"real{n}", f"real {n} ".encode() * 40) for n in range(count)]
        try:
            for out in outs:
                server.promote(out)
        finally:
            server.stop()
        settings = ServerSettings(data_dir=data, log_origin=server.env["VEGA_SERVER_LOG_ORIGIN"])
        db = open_database(settings.resolved_database_url)
        try:
            log = revocation_service(settings, db).log
            assert isinstance(log, TransparencyLog)
            have = log.latest().size
            for start in range(0, max(entries - have, 0), 2000):
                log.append(
                    [
                        LogEntry(
                            data=f'{{"v":1,"event":"other","n":{n}}}'.encode(),
                            dedupe_key=f"bench-filler-{n}",
                            store_hashes=(),
                        )
                        for n in range(start, min(start + 2000, entries - have))
                    ]
                )
            size = log.latest().size
        finally:
            db.close()
        print(f"log: {size} entries, {count} promoted paths first (built in {time.perf_counter() - t0:.1f}s)")
        server = VegaServer(data, Path(tmp) / "server2.log")
        sock, url = loopback_socket(64)
        proxy = Proxy(upstream=server.url, url=url)
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "vega", "mcp", "--url", url, "--public-key", server.shared_key],
            env={"HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "PATH": "/usr/bin:/bin"},
            cwd=str(ROOT),
        )
        paths = [o.store_path for o in outs]

        async def call() -> tuple[float, dict[str, object]]:
            with (home / "mcp.log").open("w") as errlog:
                async with stdio_client(params, errlog=errlog) as (r, w), ClientSession(r, w) as s:
                    await s.initialize()
                    proxy.seen.clear()
                    t1 = time.perf_counter()
                    res = await s.call_tool("vega_assess_change", {"paths": paths})
                    return time.perf_counter() - t1, dict(res.structured_content or {})

        try:
            with proxy.client, serving(proxy, sock):
                took, env = anyio.run(call)
        finally:
            server.stop()
        requests = len(proxy.seen)
        closure = env["evidence"]["addedClosure"]  # type: ignore[index]
        verdicts = env["evidence"]["summary"]["verdicts"]  # type: ignore[index]
        budget = MCP_BOUNDS.budget_s or math.inf
        within = took <= budget and not closure["truncated"]
        print(
            f"vega_assess_change over MCP stdio: {took:.2f}s of a {budget:.0f}s budget "
            f"({'within' if within else 'OVER'}); {requests} requests = {requests / count:.2f} per path; "
            f"verdict {env['verdict']} ({verdicts['allow']} allow, {verdicts['warn']} warn, "
            f"{verdicts['deny']} deny; assessed {closure['assessed']} of {closure['count']})"
        )
        print(
            f"original: every one of the {count} paths was promoted more than {ORIGINAL_SCAN_CAP} "
            f"entries ago, so its capped scan ({ORIGINAL_SCAN_CAP + 3} requests a path) would deny all "
            f"{count}"
        )
        return within and verdicts["allow"] == count


def _original_requests(size: int, index: int) -> int:
    """mcp.md §4.2 with cli.md §10.4: narinfo, sth, entries newest first (at most 2,000), inclusion, NAR."""
    scan = size - index
    if scan > ORIGINAL_SCAN_CAP:
        return 1 + 1 + ORIGINAL_SCAN_CAP + 1  # narinfo, sth, the whole capped scan, NAR; not found
    return 1 + 1 + scan + 1 + 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
