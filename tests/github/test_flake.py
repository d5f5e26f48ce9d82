"""The root flake.nix has the outputs the original offers, checked offline with the real nix.

nixpkgs cannot be fetched here, so its input is overridden with tests/flake-stub, a stand-in for
the nixpkgs attributes the flake uses whose builders check their arguments the way the real ones
need them (and are never built). What this proves: the flake evaluates on every system, has
packages ``default``/``vega``, apps ``default``, ``vega``, ``attest``, ``reproduce`` pointing at
the right programs, a devShell, zstd on the programs' PATH, the version of pyproject.toml. What it
cannot prove: that nixpkgs' real builders build it (docs/github.md says so).

Spec: issue 13 (flake.nix); agent.md §1 (flake apps with zstd on PATH).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import NixRunner

pytestmark = pytest.mark.nix

ROOT = Path(__file__).resolve().parent.parent.parent
STUB = ROOT / "tests" / "flake-stub"
SYSTEMS = ("aarch64-darwin", "aarch64-linux", "x86_64-darwin", "x86_64-linux")


def flake_cmd(nix: NixRunner, flake: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "nix",
            *argv,
            "--no-write-lock-file",
            "--override-input",
            "nixpkgs",
            f"path:{STUB}",
            flake,
        ],
        env=dict(nix.env),
        capture_output=True,
        text=True,
    )


def source_copy(tmp: Path) -> Path:
    """The files the flake reads, as a ``path:`` flake (independent of git state)."""
    copy = tmp / "vega"
    (copy / "src" / "vega").mkdir(parents=True)
    for name in ("flake.nix", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copy(ROOT / "src" / "vega" / "__init__.py", copy / "src" / "vega" / "__init__.py")
    return copy


def test_the_flake_shows_and_checks_with_every_output(nix: NixRunner, tmp_path: Path) -> None:
    flake = f"path:{source_copy(tmp_path)}"
    shown = flake_cmd(nix, flake, "flake", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    outputs = json.loads(shown.stdout)
    assert sorted(outputs) == ["apps", "devShells", "packages"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for system in SYSTEMS:
        assert sorted(outputs["apps"][system]) == ["attest", "default", "reproduce", "vega"]
        assert all(a["type"] == "app" for a in outputs["apps"][system].values())
        assert sorted(outputs["packages"][system]) == ["default", "vega"]
        assert outputs["packages"][system]["default"]["name"] == f"vega-{version}"
        assert sorted(outputs["devShells"][system]) == ["default"]

    checked = flake_cmd(nix, flake, "flake", "check", "--no-build")
    assert checked.returncode == 0, checked.stderr

    def value(attr: str) -> object:
        got = flake_cmd(nix, f"{flake}#{attr}", "eval", "--json")
        assert got.returncode == 0, got.stderr
        return json.loads(got.stdout)

    programs = value("apps.x86_64-linux")
    assert isinstance(programs, dict)
    pkg = value("packages.x86_64-linux.vega.outPath")
    assert {name: app["program"] for name, app in programs.items()} == {
        "default": f"{pkg}/bin/vega",
        "vega": f"{pkg}/bin/vega",
        "attest": f"{pkg}/bin/vega-attest",
        "reproduce": f"{pkg}/bin/vega-reproduce",
    }
    wrapper = value("packages.x86_64-linux.vega.makeWrapperArgs")
    assert isinstance(wrapper, list)
    assert wrapper[:3] == ["--prefix", "PATH", ":"]
    assert wrapper[3].endswith("-zstd/bin")
    assert value("packages.x86_64-linux.vega.srcHasPackage") is True
    # The runtime dependencies are pyproject.toml's, no more, no fewer.
    got = flake_cmd(
        nix,
        f"{flake}#packages.x86_64-linux.vega.dependencies",
        "eval",
        "--json",
        "--apply",
        "map (d: d.pname)",
    )
    assert got.returncode == 0, got.stderr
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).replace(".", "-").lower() for d in wanted}  # type: ignore[union-attr]
    assert set(json.loads(got.stdout)) == names


def test_the_stand_in_refuses_what_nixpkgs_would_refuse(nix: NixRunner, tmp_path: Path) -> None:
    """The check is not vacuous: an application not built from pyproject.toml fails it."""
    copy = source_copy(tmp_path)
    text = (copy / "flake.nix").read_text()
    assert "          pyproject = true;\n" in text
    (copy / "flake.nix").write_text(text.replace("          pyproject = true;\n", ""))
    checked = flake_cmd(nix, f"path:{copy}", "flake", "check", "--no-build")
    assert checked.returncode != 0
    assert "flake-stub: the application is built from pyproject.toml" in checked.stderr
