"""Hash and store-path encodings: vega.core against `nix hash to-base32` on the same inputs.

Usage: .venv/bin/python -m bench.bench_nixbase32 [--count N]

Both sides are whole processes given the same N random sha256 digests in hex:
nix converts them with `nix hash to-base32 --type sha256 HEX...`; ours runs
parse_nix_hash + nix32 (and, separately, nix32 decode and store-path parse and
format) in a fresh Python process. Also prints the in-process cost per call.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

from bench.measure import best_of, report
from vega.core import nixbase32
from vega.core.hashes import HashAlgorithm, parse_nix_hash
from vega.core.storepath import StorePath, parse_store_path

NIX_CONFIG = "experimental-features = nix-command flakes\nsubstituters =\n"

OURS = """
import sys
from vega.core.hashes import HashAlgorithm, parse_nix_hash
hexes = open(sys.argv[1]).read().split()
out = [parse_nix_hash(h, HashAlgorithm.SHA256).nix32 for h in hexes]
sys.stdout.write("\\n".join(out) + "\\n")
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(1)
    hexes = [rng.randbytes(32).hex() for _ in range(args.count)]
    env = dict(os.environ, NIX_CONFIG=NIX_CONFIG)
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "hexes"
        listing.write_text("\n".join(hexes))
        ours_argv = [sys.executable, "-c", OURS, str(listing)]
        peer_argv = ["nix", "hash", "to-base32", "--type", "sha256", *hexes]
        ours_out = subprocess.run(ours_argv, capture_output=True, check=True).stdout
        peer_out = subprocess.run(peer_argv, capture_output=True, check=True, env=env).stdout
        assert ours_out == peer_out, "outputs differ"
        ours = best_of(5, ours_argv)
        peer = best_of(5, peer_argv, env=env)
        print(report(f"hex -> nix32 of {args.count} sha256 digests", ours, peer, "nix hash to-base32"))
        start = best_of(5, [sys.executable, "-c", "import vega.core.hashes"])
        print(f"  of which starting python and importing vega.core.hashes: {start.seconds:.3f}s")

    digest = rng.randbytes(32)
    text = nixbase32.encode(digest)
    path = StorePath(rng.randbytes(20), "hello-2.12.1")
    absolute = path.absolute
    n = 200_000
    per_call = {
        "nixbase32.encode(32 bytes)": timeit.timeit(lambda: nixbase32.encode(digest), number=n) / n,
        "nixbase32.decode(52 chars)": timeit.timeit(lambda: nixbase32.decode(text), number=n) / n,
        "parse_nix_hash(sha256:nix32)": timeit.timeit(
            lambda: parse_nix_hash("sha256:" + text, HashAlgorithm.SHA256), number=n
        )
        / n,
        "parse_store_path(absolute)": timeit.timeit(lambda: parse_store_path(absolute), number=n) / n,
        "StorePath.absolute": timeit.timeit(lambda: path.absolute, number=n) / n,
    }
    for name, seconds in per_call.items():
        print(f"{name}: {seconds * 1e6:.2f} us per call (in process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
