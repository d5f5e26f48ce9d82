"""``vega verify --recursive`` of a 100-path closure against a log of 100,000 entries.

Measures, in process (Starlette TestClient, SQLite log, no network latency):

* the new algorithm (``/log/lookup`` + ``/log/proof/consistency``): HTTP requests and wall time, on a
  fresh machine and again after the log grew (one consistency proof per path's lookup checkpoint);
* the original algorithm (``/log/sth`` + newest-first ``/log/entry/<i>`` scan + inclusion), run for
  real on a sample of paths to fix its per-request cost, and its request count for the whole
  closure computed from where each promotion sits in the log (exactly what its scan would read).

With a real network each request costs a round trip, so the request ratio is the figure that
matters; the time ratio is printed too, the original's extrapolated from the sampled runs.

Usage: .venv/bin/python -m bench.bench_verify [--entries N] [--paths N]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from tests.client.conftest import Build, CacheServer

from vega.client.verify import VerifyOptions, verify_many


def promote_among_filler(
    server: CacheServer, builds: list[Build], entries: int, *, seed: int
) -> dict[str, int]:
    """Promote ``builds`` at random places of a log of ``entries`` (the rest filler); their indexes."""
    rng = random.Random(seed)
    filler = entries - len(builds)
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
    return promoted_at


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--paths", type=int, default=100)
    ap.add_argument("--sample", type=int, default=3)
    a = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        server = CacheServer(tmp=Path(tmp))
        with server.test_client:
            t0 = time.perf_counter()
            deps = [server.add(f"dep{n}", f"dep {n}".encode() * 20) for n in range(a.paths - 1)]
            top = server.add("top", b"top" * 20, references=tuple(deps))
            closure = [top, *deps]
            promoted_at = promote_among_filler(server, closure, a.entries, seed=7)
            filler = a.entries - len(closure)  # filler entries so far (their seeds are 0..filler-1)
            size = server.log.latest().size
            print(
                f"log: {size} entries, {len(closure)}-path closure (built in {time.perf_counter() - t0:.1f}s)"
            )

            # -- new algorithm, fresh machine
            ctx = server.context()
            server.recorder.reset()
            t1 = time.perf_counter()
            reports = verify_many(ctx, [top.path.absolute], recursive=True)
            new_s = time.perf_counter() - t1
            assert len(reports) == len(closure), len(reports)
            assert all(r.exit_ok for r in reports), [r.checks for r in reports if not r.exit_ok][:1]
            new_requests = len(server.recorder.paths)
            per_path = max(r.requests for r in reports)
            log_requests = sum(p.startswith("/log/") for p in server.recorder.paths)
            print(
                f"new: {new_requests} requests ({log_requests} to the log; at most {per_path} per path), "
                f"{new_s:.2f}s"
            )

            # -- new algorithm after the log grew: every path needs (at most) one consistency proof
            server.filler(1000, start=filler + 10)
            server.recorder.reset()
            t2 = time.perf_counter()
            again = verify_many(ctx, [top.path.absolute], recursive=True)
            grown_s = time.perf_counter() - t2
            assert all(r.exit_ok for r in again)
            grown = len(server.recorder.paths)
            consistency = server.recorder.paths.count("/log/proof/consistency")
            print(f"new, after growth: {grown} requests ({consistency} consistency proofs), {grown_s:.2f}s")

            # -- the original algorithm, for real, on the paths promoted most recently
            size = server.log.latest().size
            recent = sorted(closure, key=lambda b: -promoted_at[b.hash])[: a.sample]
            server.legacy = True
            legacy_ctx = server.context()
            legacy_ctx.state.directory.mkdir(parents=True, exist_ok=True)
            server.recorder.reset()
            t3 = time.perf_counter()
            sampled = verify_many(legacy_ctx, [b.hash for b in recent], VerifyOptions(max_scan=size))
            sample_s = time.perf_counter() - t3
            sample_requests = len(server.recorder.paths)
            assert all(r.exit_ok for r in sampled)
            predicted_sample = sum(_original_requests(size, promoted_at[b.hash]) for b in recent)
            per_request_s = sample_s / sample_requests
            server.legacy = False

            full = sum(_original_requests(size, promoted_at[b.hash]) for b in closure)
            default_scan = sum(_original_requests(size, promoted_at[b.hash], 10_000) for b in closure)
            not_found = sum(size - promoted_at[b.hash] > 10_000 for b in closure)
            print(
                f"original (sampled {len(recent)} paths for real): {sample_requests} requests "
                f"(the original would send {predicted_sample}; the rest are the fallback's "
                "/log/lookup probes, one per path in flight), "
                f"{per_request_s * 1e3:.2f} ms/request"
            )
            print(
                f"original, whole closure: {full} requests with a full scan; {default_scan} with the "
                f"default --max-scan 10000, which leaves {not_found} of {len(closure)} paths unverifiable"
            )
            est = full * per_request_s
            print(
                f"ratio: {full / new_requests:.0f}x fewer requests than the original "
                f"({new_requests} vs {full}); time {new_s:.2f}s vs ~{est:.0f}s estimated "
                f"= {new_s / est:.4f}x"
            )
    return 0


def _original_requests(size: int, index: int, max_scan: int | None = None) -> int:
    """cli.md §10.4: narinfo, sth, entries newest first down to ``index``, inclusion, NAR."""
    scan = size - index
    if max_scan is not None and scan > max_scan:
        return 1 + 1 + max_scan + 1  # narinfo, sth, the whole scan, NAR; not found
    return 1 + 1 + scan + 1 + 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
