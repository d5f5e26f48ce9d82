"""Issues 11 and 14: a root with 2,000 references, end to end with the real nix.

Its fingerprint lists every reference (about 120 kB), far more than one log entry holds (65,535
bytes: "102391 bytes exceeds 65535" before ADR 0012). Against the real ``vega-server serve --dev``
(a subprocess on loopback), the root built by the real nix (2,000 ``builtins.toFile`` dependencies,
so it builds in one step) is pushed with ``vega push``, every path of its closure is attested by a
builder's CI job and by the reproducer workflow (tokens from the server's development OIDC issuer,
uploads and attestations through the agents' :class:`UploadClient`), promoted, verified with
``vega verify`` and substituted with its whole closure by the real ``nix copy`` into a fresh store,
with the shared key. (The real ``vega-reproduce`` attests only the outputs it rebuilds, not the
dependencies a closure needs in the shared tier, so the jobs here attest the closure directly.)

Spec: issue 11, issue 14; docs/log-api.md (leaves larger than one entry); ADR 0012.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx2
import pytest

from tests.conftest import NixRunner
from tests.e2e.agents import ServerProcess
from tests.e2e.test_story import cli, nix_copy
from vega.client.github import request_actions_token
from vega.client.http import Http, HttpLimits
from vega.client.nix import Nix, SubprocessRunner
from vega.client.push import attest_body, pack_nar
from vega.client.upload import UploadClient
from vega.core.api import AttestResult
from vega.core.storepath import parse_store_path

pytestmark = [pytest.mark.nix, pytest.mark.slow]

REFERENCES = 2000
FLAKE = """{
  outputs = { self }:
    let
      system = "SYSTEM";
      seed = builtins.readFile ./seed.txt;
      deps = builtins.genList
        (n: builtins.toFile "vega-dep-${toString n}" "dependency ${toString n} ${seed}") COUNT;
    in {
      packages.${system}.default = derivation {
        name = "vega-big-root";
        inherit system;
        builder = "/bin/sh";
        deps = builtins.concatStringsSep "\\n" deps;
        passAsFile = [ "deps" ];
        args = [ "-c" "cat $depsPath > $out" ];
      };
    };
}
"""


SHA = "0123456789abcdef0123456789abcdef01234567"


def attest_closure(
    url: str, environ: Mapping[str, str], out_path: str, nix_env: Mapping[str, str]
) -> list[AttestResult]:
    """As the CI job in ``environ``: upload and attest every path of ``out_path``'s closure."""
    nix = Nix(SubprocessRunner(lambda line: None, env=nix_env))
    closure = nix.closure([parse_store_path(out_path)])
    results = []
    with httpx2.Client(timeout=120.0) as client:
        http = Http(client, HttpLimits())
        token = request_actions_token(
            http, environ["ACTIONS_ID_TOKEN_REQUEST_URL"], environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"], url
        )
        upload = UploadClient(client, url, lambda force: token, now_ms=lambda: int(time.time() * 1000))
        with tempfile.TemporaryDirectory(prefix="vega-big-") as spool:
            # dependencies first (toFile paths have no references), the root last
            for info in sorted(closure, key=lambda i: i.path.absolute == out_path):
                packed = pack_nar(info.path.absolute, Path(spool))
                try:
                    upload.upload(packed.file_hash, packed.body)
                    results.append(upload.attest(attest_body(info, packed)))
                finally:
                    packed.discard()
    return results


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The real ``vega-server serve --dev`` on loopback (as in test_story)."""
    s = ServerProcess(tmp_path / "data", tmp_path / "server.log")
    try:
        yield s
    finally:
        s.stop()


def test_a_root_with_2000_references_is_pushed_attested_verified_and_substituted(
    server: ServerProcess,
    nix: NixRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    monkeypatch.setenv("NO_COLOR", "1")
    system = nix.text("nix", "eval", "--impure", "--raw", "--expr", "builtins.currentSystem")
    flake = tmp_path / "flake"
    flake.mkdir()
    (flake / "flake.nix").write_text(FLAKE.replace("SYSTEM", system).replace("COUNT", str(REFERENCES)))
    (flake / "seed.txt").write_text(f"big closure {time.time_ns()}\n")
    installable = f"path:{flake}#default"

    # pushed into the owner namespace
    assert cli(capsys, "login", "--url", server.url).code == 0
    pushed = cli(capsys, "push", "--json", "--no-skip-upstream", installable)
    assert pushed.code == 0, pushed.err
    events = [json.loads(line) for line in pushed.out.splitlines()]
    assert events[0]["novel"] == REFERENCES + 1
    assert events[-1]["substitutable"] is True
    out_path = nix.text("nix", "path-info", installable)
    info = json.loads(nix.text("nix", "path-info", "--json", out_path))
    info = info[0] if isinstance(info, list) else next(iter(info.values()))
    assert len(info["references"]) == REFERENCES

    # attested by a builder's CI job and by the reproducer workflow: promoted into the shared tier
    for environ in (server.ci_env("alice/big", SHA), server.reproducer_env(SHA)):
        results = attest_closure(server.url, environ, out_path, nix.env)
        assert len(results) == REFERENCES + 1
    assert results[-1].published_shared
    hash_part = out_path.removeprefix("/nix/store/")[:32]
    status = httpx2.get(f"{server.url}/api/status/{hash_part}").json()
    assert (status["verdict"], status["inSharedCache"]) == ("reproducible", True)
    sth_size = int(httpx2.get(f"{server.url}/log/sth").json()["size"])
    assert sth_size >= 3 * (REFERENCES + 1)  # every attestation and promotion was logged

    # verified with the shared key: every check, including the compact promotion leaf's binding
    shared = server.shared_key
    verified = cli(capsys, "verify", out_path, "--url", server.url, "--public-key", shared, "--json")
    assert verified.code == 0, verified.out + verified.err
    report = json.loads(verified.out)
    report = report[0] if isinstance(report, list) else report
    assert report["verified"] is True
    assert report["transparency"]["found"] is True

    # substituted with its whole closure by the real nix, into a fresh store
    copied = nix_copy(nix, tmp_path, "shared", server.url, shared, out_path)
    lines = copied.read_text().splitlines()
    assert len(lines) == REFERENCES
    assert all((tmp_path / "store-shared" / line.removeprefix("/")).is_file() for line in lines)
