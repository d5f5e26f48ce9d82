"""A SIGKILLed appender never loses an acknowledged entry nor forks an issued checkpoint.

The child (``crash_appender.py``) appends batches to a SQLite log and prints each
acknowledged batch with the checkpoint it produced; the test kills it at random
points, reopens the log, and checks everything ever acknowledged against the
recovered log: entries present with the same index and bytes, every printed
checkpoint still stored and provably a prefix (RFC 9162 consistency proof) of
the recovered latest checkpoint. The next child re-sends the entries that were
in flight, so idempotency across crashes is exercised too.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.log.crash_appender import NOTE_KEY, ORIGIN, STH_KEY, crash_entry
from vega.core import checkpoint, merkle
from vega.server.db import open_database
from vega.server.log.log import TransparencyLog

APPENDER = Path(__file__).with_name("crash_appender.py")
KILLS = 24


def reopen(db_path: Path) -> TransparencyLog:
    return TransparencyLog(open_database(str(db_path)), ORIGIN, NOTE_KEY, STH_KEY, lambda: 0)


@pytest.mark.slow
def test_killed_appender_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db_path = tmp_path / "log.db"
    rng = random.Random(20261125)
    acked: dict[int, int] = {}  # entry number -> index
    issued: dict[int, tuple[bytes, str]] = {}  # size -> (root, note)
    next_k = 0
    for _ in range(KILLS):
        argv = [sys.executable, str(APPENDER), str(db_path), str(next_k), str(rng.randrange(2**32))]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        wanted = rng.choice([0, 1, 1, 2, 3, 5, 8])
        lines = [proc.stdout.readline() for _ in range(wanted)]
        proc.send_signal(signal.SIGKILL)
        # NOTE: read through proc.stdout, not communicate(): readline() may hold part of
        # the next line in its buffer, which communicate() (raw fd reads) would skip.
        rest = proc.stdout.read()
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
        for raw in [*lines, *rest.splitlines(keepends=True)]:
            if not raw.endswith(b"\n"):
                continue  # cut short by the kill: never acknowledged
            ack = json.loads(raw)
            for j, index in enumerate(ack["indexes"]):
                acked[ack["first"] + j] = index
            head, _ = checkpoint.open_checkpoint(ack["note"], NOTE_KEY.verifier, origin=ORIGIN)
            assert head.size == ack["size"]
            issued[head.size] = (head.root_hash, ack["note"])
            next_k = max(next_k, ack["first"] + len(ack["indexes"]))

        log = reopen(db_path)
        latest = log.latest()
        for k, index in acked.items():
            assert log.entry(index) == crash_entry(k).data
        for size, (root, note) in issued.items():
            stored = log.checkpoint_at(size)
            assert stored is not None
            assert stored.note == note
            proof = log.consistency_proof(size, latest.size).proof
            merkle.verify_consistency(size, latest.size, proof, root, latest.root)

    assert len(issued) >= KILLS // 2  # the kills did land among appends
    log = reopen(db_path)
    latest = log.latest()
    leaves = [log.entry(i) for i in range(latest.size)]
    assert all(d is not None for d in leaves)
    assert len(set(leaves)) == len(leaves)  # re-sent in-flight entries were not logged twice
    assert latest.root == merkle.root_from_leaf_hashes([merkle.leaf_hash(d) for d in leaves if d is not None])
    assert len(set(acked.values())) == len(acked)
