"""Trusted keys read from the real nix (cli.md §1.6): `nix config show`, or `nix show-config` on Nix 2.8."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import NixRunner
from vega.client.cache import load_trusted_keys
from vega.core.signing import format_public_key, generate_secret_key


@pytest.mark.nix
def test_keys_come_from_the_real_nix_configuration(nix: NixRunner, tmp_path: Path) -> None:
    ours = format_public_key(generate_secret_key("vega-cache-1", b"\x07" * 32).public)
    env = dict(nix.env, NIX_CONFIG=nix.env["NIX_CONFIG"] + f"trusted-public-keys = {ours}\n")

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(list(argv), env=env, capture_output=True, check=False)

    keys = load_trusted_keys(run, [tmp_path / "none.conf"])
    assert format_public_key(keys["vega-cache-1"]) == ours
