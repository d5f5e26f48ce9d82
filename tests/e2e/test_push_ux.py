"""Issue 12, ``vega push`` as cachix users expect it, end to end with the real nix and a real server.

Store paths and stdin instead of installables; the control plane and the credential checked
before any build; Ctrl-C (a real SIGINT to a real ``vega push`` process) stops the uploads,
removes the spools, says what was and was not pushed and exits 130, and a re-run resumes; a
failed build's error printed once; no raw errno text.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NixRunner
from tests.e2e.conftest import Server, dev_server_at
from vega.cli.main import main

BULK = Path(__file__).parent.parent / "with_nix" / "flakes" / "bulk"
PUSH = Path(__file__).parent.parent / "with_nix" / "flakes" / "push"
pytestmark = pytest.mark.nix


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with dev_server_at(tmp_path / "data", dev_polls=0, backlog=64) as server:
        yield server


def fresh_flake(src: Path, dest: Path) -> str:
    shutil.copytree(src, dest)
    (dest / "seed.txt").write_text(f"ux {time.time_ns()} {dest}\n")
    return f"path:{dest}"


def login(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--url", server.url]) == 0
    capsys.readouterr()


def events(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_push_takes_store_paths_from_stdin_and_arguments_without_building(
    server: Server,
    nix: NixRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Like ``cachix push``: ``--stdin`` / ``-`` read store paths; a store path is its closure, unbuilt."""
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    flake = fresh_flake(PUSH, tmp_path / "flake")
    built = json.loads(nix.run("nix", "build", "--json", "--no-link", f"{flake}#default"))
    app = built[0]["outputs"]["out"]
    lib = next(p for p in nix.text("nix-store", "-qR", app).split() if p.endswith("-vega-push-lib"))
    login(server, capsys)

    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{lib}\n"))
    assert main(["push", "--json", "--upstream", server.url, "--stdin"]) == 0
    got = events(capsys.readouterr().out)
    assert got[0] == {
        "event": "plan",
        "installable": lib,
        "closure": 1,
        "skipped": 0,
        "novel": 1,
        "cached": 0,
        "upstream": 0,
        "earlier": 0,
        "narBytes": got[0]["narBytes"],
    }
    assert got[-1]["substitutable"] is True

    # "-" among the arguments, and a store path argument: the closure (app + lib), lib skipped.
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{app}\n{app}\n"))
    assert main(["push", "--json", "--upstream", server.url, "-"]) == 0
    plan = events(capsys.readouterr().out)[0]
    assert (plan["installable"], plan["closure"], plan["skipped"], plan["novel"]) == (app, 2, 1, 1)
    assert plan["cached"] == 1

    # A link to the store (./result) counts as the store path; nothing is built for it.
    (tmp_path / "result").symlink_to(app)
    assert main(["push", "--json", "--upstream", server.url, str(tmp_path / "result")]) == 0
    plan = events(capsys.readouterr().out)[0]
    assert (plan["closure"], plan["skipped"], plan["novel"]) == (2, 2, 0)

    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["push", "--stdin"]) == 1
    err = capsys.readouterr().err
    assert "error: no store paths on stdin" in err
    assert "Try:" in err


def test_a_missing_store_path_is_one_sentence_with_try_lines(
    server: Server, nix: NixRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    login(server, capsys)
    missing = "/nix/store/" + "0" * 32 + "-not-there"
    assert main(["push", missing]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing} is not in the local Nix store\n")
    assert "Try:" in err
    assert "Errno" not in err
    assert "No such file" not in err


def test_push_checks_the_control_plane_and_the_credential_before_building(
    tmp_path: Path, nix: NixRunner, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A push that cannot land must not cost a build first; no raw errno text reaches the user."""
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    flake = fresh_flake(PUSH, tmp_path / "flake")
    with dev_server_at(tmp_path / "data", dev_polls=0) as server:
        login(server, capsys)
        config = Path(os.environ["XDG_CONFIG_HOME"]) / "vega"
        files = [config / "credential", *(config / "credentials").glob("*.json")]
        good = {f: f.read_text() for f in files}
        for f in files:
            stored = json.loads(good[f])
            stored["credential"] = stored["credential"][:-4] + "AAAA"
            f.write_text(json.dumps(stored))
        before = len(server.requests)
        assert main(["push", f"{flake}#default"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: the control plane at {server.url} does not accept this machine's")
        assert f"vega login --url {server.url}" in err
        assert "vega-push" not in err  # nix was never asked to build
        assert [r.split("?")[0] for r in server.requests[before:]] == [
            "GET /nix-cache-info",
            "GET /api/owner/whoami",
        ]
        for f, text in good.items():
            f.write_text(text)
    # The server is gone: refused, said in one sentence, before any build.
    assert main(["push", f"{flake}#default"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: the control plane at {server.url} refused the connection")
    assert "Try:" in err
    assert "Errno" not in err
    assert "vega-push" not in err
    out = subprocess.run(
        ["nix", "path-info", f"{flake}#default"], env=nix.env, capture_output=True, check=False
    )
    assert out.returncode != 0  # never built


def test_a_failed_build_is_printed_once_whole(
    server: Server,
    nix: NixRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    flake = fresh_flake(BULK, tmp_path / "flake")
    login(server, capsys)
    assert main(["push", f"{flake}#broken"]) == 1
    err = capsys.readouterr().err
    assert err.count("failed with exit code 3") == 1, err
    assert err.count("fatal: the widget is missing") == 1, err
    assert "Try:\n  nix log /nix/store/" in err
    assert "error: nix build failed with status 1 (nix's error is printed above)" in err


def vega_exe() -> str:
    exe = Path(sys.executable).parent / "vega"
    return str(exe) if exe.exists() else shutil.which("vega") or "vega"


def test_ctrl_c_stops_the_uploads_removes_spools_reports_and_a_rerun_resumes(
    server: Server,
    nix: NixRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A real SIGINT to a real ``vega push`` process in the middle of six 24 MiB uploads."""
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    flake = fresh_flake(BULK, tmp_path / "flake")
    nix.run("nix", "build", "--no-link", f"{flake}#blobs")  # built up front: this test is about uploads
    login(server, capsys)
    spool_root = tmp_path / "tmp"
    spool_root.mkdir()
    env = dict(os.environ, TMPDIR=str(spool_root), PYTHONUNBUFFERED="1")
    argv = [vega_exe(), "push", "--json", "-j", "1", "--upstream", server.url, f"{flake}#blobs"]
    seen: list[dict[str, object]] = []
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        for line in proc.stdout:
            seen.append(json.loads(line))
            if seen[-1]["event"] == "pushed":
                proc.send_signal(signal.SIGINT)
                sent = time.monotonic()
                break
        rest = proc.stdout.read()
        code = proc.wait(timeout=60)
        stopped_after = time.monotonic() - sent
        stderr = proc.stderr.read()
    assert code == 130, stderr
    final = json.loads(rest.splitlines()[-1])
    assert final["event"] == "interrupted"
    assert final["exitCode"] == 130
    pushed, not_pushed = final["pushed"], final["notPushed"]
    assert isinstance(pushed, list)
    assert isinstance(not_pushed, list)
    assert len(pushed) >= 1
    assert len(not_pushed) >= 1
    assert len(pushed) + len(not_pushed) == seen[0]["novel"] == 7
    assert list(spool_root.iterdir()) == []  # spool files and the push's directory removed
    assert "Traceback" not in stderr
    print(f"SIGINT to exit: {stopped_after:.2f} s")

    # A re-run resumes: what was pushed is skipped, the rest uploaded.
    before = len(server.requests)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    again = [json.loads(line) for line in done.stdout.splitlines()]
    assert again[0]["cached"] == len(pushed)
    assert again[0]["novel"] == len(not_pushed)
    uploaded = [r for r in server.requests[before:] if r.startswith("PUT /api/cache/upload/")]
    assert len(uploaded) == len(not_pushed)
    assert again[-1]["substitutable"] is True
