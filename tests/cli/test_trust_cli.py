"""cli.md §15 and §16: ``vega trust`` and ``vega view`` against a real development server on loopback."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, dev_server_at
from vega.cli.main import main
from vega.client.trust import nix_conf_edit


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with dev_server_at(tmp_path / "data", dev_polls=0) as server:
        yield server


@pytest.fixture
def enrolled(server: Server, capsys: pytest.CaptureFixture[str]) -> Server:
    assert main(["login", "--url", server.url]) == 0
    capsys.readouterr()
    return server


def edges(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["trust", "list", "--json"]) == 0
    out: list[dict[str, object]] = json.loads(capsys.readouterr().out)["edges"]
    return out


def test_commands_need_a_credential(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["trust", "list"], ["trust", "add", "1", "--yes"], ["view"]):
        assert main(argv) == 1
        assert "not enrolled: this machine has no Vega credential." in capsys.readouterr().err


def test_add_never_auto_confirms_without_a_terminal(
    enrolled: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trust", "add", "bob"]) == 1
    captured = capsys.readouterr()
    assert "You are about to trust builds from:" in captured.out
    assert "error: aborted (no trust edge created)." in captured.err
    assert "vega trust add bob --yes" in captured.err
    assert edges(capsys) == []


def test_add_on_a_terminal_asks(
    enrolled: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["n", " YES "])
    monkeypatch.setattr("builtins.input", lambda _prompt: next(answers))
    assert main(["trust", "add", "bob"]) == 1
    err = capsys.readouterr().err
    assert "aborted (no trust edge created)." in err
    assert "--yes" not in err  # no hint on a terminal
    assert main(["trust", "add", "bob"]) == 0
    assert len(edges(capsys)) == 1


def test_add_list_remove_with_every_scope(enrolled: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trust", "add", "12345", "--yes", "--accept-unreproducible"]) == 0
    out = capsys.readouterr().out
    assert "Builder: 12345 (id 12345)" in " ".join(out.split())
    assert "Risk:" in out
    assert main(["trust", "add", "github:bob", "--yes", "--flake", "Bob/App"]) == 0
    out = capsys.readouterr().out
    assert "for builds with verified provenance from the bob/app flake." in out
    assert main(["trust", "add", "bob", "--yes", "--org", "ACME"]) == 0
    assert main(["trust", "add", "bob", "--yes", "--package", "hello"]) == 0
    capsys.readouterr()
    assert main(["trust", "list"]) == 0
    text = capsys.readouterr().out
    assert "4 trust edge(s):" in text
    assert "builder 12345: all builds (accepts unreproducible builds)" in text
    assert ": builds with verified provenance from any acme repo" in text
    assert ": the hello package" in text
    assert main(["trust", "remove", "bob", "--package", "hello"]) == 0
    assert "Removed trust for bob (the hello package)." in capsys.readouterr().out
    listed = edges(capsys)
    assert len(listed) == 4  # the revoked edge stays as history in --json
    assert sum("revokedAt" in e for e in listed) == 1
    assert main(["trust", "list"]) == 0
    assert "3 trust edge(s):" in capsys.readouterr().out


def test_list_with_no_edges_suggests_adding_one(enrolled: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trust", "list"]) == 0
    assert "vega trust add <github-user>" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bob", "--package", "a", "--org", "b"], "use at most one of --package, --flake, --org"),
        (["bob", "--flake", "nope"], "--flake must be a GitHub owner/repo"),
        (["bob", "--org", "a/b"], "--org must be a GitHub owner"),
        (["bob", "--package", " "], "--package must not be empty"),
        (["bob", "--package", "a/b"], "--package must be a store-path name"),
        (["bad--login", "--yes"], "could not resolve GitHub user 'bad--login': 404"),
        (["github:", "--yes"], "could not resolve GitHub user 'github:'"),
    ],
)
def test_add_refuses(
    enrolled: Server, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["trust", "add", *argv]) == 1
    assert message in capsys.readouterr().err


def test_view_prints_nix_conf_and_json(enrolled: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view"]) == 0
    text = capsys.readouterr().out
    assert "Vega view for vega-dev" in text
    assert f"  extra-substituters = {enrolled.url}/u/" in text
    assert "  extra-trusted-public-keys = vega-view-1000001-1:" in text
    assert "social" in text
    assert main(["view", "--format", "json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["substituters"] == f"{view['substituter']} https://cache.nixos.org"
    assert view["trustedPublicKeys"].split()[:2] == [view["viewKey"], view["sharedKey"]]
    assert main(["view", "--format", "yaml"]) == 1
    err = capsys.readouterr().err
    assert "unknown --format: yaml" in err
    assert "vega view --format nix-conf" in err


def test_view_write_is_idempotent_shows_a_diff_and_follows_rotation(
    enrolled: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    conf = Path(os.environ["XDG_CONFIG_HOME"]) / "nix" / "nix.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("experimental-features = nix-command flakes\n")
    assert main(["view", "--write", "--dry-run"]) == 0
    assert "+extra-substituters = " in capsys.readouterr().out
    assert conf.read_text() == "experimental-features = nix-command flakes\n"

    assert main(["view", "--write"]) == 0  # default: $XDG_CONFIG_HOME/nix/nix.conf
    out = capsys.readouterr().out
    assert "+extra-trusted-public-keys = vega-view-1000001-1:" in out
    first = conf.read_text()
    assert first.startswith("experimental-features = nix-command flakes\n# added by vega view\n")
    assert main(["view", "--write"]) == 0
    assert "already has your view; nothing changed." in capsys.readouterr().out
    assert conf.read_text() == first

    assert main(["view", "--rotate", "--write"]) == 0
    captured = capsys.readouterr()
    assert "rotated" in captured.err
    assert "-extra-substituters = " in captured.out
    rotated = conf.read_text()
    assert rotated != first
    assert sum(line.startswith("extra-substituters = ") for line in rotated.splitlines()) == 1
    assert sum(line.startswith("extra-trusted-public-keys = ") for line in rotated.splitlines()) == 1

    other = tmp_path / "other.conf"
    assert main(["view", "--write", str(other)]) == 0
    assert "extra-substituters" in other.read_text()


def test_nix_conf_edit_keeps_everything_else() -> None:
    lines = ["extra-substituters = https://c/u/NEW", "extra-trusted-public-keys = k1 k2"]
    text = "a = 1\nextra-substituters = https://c/u/OLD\nextra-substituters = https://other/u/X\nb = 2"
    edit = nix_conf_edit(text, "https://c", lines)
    assert edit.after.splitlines() == [
        "a = 1",
        "extra-substituters = https://other/u/X",
        "b = 2",
        "# added by vega view",
        *lines,
    ]
    assert nix_conf_edit(edit.after, "https://c", lines).changed is False
    assert nix_conf_edit("", "https://c", lines).after == "# added by vega view\n" + "\n".join(lines) + "\n"
    assert edit.diff("nix.conf").startswith("--- nix.conf (before)")


def test_view_write_refuses_a_symlinked_nix_conf(
    enrolled: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "managed.conf"
    target.write_text("a = 1\n")
    link = tmp_path / "nix.conf"
    link.symlink_to(target)
    assert main(["view", "--write", str(link)]) == 1
    assert "is a symlink" in capsys.readouterr().err
    assert target.read_text() == "a = 1\n"
    assert link.is_symlink()
