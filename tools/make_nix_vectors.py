"""Regenerate tests/vectors/nix/signing with the real nix: keys, signatures and narinfo files.

Usage (needs nix, as scripts/setup installs it)::

    . scripts/nix-env && python -m tools.make_nix_vectors

What it writes under ``tests/vectors/nix/signing/`` (every file is made by nix, except the
derived secret keys, which only our §2.6 derivation can produce):

* ``keys.json``: secret keys from ``nix key generate-secret`` and the public key
  ``nix key convert-secret-to-public`` gives for each.
* ``signatures.json``: for each key and each path of a fresh two-path closure, the path's
  ``nix path-info --json`` fields and the signature ``nix store sign`` added.
* ``derived.json``: a master key from nix, the keys §2.6 derives from it, the public key nix
  computes for each derived secret, and the signature nix makes with it.
* ``narinfo/<compression>/<hash>.narinfo`` from ``nix copy --to file://…`` of the signed
  closure (and of a signed content-addressed path), and ``narinfo.json`` describing them.

The closure's derivations carry a random nonce, so its paths are new to the store and carry
no signature from an earlier run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from vega.core import signing
from vega.core.storepath import parse_store_path

NIX_CONFIG = (
    "experimental-features = nix-command flakes\n"
    "substituters =\n"
    "sandbox = true\n"
    "sandbox-paths = /bin/sh=/bin/busybox\n"
)
FLAKE = """{
  outputs = { self }: let
    system = "%(system)s";
    dep = derivation {
      name = "vega-vector-dep"; inherit system; builder = "/bin/sh";
      args = [ "-c" "echo %(nonce)s > $out" ];
    };
  in {
    packages.${system}.top = derivation {
      name = "vega-vector-top"; inherit system; builder = "/bin/sh";
      args = [ "-c" "mkdir $out; echo ${dep} > $out/dep; echo $out > $out/self; echo %(nonce)s > $out/n" ];
    };
  };
}
"""
KEY_NAMES = ("test-1", "cache.example.org-1", "vega-cache-1")
COMPRESSIONS = ("zstd", "none", "xz", "bzip2")
DERIVED = (
    ("tenant", "jasonodoom/nixos-configs"),
    ("tenant", "owner:583231"),
    ("enroll", ""),
    ("view", "ab12"),
)


class Nix:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, *argv: str, stdin: bytes | None = None) -> bytes:
        done = subprocess.run(list(argv), env=self.env, input=stdin, capture_output=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        return done.stdout

    def path_info(self, *paths: str) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.run("nix", "path-info", "--json", "--sigs", *paths))
        return {row["path"]: row for row in rows}


def _signed_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("path", "narHash", "narSize", "references")}


def _key(nix: Nix, work: Path, name: str) -> tuple[Path, str, str]:
    secret = nix.run("nix", "key", "generate-secret", "--key-name", name).decode()
    public = nix.run("nix", "key", "convert-secret-to-public", stdin=secret.encode()).decode()
    path = work / f"{name}.sec"
    path.write_text(secret)
    return path, secret, public


def _closure(nix: Nix, work: Path) -> tuple[str, str]:
    flake = work / "flake"
    flake.mkdir()
    nonce = secrets.token_hex(8)
    (flake / "flake.nix").write_text(FLAKE % {"system": f"{platform.machine()}-linux", "nonce": nonce})
    built = json.loads(nix.run("nix", "build", f"path:{flake}#top", "--json", "--no-link"))
    top: str = built[0]["outputs"]["out"]
    (dep,) = (p for p in nix.run("nix-store", "-qR", top).decode().split() if p != top)
    return top, dep


def _derive(master: signing.SecretKey, kind: str, arg: str) -> signing.SecretKey:
    if kind == "tenant":
        return signing.tenant_key(master, arg)
    if kind == "view":
        return signing.view_key(master, arg)
    return signing.enroll_key(master)


def generate(out: Path, nix: Nix, work: Path) -> None:
    top, dep = _closure(nix, work)
    keys = [_key(nix, work, name) for name in KEY_NAMES]
    for key_file, _, _ in keys:
        nix.run("nix", "store", "sign", "--key-file", str(key_file), top, dep)
    rows = nix.path_info(top, dep)

    signatures: list[dict[str, Any]] = []
    for _, _secret, public in keys:
        name = public.partition(":")[0]
        for path in (top, dep):
            (sig,) = (s for s in rows[path]["signatures"] if s.startswith(name + ":"))
            signatures.append({"public": public, "pathInfo": _signed_fields(rows[path]), "signature": sig})

    _, master_text, _ = keys[KEY_NAMES.index("vega-cache-1")]
    master = signing.parse_secret_key(master_text)
    derived: list[dict[str, Any]] = []
    for kind, arg in DERIVED:
        key = _derive(master, kind, arg)
        key_file = work / f"derived-{len(derived)}.sec"
        key_file.write_text(signing.format_secret_key(key))
        nix.run("nix", "store", "sign", "--key-file", str(key_file), top)
        row = nix.path_info(top)[top]
        (sig,) = (s for s in row["signatures"] if s.startswith(key.name + ":"))
        derived.append(
            {
                "master": master_text,
                "kind": kind,
                "arg": arg,
                "secret": signing.format_secret_key(key),
                "public": nix.run(
                    "nix", "key", "convert-secret-to-public", stdin=key_file.read_bytes()
                ).decode(),
                "pathInfo": _signed_fields(row),
                "signature": sig,
            }
        )

    source = work / "hello.txt"
    source.write_text(f"vega vector {secrets.token_hex(8)}\n")
    ca_path = nix.run("nix-store", "--add", str(source)).decode().strip()
    nix.run("nix", "store", "sign", "--key-file", str(keys[0][0]), ca_path)

    narinfo_dir = out / "narinfo"
    shutil.rmtree(narinfo_dir, ignore_errors=True)
    entries: list[dict[str, Any]] = []
    final_rows = nix.path_info(top, dep, ca_path)
    for compression in COMPRESSIONS:
        cache = work / f"cache-{compression}"
        paths = (top, dep, ca_path) if compression == "none" else (top, dep)
        nix.run("nix", "copy", "--to", f"file://{cache}?compression={compression}", *paths)
        (narinfo_dir / compression).mkdir(parents=True)
        for path in paths:
            name = parse_store_path(path).hash_part + ".narinfo"
            shutil.copyfile(cache / name, narinfo_dir / compression / name)
            entries.append(
                {
                    "file": f"{compression}/{name}",
                    "pathInfo": _signed_fields(final_rows[path]),
                    "signatures": final_rows[path]["signatures"],
                }
            )

    def dump(name: str, data: object) -> None:
        (out / name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")

    dump("keys.json", [{"secret": s, "public": p} for _, s, p in keys])
    dump("signatures.json", signatures)
    dump("derived.json", derived)
    dump("narinfo.json", {"publicKeys": [p for _, _, p in keys], "narinfos": entries})
    version = nix.run("nix", "--version").decode().strip()
    (out / "README.md").write_text(
        "# Nix signing and narinfo vectors\n\n"
        f"Generated by `tools/make_nix_vectors.py` with `{version}`; do not edit by hand.\n"
        "Regenerate: `. scripts/nix-env && python -m tools.make_nix_vectors`.\n"
        "Read by tests/core/test_signing.py and tests/core/test_narinfo.py; the tool's docstring\n"
        "says what each file holds.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("tests/vectors/nix/signing"))
    args = parser.parse_args(argv)
    if shutil.which("nix") is None:
        sys.exit("nix is not installed (see scripts/setup)")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vega-vectors-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, XDG_CACHE_HOME=str(work / "xdg-cache"))
        env.setdefault("NIX_CONFIG", NIX_CONFIG)
        generate(args.out, Nix(env), work)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
