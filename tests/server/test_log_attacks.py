"""Issue 14: the log cannot be used to deny verification, on SQLite and PostgreSQL.

One CI token attests one store path with many distinct fingerprints (each a different reference
list). Before ADR 0012 the lookup returned only the oldest entries of the path, so the promotion
could fall outside the answer, and ``vega verify`` of the legitimately promoted build failed with
"a revocation cannot be ruled out". Now promotions and revocations have their own index and a
signed statement: the promoted build verifies, and a later revocation is still found.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.client.conftest import Recorder
from tests.server.cachekit import PUBLIC_URL, Harness, Output, store_hash
from vega.client.http import HttpLimits
from vega.client.logstate import LogState
from vega.client.verify import VerifyContext, VerifyReport, verify_target
from vega.server.db import Database
from vega.server.log.log import MAX_LOOKUP_BYTES

HELLO = Output("hello", b"nix-archive-1 hello world " * 200)
REFS_PER_ATTESTATION = 600
"""About 30 kB of fingerprint per attestation leaf: the flood passes the lookup's 3 MiB budget."""


class Client:
    """``vega verify`` (the library) against a harness, over its ASGI transport."""

    def __init__(self, h: Harness, tmp: Path) -> None:
        self.h = h
        self.recorder = Recorder(h.client._transport)
        self.http = httpx2.Client(transport=self.recorder, base_url=PUBLIC_URL)
        self.state = LogState(tmp / "state")

    def verify(self, target: str) -> VerifyReport:
        shared = self.h.keys.shared.public
        ctx = VerifyContext(
            client=self.http,
            base_url=PUBLIC_URL,
            trusted_keys={shared.name: shared},
            state=self.state,
            limits=HttpLimits(),
            sleep=lambda s: None,
        )
        return verify_target(ctx, target)


@pytest.fixture
def harness(database: Database, tmp_path: Path) -> Iterator[Harness]:
    """A control plane without the per-path rate limit (to show the lookup holds up without it)."""
    h = Harness(database, tmp_path / "cp", attest_path_per_hour=0)
    with h.client:
        yield h


@pytest.fixture
def limited(database: Database, tmp_path: Path) -> Iterator[Harness]:
    """A control plane with the default rate limits."""
    h = Harness(database, tmp_path / "cp")
    with h.client:
        yield h


def attest(h: Harness, token: str, body: dict[str, Any]) -> None:
    r = h.attest(token, body)
    assert r.status_code == 200, r.text


def flood(h: Harness, out: Output, count: int) -> None:
    """One token attests ``out``'s path ``count`` times, each with another reference list."""
    token = h.ci_token("mallory/flood", run_id="666", owner_id="666")
    h.upload(token, out)
    for n in range(count):
        refs = [f"{store_hash(f'ref-{n}-{k}')}-r{k}" for k in range(REFS_PER_ATTESTATION)]
        attest(h, token, out.body(references=refs))


def checks(report: VerifyReport) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.ok, c.detail) for c in report.checks}


def test_many_fingerprints_for_one_path_cannot_deny_verification(harness: Harness, tmp_path: Path) -> None:
    h = harness
    count = MAX_LOOKUP_BYTES // (REFS_PER_ATTESTATION * 40) + 10
    flood(h, HELLO, count)
    # then the real build is promoted: one builder and a reproduction by another owner
    for repo, run, repro in (("alice/hello", "1", False), ("vega-org/vega", "2", True)):
        token = h.ci_token(repo, run_id=run, reproducer=repro)
        h.upload(token, HELLO)
        attest(h, token, HELLO.body())
    assert h.client.get(f"/{HELLO.hash_part}.narinfo").status_code == 200
    lookup = h.client.get(f"/log/lookup/{HELLO.hash_part}").json()
    assert lookup["truncated"] is True  # the flood really exceeds what one answer holds

    client = Client(h, tmp_path)
    report = client.verify(HELLO.store_path)
    assert report.exit_ok, checks(report)
    assert checks(report)["promotion"][0] is True
    ok, detail = checks(report)["revocation"]
    assert ok, detail
    assert "signed list of 1 promotion and revocation entries" in detail

    # and a revocation after the flood is still found (the narinfo from a stale mirror)
    stale = h.client.get(f"/{HELLO.hash_part}.narinfo").content
    assert h.app.state.service.revoke(HELLO.hash_part, "compromised builder") is True
    client.recorder.serve[f"/{HELLO.hash_part}.narinfo"] = (200, stale)
    revoked = client.verify(HELLO.store_path)
    assert not revoked.exit_ok
    assert checks(revoked)["revocation"][0] is False
    assert checks(revoked)["revocation"][1].startswith("revoked in the log")


def test_attestations_per_owner_and_path_are_rate_limited(limited: Harness) -> None:
    """The same flood against the default limits: 429 with Retry-After, and nothing logged."""
    h = limited
    burst = h.settings.attest_path_burst
    token = h.ci_token("mallory/flood", run_id="666", owner_id="666")
    h.upload(token, HELLO)
    size = h.client.get("/log/sth").json()["size"]
    for n in range(burst):
        attest(h, token, HELLO.body(references=[f"{store_hash(f'ref-{n}')}-r"]))
    refused = h.attest(token, HELLO.body(references=[f"{store_hash('one-more')}-r"]))
    assert refused.status_code == 429
    assert refused.json() == {"error": "too many attestations of this store path by this owner; retry later"}
    assert refused.headers["retry-after"] == str(3600 // h.settings.attest_path_per_hour)
    assert h.client.get("/log/sth").json()["size"] == size + burst
    # another run of the same owner is the same owner
    other_run = h.ci_token("mallory/other-repo", run_id="667", owner_id="666")
    assert h.attest(other_run, HELLO.body(references=[f"{store_hash('other')}-r"])).status_code == 429
    # other owners and other paths are not affected
    assert h.attest(h.ci_token("alice/hello", run_id="1"), HELLO.body()).status_code == 200
    other = Output("other", b"other nar " * 100)
    h.upload(token, other)
    attest(h, token, other.body())
    # an hour later the bucket is full again (the server's clock)
    h.clock.ms += 3_600_000
    later = h.ci_token("mallory/flood", run_id="668", owner_id="666")
    attest(h, later, HELLO.body(references=[f"{store_hash('later')}-r"]))


def test_a_build_too_large_for_one_log_entry_is_attested_promoted_and_verified(
    harness: Harness, tmp_path: Path
) -> None:
    """Issues 14/11: a fingerprint longer than one log entry ("102391 bytes exceeds 65535").

    300 references with 200-character names make a 74 kB fingerprint (2,000 ordinary names do
    the same; tests/e2e/test_big_closure.py runs that with the real nix). Every reference is
    promoted first: the shared tier signs a path only when its references are there.
    """
    h = harness
    refs = [Output(f"{k:03d}-" + "d" * 196, b"nix-archive-1 one dependency " * 10) for k in range(300)]
    big = Output("big-root", b"nix-archive-1 big root " * 100, references=[r.base for r in refs])
    for repo, run, repro in (("alice/hello", "1", False), ("vega-org/vega", "2", True)):
        token = h.ci_token(repo, run_id=run, reproducer=repro)
        h.upload(token, refs[0])  # every dependency has the same bytes
        for out in refs:
            attest(h, token, out.body())
        h.upload(token, big)
        attest(h, token, big.body())
    narinfo = h.client.get(f"/{big.hash_part}.narinfo")
    assert narinfo.status_code == 200
    assert len(narinfo.text) > 65_535
    leaves = [e for e in h.log_entries() if e["storePath"] == big.store_path]
    assert {e["event"] for e in leaves} == {"attestation", "promotion"}
    assert all("fingerprintSha256" in e and "fingerprint" not in e for e in leaves)
    report = Client(h, tmp_path).verify(big.store_path)
    assert report.exit_ok, checks(report)
    assert checks(report)["promotion"][0] is True
