"""Transparency log at scale: append rate, proof times at 1,000 vs 1,000,000 leaves, tiles, requests.

Usage: .venv/bin/python -m bench.bench_log [--leaves N] [--write]

There is no external log to compare appends with, so each figure is printed
against the issue's target (issue 3): appends >= 5,000 leaves/s into the default
SQLite store; inclusion and consistency proofs at 1,000,000 leaves within 2x of
the time at 1,000 leaves; tiles read as stored (compared with recomputing the
same hashes from the leaves); HTTP requests to verify one build through
``/log/lookup`` (1) vs the original linear scan of ``/log/entry`` (one request
per entry newer than the build's, up to 10,000). ``--write`` replaces the
"Transparency log" section of bench/README.md with the figures.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
from starlette.applications import Starlette
from starlette.testclient import TestClient

from vega.core import merkle, nixbase32, tiles
from vega.core.note import SignerKey
from vega.core.signing import generate_secret_key
from vega.server.db import open_database
from vega.server.log.log import LogEntry, Sequencer, TransparencyLog
from vega.server.log.routes import log_routes

ORIGIN = "vega.bench/log"
NOTE_KEY = SignerKey(ORIGIN, b"\x05" * 32)
STH_KEY = generate_secret_key("vega-cache-1", b"\x06" * 32)
BATCH = 1000
SECTION = "## Transparency log"
README = Path(__file__).with_name("README.md")
BEGIN = "<!-- bench_log figures -->"
END = "<!-- /bench_log figures -->"


def store_hash(n: int) -> str:
    return nixbase32.encode(n.to_bytes(20, "big"))


def promotion(n: int) -> LogEntry:
    sh = store_hash(n)
    data = (
        f'{{"v":1,"event":"promotion","storePath":"/nix/store/{sh}-hello-2.12.{n}",'
        f'"fingerprint":"1;/nix/store/{sh}-hello-2.12.{n};sha256:{"0" * 52};{n};",'
        f'"narHash":"sha256:{"1" * 52}","agreedSince":1767225600000,"at":{1767225600000 + n}}}'
    ).encode()
    return LogEntry(data=data, dedupe_key=f"promotion:{sh}", store_hashes=(sh,))


def open_log(path: Path) -> TransparencyLog:
    clock = iter(range(1_767_225_600_000, 1 << 62))
    return TransparencyLog(open_database(str(path)), ORIGIN, NOTE_KEY, STH_KEY, lambda: next(clock))


def fill(log: TransparencyLog, n: int, start: int = 0) -> float:
    """Append ``n`` leaves in batches of BATCH; return leaves per second."""
    t0 = time.perf_counter()
    for k in range(start, start + n, BATCH):
        log.append([promotion(j) for j in range(k, min(k + BATCH, start + n))])
    return n / (time.perf_counter() - t0)


def sequenced(log: TransparencyLog, threads: int, per_thread: int, start: int) -> float:
    """Single-entry appends from many threads through the Sequencer; leaves per second."""
    seq = Sequencer(log)

    def work(t: int) -> None:
        for j in range(per_thread):
            seq.append([promotion(start + t * per_thread + j)])

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for p in pool:
        p.start()
    for p in pool:
        p.join()
    return threads * per_thread / (time.perf_counter() - t0)


def per_call(fn: Callable[[], object], calls: int) -> float:
    """Median over 5 rounds of the mean seconds per call."""
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - t0) / calls)
    return statistics.median(rounds)


def proof_calls(log: TransparencyLog, rng: random.Random) -> dict[str, Callable[[], object]]:
    size = log.latest().size
    return {
        "inclusion": lambda: log.inclusion_proof(rng.randrange(size)),
        "consistency": lambda: log.consistency_proof(rng.randrange(1, size), size),
    }


def proof_ratio(
    small: Callable[[], object], big: Callable[[], object], calls: int = 1000
) -> tuple[float, float]:
    """Seconds per call on each log: medians of 9 interleaved rounds, so machine load hits both alike."""
    s: list[float] = []
    b: list[float] = []
    for _ in range(9):
        for fn, out in ((small, s), (big, b)):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            out.append((time.perf_counter() - t0) / calls)
    return statistics.median(s), statistics.median(b)


def requests_to_verify(log: TransparencyLog, build: int) -> tuple[int, int]:
    """Count HTTP requests: one build via /log/lookup, and via the original newest-first scan."""
    sent: list[str] = []

    def hook(request: httpx2.Request) -> None:
        sent.append(str(request.url))

    sh = store_hash(build)
    with TestClient(Starlette(routes=log_routes(log)), base_url="https://vega.test") as client:
        client.event_hooks["request"] = [hook]
        body = client.get(f"/log/lookup/{sh}").json()
        size = body["sth"]["size"]
        root = bytes.fromhex(body["sth"]["rootHash"])
        assert body["entries"]
        for e in body["entries"]:
            proof = [bytes.fromhex(h) for h in e["proofHex"]]
            merkle.verify_inclusion(merkle.leaf_hash(e["data"].encode()), e["index"], size, proof, root)
        lookup = len(sent)
        sent.clear()
        size = client.get("/log/sth").json()["size"]
        for i in range(size - 1, max(size - 10_000, 0) - 1, -1):
            if sh in client.get(f"/log/entry/{i}").json()["data"]:
                client.get(f"/log/proof/inclusion/{i}?size={size}")
                break
    return lookup, len(sent)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--write", action="store_true", help="update bench/README.md")
    args = parser.parse_args()
    rng = random.Random(3)
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        small = open_log(Path(tmp) / "small.db")
        fill(small, 1000)
        big = open_log(Path(tmp) / "big.db")
        rate = fill(big, args.leaves)
        say(
            f"- append {args.leaves:,} leaves into SQLite in batches of {BATCH}: {rate:,.0f} leaves/s"
            f" vs the 5,000 leaves/s target = {rate / 5000:.1f}x {'ok' if rate >= 5000 else 'BELOW target'}"
        )
        depth = 1000
        lookup, scan = requests_to_verify(big, args.leaves - depth)
        say(
            f"- HTTP requests to verify one build logged {depth:,} entries ago: {lookup} via /log/lookup"
            f" vs {scan:,} via the original newest-first /log/entry scan (up to 10,002 for older builds)"
        )
        size = big.latest().size
        small_calls, big_calls = proof_calls(small, rng), proof_calls(big, rng)
        for name in ("inclusion", "consistency"):
            s, b = proof_ratio(small_calls[name], big_calls[name])
            ratio = b / s
            say(
                f"- {name} proof: {b * 1e6:.0f} µs at {size:,} leaves vs {s * 1e6:.0f} µs at 1,000 leaves"
                f" = {ratio:.2f}x (target <= 2x) {'ok' if ratio <= 2 else 'OVER target'}"
            )
        k = rng.randrange(max(size >> 16, 1))
        tile_s = per_call(lambda: big.tile(1, k), 50)
        leaves_s = per_call(lambda: big.tile(0, k), 50)
        entries_s = per_call(lambda: big.entries_tile(k), 50)

        def recompute() -> None:
            """The level-1 tile's 256 hashes from the 65,536 leaves below it (what tiles avoid)."""
            leaves: list[bytes] = []
            for j in range(k << 8, (k + 1) << 8):
                bundle = big.entries_tile(j)
                assert bundle is not None
                leaves.extend(tiles.parse_entry_bundle(bundle))
            hashes = [merkle.leaf_hash(d) for d in leaves]
            got = b"".join(
                merkle.root_from_leaf_hashes(hashes[i : i + 256]) for i in range(0, len(hashes), 256)
            )
            assert got == big.tile(1, k)

        t0 = time.perf_counter()
        recompute()
        recompute_s = time.perf_counter() - t0
        say(
            f"- full tile read as stored: level 1 {tile_s * 1e3:.2f} ms, level 0 {leaves_s * 1e3:.2f} ms,"
            f" entry bundle {entries_s * 1e3:.2f} ms; recomputing the level-1 tile from its 65,536 leaves"
            f" {recompute_s * 1e3:.0f} ms ({recompute_s / tile_s:,.0f}x the stored read)"
        )
        seq_rate = sequenced(big, 16, 1000, args.leaves)
        say(
            "- 16 threads appending one entry per call through the Sequencer (group commit):"
            f" {seq_rate:,.0f} leaves/s"
        )
    if args.write:
        write_section(lines)


def write_section(lines: list[str]) -> None:
    """Replace the figures between this benchmark's markers in the shared README (or append a section)."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    figures = (
        f"{BEGIN}\nMeasured {time.strftime('%Y-%m-%d %H:%M')} UTC"
        f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):\n\n"
        + "\n".join(lines)
        + f"\n{END}"
    )
    start, end = text.find(BEGIN), text.find(END)
    if start >= 0 and end > start:
        text = text[:start] + figures + text[end + len(END) :]
    else:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{figures}\n"
    README.write_text(text)


if __name__ == "__main__":
    main()
