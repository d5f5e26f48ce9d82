"""Shared fixtures: hermetic HOME/XDG directories and the real Nix, configured as the README says."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "vega", deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow]
)
# scripts/mutation runs each mutant against the tests: fewer examples keep that bearable.
settings.register_profile("mutation", parent=settings.get_profile("vega"), max_examples=25)
settings.load_profile(os.environ.get("VEGA_HYPOTHESIS_PROFILE", "vega"))

NIX_CONFIG = (
    "experimental-features = nix-command flakes\n"
    "substituters =\n"
    "sandbox = true\n"
    "sandbox-paths = /bin/sh=/bin/busybox\n"
)


@dataclass(frozen=True)
class NixRunner:
    """The real nix, with its own XDG_CACHE_HOME (nix-on-this-machine.md)."""

    env: Mapping[str, str]

    def run(self, *argv: str, input: bytes | None = None) -> bytes:
        done = subprocess.run(list(argv), env=dict(self.env), input=input, capture_output=True)
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
            )
        return done.stdout

    def text(self, *argv: str) -> str:
        return self.run(*argv).decode().strip()

    def add(self, path: Path | str) -> str:
        """``nix-store --add``; returns the store path."""
        return self.text("nix-store", "--add", str(path))


@pytest.fixture(autouse=True)
def _hermetic_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """HOME and XDG_* inside a temporary directory for every test (house-style.md §4.10)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
    ):
        monkeypatch.setenv(var, str(home / sub))


@pytest.fixture
def nix(tmp_path_factory: pytest.TempPathFactory) -> NixRunner:
    """The real nix, skipped only where it is not installed (CI installs it)."""
    if shutil.which("nix") is None or shutil.which("nix-store") is None:
        pytest.skip("nix is not installed")
    cache = tmp_path_factory.mktemp("nix-cache")
    env = dict(os.environ, NIX_CONFIG=NIX_CONFIG, XDG_CACHE_HOME=str(cache))
    return NixRunner(env=env)


def run_vega(argv: Sequence[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the installed ``vega`` executable as a user would."""
    exe = shutil.which("vega")
    assert exe is not None, "vega is not installed in this environment"
    return subprocess.run([exe, *argv], input=stdin, capture_output=True)
