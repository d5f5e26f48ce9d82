"""Child process of test_crash: append batches forever, printing each acknowledged batch.

Usage: python crash_appender.py DB_PATH FIRST SEED

Entry ``k`` (``k >= FIRST``) has dedupe key ``crash:k``; after ``append``
returns, one JSON line ``{"first": k, "indexes": [...], "size": n, "note": ...}``
is printed and flushed: that is the acknowledgment the parent relies on.
"""

from __future__ import annotations

import json
import random
import sys

from vega.core.note import SignerKey
from vega.core.signing import generate_secret_key
from vega.server.db import open_database
from vega.server.log.log import LogEntry, TransparencyLog

ORIGIN = "vega.test/crash"
NOTE_KEY = SignerKey(ORIGIN, b"\x03" * 32)
STH_KEY = generate_secret_key("vega-cache-1", b"\x04" * 32)


def crash_entry(k: int) -> LogEntry:
    data = json.dumps({"v": 1, "event": "attestation", "n": k}, separators=(",", ":")).encode()
    return LogEntry(data=data, dedupe_key=f"crash:{k}")


def main(db_path: str, first: int, seed: int) -> None:
    rng = random.Random(seed)
    ms = 1_767_225_600_000
    log = TransparencyLog(open_database(db_path), ORIGIN, NOTE_KEY, STH_KEY, lambda: ms)
    k = first
    while True:
        n = rng.randint(1, 64)
        indexes = log.append([crash_entry(k + j) for j in range(n)])
        cp = log.latest()
        line = {"first": k, "indexes": indexes, "size": cp.size, "note": cp.note}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        k += n


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
