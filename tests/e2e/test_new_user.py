"""Issue 12's new-user path: log in to a self-hosted server once, then push, verify and view
without typing ``--url`` again, and never contact any other host.

Every HTTP client of the CLI honours the proxy variables; they point at a recording proxy on
loopback (loopback itself is exempt), so any request for another host is recorded, and refused.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import NixRunner
from tests.e2e.conftest import Server, dev_server_at
from vega.cli.main import main

FLAKE = Path(__file__).parent.parent / "with_nix" / "flakes" / "push"
pytestmark = pytest.mark.nix


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def _refuse(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_error(502, "no other host from a self-hosted test")

    do_GET = do_HEAD = do_POST = do_PUT = do_CONNECT = _refuse

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A recording proxy for every non-loopback host; yields what it was asked for."""
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("VEGA_URL", raising=False)
    try:
        yield seen
    finally:
        proxy.shutdown()
        proxy.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with dev_server_at(tmp_path / "data", dev_polls=0, backlog=64) as server:
        yield server


def test_log_in_once_then_push_verify_and_view_without_url(
    server: Server,
    elsewhere: list[str],
    nix: NixRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    flake = tmp_path / "flake"
    shutil.copytree(FLAKE, flake)
    (flake / "seed.txt").write_text(f"new user {time.time_ns()}\n")

    assert main(["login", "--url", server.url]) == 0  # the only --url
    capsys.readouterr()

    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["controlPlane"], status["credential"]) == (server.url, "valid")

    # --upstream: the default asks cache.nixos.org which paths it already has
    assert main(["push", "--json", "--upstream", server.url, f"path:{flake}#default"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    pushed = [e["path"] for e in events if e["event"] == "pushed"]
    assert len(pushed) == 2

    # verify goes to the server the user logged in to (its owner namespace is not the shared tier);
    # the namespace key is not in nix.conf, so the served key needs the explicit flag (issue 12)
    code = main(["verify", "--json", "--trust-fetched-key", pushed[-1]])
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["storePath"] == pushed[-1]
    assert report["signature"]["ok"] is True  # found in the owner namespace of that server
    assert report["signature"]["keySource"] == "fetched, not pinned"
    assert any(r.startswith("GET /tenant/owner:1000001/") for r in server.requests)
    assert code in (0, 1)  # signature-only: not promoted, and verify says so

    assert main(["view", "--format", "json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert server.url in json.dumps(view)

    assert main(["whoami", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["controlPlane"] == server.url
    assert elsewhere == [], f"requests for other hosts: {elsewhere}"
