"""Load: 16 concurrent simulated CI jobs x 50 outputs against a real ``vega-server serve --dev``.

Each job mints its OIDC token through the development issuer exactly as a CI job
would, then presigns, uploads and attests its outputs over loopback HTTP; 10 of
each job's 50 outputs are built by every job (so attestations of one store path
race each other and reach promotion, one job being a reproducer run). Then the
log must account for everything: every acknowledged attestation logged once and
provable through ``/log/lookup``, every checkpoint a client saw consistent with
the final one, and re-sent requests changing nothing. No timing is asserted;
``bench/bench_server.py`` reports latency and throughput of the same load.

Spec: issue 4 (acceptance: load test); protocol.md §4.1-§4.3, §5.
"""

from __future__ import annotations

import pytest

from tests.server.attestload import (
    Ack,
    AuditError,
    Output,
    ServerProcess,
    audit,
    check_served,
    log_size,
    plan,
    resend,
    run_load,
)

ATTESTERS = 16
OUTPUTS = 50
SHARED = 10


@pytest.mark.slow
def test_concurrent_attesters_lose_nothing(server_process: ServerProcess) -> None:
    jobs = plan(ATTESTERS, OUTPUTS, SHARED)
    owners = {job.repository.split("/")[0] for job, _ in jobs}
    assert len(owners) < len(jobs)  # some repositories share an owner

    result = run_load(server_process.url, jobs)

    assert result.errors == []
    assert len(result.acknowledged) == ATTESTERS * OUTPUTS
    assert all(a.result["publishedTenant"] is True for a in result.acknowledged)
    assert len(result.checkpoints) >= ATTESTERS * OUTPUTS // 5
    assert len(result.sths) >= ATTESTERS * OUTPUTS // 5

    report = audit(server_process.url, result.acknowledged, result.checkpoints, sths=result.sths)
    assert report.attestations == ATTESTERS * OUTPUTS
    assert report.promotions == SHARED  # the shared outputs, each promoted once
    assert report.size == ATTESTERS * OUTPUTS + SHARED
    assert report.lookups_checked == ATTESTERS * (OUTPUTS - SHARED) + SHARED
    assert report.checkpoints_checked > 1  # distinct tree heads seen, each proven a prefix
    common = [o for o in jobs[0][1] if o.name.startswith("common-")]
    assert check_served(server_process.url, jobs, common) == ATTESTERS * OUTPUTS + SHARED
    assert "Traceback" not in server_process.output()
    assert "database is locked" not in server_process.output()

    # the same requests again: the same answers (for outputs only one job built), nothing logged
    sample = result.acknowledged[::37]
    again = resend(server_process.url, sample)
    for ack, status, body in again:
        assert status == 200
        if not ack.output.name.startswith("common-"):
            assert body == ack.result
        else:
            assert body["decision"]["shared"]["promoted"] is True
    assert log_size(server_process.url) == report.size
    assert (
        audit(server_process.url, result.acknowledged, result.checkpoints, sths=result.sths, lookups=20).size
        == report.size
    )

    # the audit is not vacuous: an acknowledgment the log cannot account for fails it
    ghost = Ack(jobs[0][0], Output.make("never-attested"), 200, None, 0.0, 0.0)
    with pytest.raises(AuditError, match="not in the log"):
        audit(server_process.url, [ghost], [], lookups=0)
