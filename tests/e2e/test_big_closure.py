"""Issues 11 and 14: a root with 2,000 references, end to end with the real nix.

Its fingerprint lists every reference (about 120 kB), far more than one log entry holds (65,535
bytes: "102391 bytes exceeds 65535" before ADR 0012). Against the real ``vega-server serve --dev``
(a subprocess on loopback), the root built by the real nix (2,000 ``builtins.toFile`` dependencies,
so it builds in one step) is pushed with ``vega push``, attested by a builder and a reproducer
(tools/ci_attest.py), promoted, verified with ``vega verify`` and substituted with its whole
closure by the real ``nix copy`` into a fresh store, with the shared key.

Spec: issue 11, issue 14; docs/log-api.md (leaves larger than one entry); ADR 0012.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from tools.ci_attest import attest_installable

from tests.conftest import NixRunner
from tests.e2e.test_story import ServerProcess, cli, nix_copy

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

    # attested by a builder and a reproducer: promoted into the shared tier
    attr = f"packages.{system}.default"
    for repository, workflow, rebuild in (
        ("alice/big", ".github/workflows/vega.yml", False),
        ("vega-org/repro", ".github/workflows/reproduce.yml", True),
    ):
        results = attest_installable(
            installable, server.ci_env(repository, workflow), attr=attr, rebuild=rebuild, nix_env=nix.env
        )
        assert len(results) == REFERENCES + 1
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
