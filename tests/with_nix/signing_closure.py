"""A fresh two-path closure built by the real nix, for the signing and narinfo differential tests.

Each call writes a flake without nixpkgs whose derivations carry a random nonce, so the
paths are new to the store and carry no signatures from earlier runs: ``top`` refers to
itself and to ``dep``; ``dep`` has no references.
"""

from __future__ import annotations

import json
import platform
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import NixRunner
from vega.core import signing
from vega.core.hashes import HashAlgorithm, parse_nix_hash
from vega.core.narinfo import SignedFields
from vega.core.storepath import parse_store_path

FLAKE = """{
  outputs = { self }: let
    system = "%(system)s";
    dep = derivation {
      name = "vega-sig-dep"; inherit system; builder = "/bin/sh";
      args = [ "-c" "echo %(nonce)s > $out" ];
    };
  in {
    packages.${system}.top = derivation {
      name = "vega-sig-top"; inherit system; builder = "/bin/sh";
      args = [ "-c" "mkdir $out; echo ${dep} > $out/dep; echo $out > $out/self; echo %(nonce)s > $out/n" ];
    };
  };
}
"""


@dataclass(frozen=True)
class Closure:
    top: str
    """Absolute path of the output that refers to itself and to ``dep``."""
    dep: str
    """Absolute path of its dependency, which has no references."""

    @property
    def paths(self) -> tuple[str, str]:
        return (self.top, self.dep)


def build_closure(nix: NixRunner, workdir: Path) -> Closure:
    flake = workdir / "flake"
    flake.mkdir(parents=True)
    system = f"{platform.machine()}-linux"
    (flake / "flake.nix").write_text(FLAKE % {"system": system, "nonce": secrets.token_hex(8)})
    built = json.loads(nix.run("nix", "build", f"path:{flake}#top", "--json", "--no-link"))
    top = built[0]["outputs"]["out"]
    closure = nix.text("nix-store", "--query", "--requisites", top).split()
    (dep,) = (p for p in closure if p != top)
    return Closure(top=top, dep=dep)


def new_nix_key(nix: NixRunner, workdir: Path, name: str = "test-1") -> tuple[Path, str]:
    """``nix key generate-secret``; returns the key file and its exact text."""
    text = nix.run("nix", "key", "generate-secret", "--key-name", name).decode()
    path = workdir / f"{name}.sec"
    path.write_text(text)
    return path, text


def write_key_file(workdir: Path, key: signing.SecretKey) -> Path:
    path = workdir / f"{key.name}.sec"
    path.write_text(signing.format_secret_key(key))
    return path


def path_info(nix: NixRunner, *paths: str) -> dict[str, dict[str, Any]]:
    """``nix path-info --json --sigs``, by path."""
    rows = json.loads(nix.run("nix", "path-info", "--json", "--sigs", *paths))
    return {row["path"]: row for row in rows}


def signed_fields_of(row: dict[str, Any]) -> SignedFields:
    """What the signature covers, taken from Nix's JSON (narHash is SRI there)."""
    return SignedFields(
        store_path=parse_store_path(row["path"]),
        nar_hash=parse_nix_hash(row["narHash"], HashAlgorithm.SHA256),
        nar_size=row["narSize"],
        references=tuple(parse_store_path(r) for r in row["references"]),
    )
