"""Issue 8 end to end: trust edges and a personal view, with the real nix and the real CLI.

Story: builder B pushes a tiny flake (tests/with_nix/flakes/push) into B's own namespace; it is
not promoted. User A (the development user) asks for A's view: the real ``nix copy --from`` A's
view cannot substitute B's path. After ``vega trust add bob --yes`` it can, verified by A's view
key alone; ``vega verify`` through the view accepts it and says it is a social binding. After
``vega trust remove bob`` (fresh narinfo cache) it is refused again. A rotated token stops
working on the next request. Two trusted builders that disagree about a path: the view serves
neither, and ``vega verify`` through the view says why.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import NixRunner
from tests.e2e.conftest import Server, dev_server_at
from tests.server.cachekit import Output
from vega.cli.main import main
from vega.client.credentials import Credential, remember_credential, save_credential

FLAKE = Path(__file__).parent.parent / "with_nix" / "flakes" / "push"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with dev_server_at(tmp_path / "data", dev_polls=0, backlog=64) as server:
        yield server


def as_user(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Switch the CLI to another user's HOME (and XDG config dir)."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))


def enrol_builder(server: Server, monkeypatch: pytest.MonkeyPatch, home: Path, login: str) -> tuple[str, str]:
    """A second owner (the dev mode approves one user only): a credential the server issued, stored."""
    user_id = str(httpx2.get(f"{server.url}/api/v3/users/{login}").json()["id"])
    token, issued = server.auth._credentials.issue(user_id, login)
    cred = Credential(
        credential=token, login=login, user_id=user_id, expires_at_ms=issued.expires_at_ms, url=server.url
    )
    as_user(monkeypatch, home)
    config = home / ".config" / "vega"
    save_credential(config / "credential", cred)
    remember_credential(config, cred)
    return user_id, token


def push_raw(server: Server, credential: str, out: Output) -> None:
    """Push a synthetic output through the HTTP API (upload URL, presigned PUT, push)."""
    headers = {"authorization": f"Bearer {credential}"}
    with httpx2.Client(base_url=server.url) as c:
        r = c.post(
            "/api/cache/upload-url", headers=headers, json={"narUrl": out.nar_url, "fileHash": out.file_hash}
        )
        assert r.status_code == 200, r.text
        import hashlib

        checksum = base64.b64encode(hashlib.sha256(out.compressed).digest()).decode()
        put = c.put(r.json()["url"], content=out.compressed, headers={"x-amz-checksum-sha256": checksum})
        assert put.status_code == 200, put.text
        pushed = c.post("/api/cache/push", headers=headers, json=out.body())
        assert pushed.status_code == 200, pushed.text


class Copier:
    """The real ``nix copy --from`` into a fresh store with a fresh narinfo cache every time."""

    def __init__(self, nix: NixRunner, tmp: Path) -> None:
        self.nix, self.tmp, self.n = nix, tmp, 0

    def __call__(self, substituter: str, keys: str, path: str) -> subprocess.CompletedProcess[bytes]:
        self.n += 1
        env = dict(self.nix.env, XDG_CACHE_HOME=str(self.tmp / f"nix-cache-{self.n}"))
        return subprocess.run(
            [
                "nix",
                "copy",
                "--from",
                substituter,
                "--to",
                str(self.tmp / f"store-{self.n}"),
                "--option",
                "trusted-public-keys",
                keys,
                path,
            ],
            env=env,
            capture_output=True,
        )


def view_json(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, str]:
    capsys.readouterr()
    assert main(["view", "--format", "json", *extra]) == 0
    out: dict[str, str] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return out


@pytest.mark.nix
def test_trust_then_nix_substitutes_through_the_view_until_revoked(
    server: Server,
    nix: NixRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    home_a = Path(os.environ["HOME"])

    # Builder B pushes into B's own namespace (not promoted: no CI, no reproduction).
    enrol_builder(server, monkeypatch, tmp_path / "home-b", "bob")
    flake = tmp_path / "flake"
    shutil.copytree(FLAKE, flake)
    (flake / "seed.txt").write_text(f"trust e2e {time.time_ns()}\n")
    assert main(["push", "--json", "--upstream", server.url, f"path:{flake}#default"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    app_path = next(
        e["path"] for e in events if e["event"] == "pushed" and e["path"].endswith("-vega-push-app")
    )
    hash_part = app_path.removeprefix("/nix/store/")[:32]
    assert httpx2.get(f"{server.url}/{hash_part}.narinfo").status_code == 404  # not in the shared tier

    # User A: enrolled through the device flow; A's view.
    as_user(monkeypatch, home_a)
    assert main(["login", "--url", server.url]) == 0
    view = view_json(capsys)
    sub, view_key = view["substituter"], view["viewKey"]
    assert sub.startswith(f"{server.url}/u/")
    assert view_key.startswith("vega-view-")
    copy = Copier(nix, tmp_path)

    refused = copy(sub, view_key, app_path)
    assert refused.returncode != 0
    assert b"no substituter that can build it" in refused.stderr

    capsys.readouterr()
    assert main(["trust", "add", "bob", "--yes"]) == 0
    text = capsys.readouterr().out
    assert "Builder: bob (id " in " ".join(text.split())
    assert "You now trust builds from bob for all builds." in text

    done = copy(sub, view_key, app_path)  # verified by A's view key alone
    assert done.returncode == 0, done.stderr.decode()
    copied = tmp_path / f"store-{copy.n}" / app_path.removeprefix("/")
    assert (copied / "bin" / "app").read_text().startswith("#!/bin/sh")

    capsys.readouterr()
    assert main(["verify", app_path, "--url", sub, "--public-key", view_key]) == 0
    out = capsys.readouterr().out
    assert "Verified through your view" in out
    assert "social binding" in out

    assert main(["trust", "list", "--json"]) == 0
    edges = json.loads(capsys.readouterr().out)["edges"]
    assert [e["scope"] for e in edges] == [{"kind": "all"}]

    assert main(["trust", "remove", "bob"]) == 0
    assert "Removed trust for bob (all builds)." in capsys.readouterr().out
    again = copy(sub, view_key, app_path)  # fresh narinfo cache and store
    assert again.returncode != 0
    assert b"no substituter that can build it" in again.stderr

    # Rotation: the old token stops working on the next request.
    rotated = view_json(capsys, "--rotate")
    assert rotated["substituter"] != sub
    assert rotated["viewKey"] == view_key
    assert httpx2.get(f"{sub}/nix-cache-info").status_code == 404
    assert httpx2.get(f"{rotated['substituter']}/nix-cache-info").status_code == 200


def test_conflicting_builders_are_not_served_and_verify_says_why(
    server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home_a = Path(os.environ["HOME"])
    bob, bob_token = enrol_builder(server, monkeypatch, tmp_path / "home-b", "bob")
    carol, carol_token = enrol_builder(server, monkeypatch, tmp_path / "home-c", "carol")
    one, two = Output("clash", b"bob's bytes\n"), Output("clash", b"carol's bytes\n")
    push_raw(server, bob_token, one)
    push_raw(server, carol_token, two)

    as_user(monkeypatch, home_a)
    assert main(["login", "--url", server.url]) == 0
    view = view_json(capsys)
    assert main(["trust", "add", bob, "--yes"]) == 0
    assert main(["trust", "add", "github:carol", "--yes", "--package", "clash"]) == 0
    capsys.readouterr()
    assert (
        main(["verify", one.store_path, "--url", view["substituter"], "--public-key", view["viewKey"]]) == 1
    )
    err = capsys.readouterr().err
    assert "disagree" in err
    assert bob in err
    assert carol in err

    # Without the disagreeing edge, B's binding is served and verifies.
    assert main(["trust", "remove", "carol", "--package", "clash"]) == 0
    capsys.readouterr()
    assert (
        main(["verify", one.store_path, "--url", view["substituter"], "--public-key", view["viewKey"]]) == 0
    )
