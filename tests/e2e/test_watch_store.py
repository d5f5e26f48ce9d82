"""Issue 12: ``vega watch-store`` pushes what nix builds while it watches, and stops cleanly.

A real ``vega watch-store`` process polls the real Nix database; the real nix builds a fresh
two-path flake meanwhile; both outputs reach the namespace on a real dev server (a fresh client
fetches their narinfo), the ``.drv`` files do not; SIGTERM ends it with exit 0 and a ``stopped``
event, and SIGINT does the same.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import NixRunner
from tests.e2e.conftest import Server, dev_server_at
from vega.cli.main import main
from vega.client.watch import NixDb
from vega.errors import ConfigError

PUSH = Path(__file__).parent.parent / "with_nix" / "flakes" / "push"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with dev_server_at(tmp_path / "data", dev_polls=0, backlog=64) as server:
        yield server


def vega_exe() -> str:
    exe = Path(sys.executable).parent / "vega"
    return str(exe) if exe.exists() else shutil.which("vega") or "vega"


def test_nix_db_reads_new_valid_paths_in_bounded_batches(tmp_path: Path) -> None:
    """The watcher's only state is the last id; each poll reads at most ``limit`` rows."""
    db = tmp_path / "db.sqlite"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE ValidPaths (id integer primary key autoincrement not null, path text unique not null,"
        " hash text not null, registrationTime integer not null)"
    )
    for k in range(5):
        conn.execute("INSERT INTO ValidPaths (path, hash, registrationTime) VALUES (?, 'h', 0)", (f"/p{k}",))
    conn.commit()
    conn.close()
    nixdb = NixDb(db)
    assert nixdb.high_water() == 5
    assert nixdb.since(0, 2) == [(1, "/p0"), (2, "/p1")]
    assert nixdb.since(2, 10) == [(3, "/p2"), (4, "/p3"), (5, "/p4")]
    assert nixdb.since(5, 10) == []


def test_an_unreadable_database_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "db.sqlite"
    with pytest.raises(ConfigError) as e:
        NixDb(missing).high_water()
    assert e.value.message.startswith(f"cannot read the Nix database at {missing}")
    assert e.value.next_steps


@pytest.mark.nix
@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_watch_store_pushes_what_nix_builds_meanwhile_and_stops_cleanly(
    stop_with: signal.Signals,
    server: Server,
    nix: NixRunner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["login", "--url", server.url]) == 0
    capsys.readouterr()
    flake = tmp_path / "flake"
    shutil.copytree(PUSH, flake)
    (flake / "seed.txt").write_text(f"watch {time.time_ns()} {stop_with}\n")
    spool_root = tmp_path / "tmp"
    spool_root.mkdir()
    env = dict(os.environ, TMPDIR=str(spool_root), PYTHONUNBUFFERED="1")
    argv = [vega_exe(), "watch-store", "--json", "--interval", "0.2", "--upstream", server.url]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "watching"
        built = json.loads(nix.run("nix", "build", "--json", "--no-link", f"path:{flake}#default"))
        app = built[0]["outputs"]["out"]
        closure = set(nix.text("nix-store", "-qR", app).split())
        assert len(closure) == 2
        pushed: set[str] = set()
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "pushed":
                pushed.add(str(event["path"]))
            if closure <= pushed:
                break
        proc.send_signal(stop_with)
        rest = [json.loads(line) for line in proc.stdout.read().splitlines()]
        code = proc.wait(timeout=60)
        stderr = proc.stderr.read()
    assert code == 0, stderr
    assert rest[-1]["event"] == "stopped"
    assert rest[-1]["notPushed"] == []
    assert rest[-1]["pushed"] >= 2  # ours, and whatever else nix registered meanwhile
    assert rest[-1]["uploadedBytes"] > 0
    assert not any(p.endswith(".drv") for p in pushed)
    assert list(spool_root.iterdir()) == []
    assert "Traceback" not in stderr
    namespace = next(r for r in server.requests if "/tenant/owner:" in r).split("/tenant/")[1].split("/")[0]
    with httpx2.Client() as fresh:
        for path in closure:
            name = path.removeprefix("/nix/store/").split("-")[0]
            resp = fresh.get(f"{server.url}/tenant/{namespace}/{name}.narinfo")
            assert resp.status_code == 200
            assert f"StorePath: {path}" in resp.text
