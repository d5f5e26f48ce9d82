"""Fault: SIGKILL a real ``vega-server`` during the load, restart it on the same data, re-run.

The load of ``test_load.py`` (16 concurrent jobs, 30 outputs each here, to keep
the suite fast) runs against a server that is killed (SIGKILL, no shutdown) once
a share of the attestations has been acknowledged, twice. After
each restart, before anything is re-sent, every attestation acknowledged so far
must be in the recovered log and every checkpoint any client saw must be
consistent with it. Then the jobs re-send all their requests (as the build
agent's retry would): everything succeeds and the log holds exactly one entry
per (attester, output) and one promotion per shared output.

The in-process test pins the order that makes this hold at every instant, not
only for acknowledged requests: an attestation reaches the log before the store
counts or serves it, so a crash between the two never leaves evidence the log
lacks.

Spec: issue 4 (acceptance: fault test); protocol.md §4.0 (idempotent writes), §5.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.server.attestload import (
    Ack,
    LoadResult,
    ServerProcess,
    audit,
    check_served,
    log_size,
    plan,
    run_load,
    stored_attestations,
)
from tests.server.cachekit import Harness
from tests.server.cachekit import Output as FakeOutput
from vega.core import nixbase32
from vega.errors import StorageError
from vega.server.blobs import LocalBlobStore
from vega.server.db import Database
from vega.server.log.log import LogEntry

ATTESTERS = 16
OUTPUTS = 30
SHARED = 6
KILL_AFTER = (0.3, 0.4)  # of all outputs acknowledged in the run, per killed run


@pytest.mark.slow
def test_sigkill_during_load_loses_nothing_acknowledged(server_process: ServerProcess) -> None:
    jobs = plan(ATTESTERS, OUTPUTS, SHARED)
    total = ATTESTERS * OUTPUTS
    hashes = {out.hash_part for _, outputs in jobs for out in outputs}
    acked: list[Ack] = []
    seen: list[str] = []  # checkpoint notes
    sths: list[str] = []

    for share in KILL_AFTER:
        threshold = int(total * share)
        before = log_size(server_process.url)

        def kill_at_threshold(result: LoadResult, threshold: int = threshold) -> None:
            if len(result.acknowledged) == threshold:
                server_process.kill()

        result = run_load(server_process.url, jobs, on_ack=kill_at_threshold)
        assert server_process.proc is not None
        assert server_process.proc.returncode == -9  # it was killed mid-load
        assert threshold <= len(result.acknowledged) < total
        assert result.errors  # some requests were cut off by the kill
        acked += result.acknowledged
        seen += result.checkpoints
        sths += result.sths

        server_process.start()
        # Before anything is re-sent: nothing acknowledged is lost, no checkpoint forked.
        report = audit(server_process.url, acked, seen, sths=sths, lookups=50)
        assert report.size >= before
        assert report.checkpoints_checked > 0
        # Nor does the store hold (count, serve) an attestation the log lacks.
        assert stored_attestations(server_process, hashes) <= report.logged
        # Nor do uploads the kill cut off leave their bytes behind.
        assert list((server_process.data_dir / "nars" / "tmp").iterdir()) == []

    final = run_load(server_process.url, jobs)
    assert final.errors == []
    assert len(final.acknowledged) == total
    acked += final.acknowledged
    seen += final.checkpoints
    sths += final.sths

    report = audit(server_process.url, acked, seen, sths=sths)
    assert report.attestations == total  # one entry per (attester, output): no duplicates
    assert report.promotions == SHARED
    assert report.size == total + SHARED
    assert log_size(server_process.url) == report.size
    common = [o for o in jobs[0][1] if o.name.startswith("common-")]
    assert check_served(server_process.url, jobs, common) == total + SHARED


class CrashingLog:
    """A log whose appends fail, as if the process died before the log's commit."""

    def append(self, entries: Sequence[LogEntry]) -> list[int]:
        raise StorageError("simulated crash before the log commit")


def test_an_attestation_is_logged_before_it_is_stored_or_served(database: Database, tmp_path: Path) -> None:
    h = Harness(database, tmp_path)
    token = h.ci_token("alice/hello", run_id="41")
    out = FakeOutput("hello-2.12", b"nar bytes " * 50)
    h.upload(token, out)
    service = h.app.state.service
    real_log = service.log
    service.log = CrashingLog()

    assert h.attest(token, out.body()).status_code == 500
    with service.store.read() as tx:
        assert service.store.attestations(tx, out.hash_part) == []  # nothing the policy would count
    assert h.client.get(f"/tenant/alice/hello/{out.hash_part}.narinfo").status_code == 404
    assert h.log_entries() == []

    service.log = real_log  # "restart": the retry completes it, logged once
    assert h.attest(token, out.body()).status_code == 200
    assert h.attest(token, out.body()).status_code == 200
    assert [e["event"] for e in h.log_entries()] == ["attestation"]
    assert h.client.get(f"/tenant/alice/hello/{out.hash_part}.narinfo").status_code == 200


def test_uploads_cut_off_by_a_crash_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    data = b"nar bytes " * 100
    digest = hashlib.sha256(data).digest()
    key = f"nar/{nixbase32.encode(digest)}.nar.zst"
    store = LocalBlobStore(tmp_path)
    live = store.writer(key, digest, len(data))
    live.write(data[:10])
    abandoned = tmp_path / "tmp" / "upload-killed"
    abandoned.write_bytes(b"partial")  # what a killed process leaves: a file nobody holds

    LocalBlobStore(tmp_path)  # a restart, or a second server on the same directory

    assert not abandoned.exists()
    live.write(data[10:])
    assert live.commit() == len(data)
    assert store.size(key) == len(data)
    assert list((tmp_path / "tmp").iterdir()) == []
