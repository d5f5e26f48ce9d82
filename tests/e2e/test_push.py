"""Issue 5 end to end: ``vega push`` with the real nix against the real server on loopback uvicorn.

Story: enrol through the development identity mode (``vega login``), ``vega push`` a tiny flake
without nixpkgs (tests/with_nix/flakes/push, two paths, builder /bin/sh), then the real
``nix copy --from http://127.0.0.1:PORT/tenant/owner:<id>`` into a fresh store with the printed
key substitutes it; a second push uploads nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NixRunner
from tests.e2e.conftest import Server, dev_server_at
from vega.cli.main import main

FLAKE = Path(__file__).parent.parent / "with_nix" / "flakes" / "push"
pytestmark = pytest.mark.nix


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # No authorization_pending answer: this test is about push, not the device flow.
    with dev_server_at(tmp_path / "data", dev_polls=0, backlog=64) as server:
        yield server


def test_push_then_nix_substitutes_from_the_namespace(
    server: Server,
    nix: NixRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    flake = tmp_path / "flake"
    shutil.copytree(FLAKE, flake)
    (flake / "seed.txt").write_text(f"e2e {time.time_ns()}\n")  # fresh outputs, never built before
    installable = f"path:{flake}#default"

    assert main(["login", "--url", server.url]) == 0
    capsys.readouterr()

    # --upstream points at a cache that has none of these paths: the probe runs and finds nothing.
    assert main(["push", "--json", "--upstream", server.url, installable]) == 0
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines()]
    plan = events[0]
    assert (plan["event"], plan["installable"], plan["novel"]) == ("plan", installable, 2)
    assert (plan["closure"], plan["skipped"], plan["cached"], plan["upstream"]) == (2, 0, 0, 0)
    pushed = [e for e in events if e["event"] == "pushed"]
    assert [(e["done"], e["total"]) for e in pushed] == [(1, 2), (2, 2)]
    assert all(e["size"] > 0 for e in pushed)
    check = events[-1]
    assert check["event"] == "check"
    assert check["substitutable"] is True
    assert check["reason"] == "substitutable"
    namespace = check["namespace"]
    assert namespace.startswith("owner:")
    assert check["substituter"] == f"{server.url}/tenant/{namespace}"
    key = check["publicKey"]
    assert key.startswith(f"vega-owner-{namespace.removeprefix('owner:')}-1:")
    assert sum(r.startswith("PUT /api/cache/upload/") for r in server.requests) == 2
    app_path = next(e["path"] for e in pushed if e["path"].endswith("-vega-push-app"))

    # The real Nix, as a fresh client with its own store and no narinfo cache, substitutes the closure.
    store = tmp_path / "fresh-store"
    env = dict(nix.env, XDG_CACHE_HOME=str(tmp_path / "fresh-cache"))
    done = subprocess.run(
        [
            "nix",
            "copy",
            "--from",
            check["substituter"],
            "--to",
            str(store),
            "--option",
            "trusted-public-keys",
            key,
            app_path,
        ],
        env=env,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr.decode()
    copied = store / app_path.removeprefix("/")
    assert (copied / "bin" / "app").read_text().startswith("#!/bin/sh")

    # A second push uploads nothing and still finds everything substitutable.
    before = len(server.requests)
    assert main(["push", "--no-skip-upstream", installable]) == 0
    text = capsys.readouterr().out
    later = server.requests[before:]
    assert not any(r.startswith(("PUT ", "POST /api/cache/")) for r in later)
    assert "  Closure 2 paths: 0 novel, 0 already upstream, 2 already in the namespace" in text
    assert f"\u2726 Pushed 0 path(s) to {namespace}." in text
    assert f"  extra-substituters = {server.url}/tenant/{namespace}" in text
    assert f"  extra-trusted-public-keys = {key}" in text
    assert "path(s) substitutable from" in text


def test_push_refuses_flag_like_installables_and_needs_a_credential(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """cli.md §9 and §1.5: refused before any build; strict credential load."""
    assert main(["push", "--", "-rf"]) == 1
    assert "refusing an installable that looks like a flag: -rf" in capsys.readouterr().err
    assert main(["push", "."]) == 1
    err = capsys.readouterr().err
    assert "not enrolled: this machine has no Vega credential." in err
    assert os.environ["HOME"] in os.environ["XDG_CONFIG_HOME"]
