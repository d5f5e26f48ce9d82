"""Issue 14's promotion-spoof story, end to end: the real server refuses, the real Nix cannot substitute.

The control plane is the real ``vega-server serve --dev`` (a subprocess on loopback, over SQLite and
over PostgreSQL when configured), configured with a reproducer workflow pinned to a branch. The
attacker owns throw-away GitHub identities. With the real ``nix`` they build a derivation twice:

* in their own store, with a compromised builder (an extra sandbox path whose payload the build
  script writes into ``bin/hello``): the **malicious output**;
* in a clean store, as the honest reproducer does: the honest output of the same store path.

Then, with tokens from the server's development OIDC issuer, they upload and attest the malicious
NAR as a builder and try every way of faking the independent reproduction: the reproducer
workflow at an attacker-chosen ref (a fork's "impostor" commit reachable through the parent
repository's name), the pinned workflow on a self-hosted runner, and the pinned workflow called
from a repository of the builder's own owner. They also try to retire the candidate with a
spoofed failure report. The server refuses each: no shared-key narinfo is ever published, and the
real ``nix copy --from <url>`` with only the shared key fails to substitute the path. The honest
reproduction then disagrees with the malicious fingerprint: ``diverged``, never promoted.

A control path built and reproduced honestly in the same run is promoted and substituted by the
same ``nix copy``, so the refusal is the server's, not the set-up's.

Spec: issue 14 ("who counts as an independent reproducer"); protocol.md §4.1-§4.5, §7, §10.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
import zstandard

from tests.conftest import NixRunner
from tests.server.attestload import ServerProcess
from vega.core import nixbase32
from vega.server.db import open_database

pytestmark = [pytest.mark.nix, pytest.mark.slow]

WORKFLOW = "vega-org/repro/.github/workflows/reproduce.yml"
PINNED = f"{WORKFLOW}@refs/heads/main"
IMPOSTOR = "0123456789abcdef0123456789abcdef01234567"
SHA = "c0ffee0000000000000000000000000000000000"
POSTGRES_URL = os.environ.get("VEGA_TEST_POSTGRES_URL", "")

SPOOF_NIX = """{ seed }:
let
  mk = name: derivation {
    inherit name seed;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      mkdir -p $out/bin
      echo '#!/bin/sh' > $out/bin/hello
      if [ -e /evil/payload ]; then cat /evil/payload >> $out/bin/hello
      else echo 'echo hello' >> $out/bin/hello; fi
      chmod +x $out/bin/hello
    '' ];
  };
in { hello = mk "vega-spoof-hello"; greeting = mk "vega-spoof-greeting"; }
"""


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="VEGA_TEST_POSTGRES_URL is not set"),
            ],
        ),
    ]
)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """``vega-server serve --dev`` with the reproducer pinned to a branch, over each backend."""
    postgres = None
    if request.param == "postgres":
        postgres = (POSTGRES_URL, f"t_{uuid.uuid4().hex[:16]}")
    s = ServerProcess(tmp_path / "data", env={"VEGA_SERVER_REPRODUCER_WORKFLOWS": PINNED}, postgres=postgres)
    s.start()
    try:
        yield s
    finally:
        s.stop()
        if postgres is not None:
            db = open_database(postgres[0])
            with db.transaction() as tx:
                tx.execute(f'DROP SCHEMA IF EXISTS "{postgres[1]}" CASCADE')
            db.close()


@dataclass
class Built:
    """One output built by the real nix in one store: its path, NAR, and compressed NAR."""

    path: str
    nar: bytes
    references: list[str]

    @property
    def hash_part(self) -> str:
        return self.path[11:43]

    @property
    def compressed(self) -> bytes:
        return zstandard.ZstdCompressor(level=3).compress(self.nar)

    def body(self) -> dict[str, object]:
        file_hash = "sha256:" + nixbase32.encode(hashlib.sha256(self.compressed).digest())
        return {
            "storePath": self.path,
            "url": f"nar/{file_hash[7:]}.nar.zst",
            "compression": "zstd",
            "fileHash": file_hash,
            "fileSize": len(self.compressed),
            "narHash": "sha256:" + nixbase32.encode(hashlib.sha256(self.nar).digest()),
            "narSize": len(self.nar),
            "references": self.references,
        }


def build(
    nix: NixRunner, store: Path, nix_file: Path, seed: str, attr: str, extra_sandbox: str = ""
) -> Built:
    """``nix build --store <store>`` of one attribute (sandboxed); its NAR and references."""
    sandbox = "/bin/sh=/bin/busybox" + (f" {extra_sandbox}" if extra_sandbox else "")
    got = json.loads(
        nix.run(
            "nix",
            "build",
            "--store",
            str(store),
            "--file",
            str(nix_file),
            "--argstr",
            "seed",
            seed,
            attr,
            "--json",
            "--no-link",
            "--option",
            "sandbox-paths",
            sandbox,
        )
    )
    path = got[0]["outputs"]["out"]
    nar = nix.run("nix", "store", "dump-path", "--store", str(store), path)
    info = json.loads(nix.run("nix", "path-info", "--store", str(store), "--json", path))[0]
    return Built(path, nar, [r.removeprefix("/nix/store/") for r in info["references"]])


class Job:
    """A simulated GitHub Actions job: a token from the server's development OIDC issuer."""

    def __init__(self, server: ServerProcess, repository: str, owner_id: str, **job: str) -> None:
        fields = {"repository": repository, "sha": SHA, "repositoryOwnerId": owner_id, **job}
        env = httpx2.post(f"{server.url}/_dev/ci-token", json=fields)
        assert env.status_code == 200, env.text
        request_url = env.json()["ACTIONS_ID_TOKEN_REQUEST_URL"]
        request_token = env.json()["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
        got = httpx2.get(
            request_url, params={"audience": server.url}, headers={"authorization": f"Bearer {request_token}"}
        )
        assert got.status_code == 200, got.text
        self.server = server
        self.headers = {"authorization": f"Bearer {got.json()['value']}"}

    def upload(self, out: Built) -> None:
        body = out.body()
        r = httpx2.post(
            f"{self.server.url}/api/cache/upload-url",
            headers=self.headers,
            json={"narUrl": body["url"], "fileHash": body["fileHash"]},
        )
        assert r.status_code == 200, r.text
        data = out.compressed
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        put = httpx2.put(r.json()["url"], content=data, headers={"x-amz-checksum-sha256": checksum})
        assert put.status_code == 200, put.text

    def attest(self, out: Built) -> dict[str, object]:
        r = httpx2.post(
            f"{self.server.url}/api/cache/attest", headers=self.headers, json={**out.body(), "attr": "hello"}
        )
        assert r.status_code == 200, r.text
        result: dict[str, object] = r.json()
        return result

    def report(self, hash_part: str) -> int:
        r = httpx2.post(
            f"{self.server.url}/api/repro/dispatch-failed",
            headers=self.headers,
            json={"hash": hash_part, "reason": "unresolvable"},
        )
        return r.status_code


def reason(result: dict[str, object]) -> object:
    decision = result["decision"]
    assert isinstance(decision, dict)
    return decision["shared"]["reason"]


def nix_copy(nix: NixRunner, url: str, key: str, path: str, to: Path) -> subprocess.CompletedProcess[bytes]:
    """The real ``nix copy --from <url>`` into a fresh store, trusting only ``key``."""
    env = dict(nix.env, XDG_CACHE_HOME=str(to.parent / f"{to.name}-cache"))
    return subprocess.run(
        ["nix", "copy", "--from", url, "--to", str(to), "--option", "trusted-public-keys", key, path],
        env=env,
        capture_output=True,
    )


def test_a_spoofed_reproduction_never_reaches_the_shared_tier(
    server: ServerProcess, nix: NixRunner, tmp_path: Path
) -> None:
    nix_file = tmp_path / "spoof.nix"
    nix_file.write_text(SPOOF_NIX)
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "payload").write_text("echo pwned # the attacker's code\n")
    seed = uuid.uuid4().hex  # fresh, never-built outputs
    evil = build(nix, tmp_path / "evil-store", nix_file, seed, "hello", f"/evil={payload}")
    honest = build(nix, tmp_path / "honest-store", nix_file, seed, "hello")
    assert evil.path == honest.path  # the same store path ...
    assert evil.nar != honest.nar  # ... with malicious bytes
    assert b"pwned" in evil.nar
    shared_key = httpx2.get(f"{server.url}/api/info").json()["sharedKey"]

    # The attacker's builder (throw-away owner 101) publishes the malicious output in its tenant.
    builder = Job(server, "mallory/hello", "101")
    builder.upload(evil)
    assert reason(builder.attest(evil)) == "insufficient"
    # Every fake reproduction: an impostor ref, a self-hosted runner, the builder's own owner.
    fakes = [
        Job(server, "mallory2/hello", "102", workflow=f"{WORKFLOW}@{IMPOSTOR}"),
        Job(server, "mallory2/hello", "102", workflow=PINNED, runnerEnvironment="self-hosted"),
        Job(server, "mallory/repro", "101", workflow=PINNED),
    ]
    for fake in fakes:
        result = fake.attest(evil)
        assert reason(result) == "awaiting-repro", result
        assert result["publishedShared"] is False
        assert fake.report(evil.hash_part) == 403  # nor can they retire the candidate
    queue = httpx2.get(f"{server.url}/api/repro/queue").json()["candidates"]
    assert [c["hash"] for c in queue] == [evil.hash_part]
    assert httpx2.get(f"{server.url}/{evil.hash_part}.narinfo").status_code == 404

    # The honest reproducer (the operator's pinned workflow, GitHub-hosted, another owner) disagrees.
    reproducer = Job(server, "vega-org/repro", "900", workflow=PINNED)
    reproducer.upload(honest)
    result = reproducer.attest(honest)
    assert reason(result) == "diverged"
    assert result["publishedShared"] is False
    status = httpx2.get(f"{server.url}/api/status/{evil.hash_part}").json()
    assert (status["verdict"], status["inSharedCache"], status["diverged"]) == ("diverged", False, True)
    events = [
        json.loads(httpx2.get(f"{server.url}/log/entry/{i}").json()["data"])
        for i in range(server_size(server))
    ]
    assert [e["event"] for e in events].count("promotion") == 0
    assert {e["lane"] for e in events if e["event"] == "attestation"} == {"gh-actions", "vega-repro"}

    # The real nix, trusting only the shared key, cannot substitute it.
    refused = nix_copy(nix, server.url, shared_key, evil.path, tmp_path / "victim")
    assert refused.returncode != 0
    assert not (tmp_path / "victim" / evil.path.removeprefix("/")).exists()

    # Control: an honestly built and reproduced path is promoted and substituted the same way.
    good = build(nix, tmp_path / "alice-store", nix_file, seed, "greeting")
    alice = Job(server, "alice/greeting", "1")
    alice.upload(good)
    alice.attest(good)
    assert reproducer.attest(good)["publishedShared"] is True
    copied = nix_copy(nix, server.url, shared_key, good.path, tmp_path / "user")
    assert copied.returncode == 0, copied.stderr.decode()
    assert b"echo hello" in (tmp_path / "user" / good.path.removeprefix("/") / "bin" / "hello").read_bytes()


def server_size(server: ServerProcess) -> int:
    return int(httpx2.get(f"{server.url}/log/sth").json()["size"])


def test_a_reproducer_without_a_pinned_ref_is_refused_at_start_up(tmp_path: Path) -> None:
    """The configuration the attack used (a workflow at any ref) no longer starts a server."""
    s = ServerProcess(tmp_path / "data", env={"VEGA_SERVER_REPRODUCER_WORKFLOWS": WORKFLOW})
    with pytest.raises(RuntimeError, match="exited") as e:
        s.start(timeout_s=30)
    assert "names no ref" in str(e.value)
    assert f"{WORKFLOW}@refs/heads/main" in s.output()  # and it says how to pin it
