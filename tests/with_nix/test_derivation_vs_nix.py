"""Derivations (ATerm .drv) against the real nix: parse, re-render byte for byte, .drv and output paths.

Builds tests/with_nix/flakes/simple (no nixpkgs: two input-addressed derivations, one with two
outputs, depending on three fixed-output ones, a text file and a source path), then checks every
.drv in the closure; then instantiates freshly generated derivations with awkward strings.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import NIX_CONFIG, NixRunner
from vega.core.derivation import (
    Derivation,
    derivation_bytes,
    derivation_path,
    hash_derivation_modulo,
    output_paths,
    parse_derivation,
)
from vega.core.storepath import parse_store_path

pytestmark = pytest.mark.nix

FLAKE = Path(__file__).parent / "flakes" / "simple"


def read_drv(path: str) -> Derivation:
    return parse_derivation(Path(path).read_bytes())


def check_drv(path: str, cache: dict[str, bytes]) -> Derivation:
    """Parse, re-render, and recompute the .drv path and every output path of one .drv file."""
    raw = Path(path).read_bytes()
    drv = parse_derivation(raw)
    assert derivation_bytes(drv) == raw, path
    sp = parse_store_path(path)
    name = sp.name.removesuffix(".drv")
    assert derivation_path(drv, name) == sp, path
    computed = output_paths(drv, read_drv, name=name, cache=cache)
    assert computed == {out_name: out.path for out_name, out in drv.outputs}, path
    return drv


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    """`nix build` of the flake, once per module (the `nix` fixture is per test)."""
    if shutil.which("nix") is None:
        pytest.skip("nix is not installed")
    env = dict(os.environ, NIX_CONFIG=NIX_CONFIG, XDG_CACHE_HOME=str(tmp_path_factory.mktemp("nix-cache")))
    argv = ["nix", "build", f"path:{FLAKE}#top", f"path:{FLAKE}#fodTree", "--json", "--no-link"]
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result: list[dict[str, object]] = json.loads(done.stdout)
    return result


def test_flake_closure(nix: NixRunner, built: list[dict[str, object]]) -> None:
    top_drv = next(str(b["drvPath"]) for b in built if str(b["drvPath"]).endswith("-vega-top.drv"))
    closure = nix.text("nix-store", "-qR", "--include-outputs", top_drv).split()
    drvs = [p for p in closure if p.endswith(".drv")]
    assert len(drvs) == 5  # top, base, and the three fixed-output derivations
    shown = json.loads(nix.run("nix", "show-derivation", "-r", top_drv))
    assert sorted(shown) == sorted(drvs)
    cache: dict[str, bytes] = {}
    kinds = set()
    for path in drvs:
        drv = check_drv(path, cache)
        info = shown[path]
        # Every field agrees with nix's own reading of the file.
        assert {k: v.path.absolute for k, v in drv.outputs if v.path} == {
            k: v["path"] for k, v in info["outputs"].items()
        }
        assert {k: (v.hash_algo, v.hash) for k, v in drv.outputs} == {
            k: (v.get("hashAlgo", ""), v.get("hash", "")) for k, v in info["outputs"].items()
        }
        assert {p.absolute: list(o) for p, o in drv.input_drvs} == info["inputDrvs"]
        assert [p.absolute for p in drv.input_srcs] == info["inputSrcs"]
        assert (drv.platform, drv.builder, list(drv.args)) == (info["system"], info["builder"], info["args"])
        assert dict(drv.env) == info["env"]
        kinds.add(
            "fixed-recursive"
            if drv.is_fixed_output and drv.output("out").recursive
            else "fixed-flat"
            if drv.is_fixed_output
            else f"input-addressed-{len(drv.outputs)}"
        )
    assert kinds == {"fixed-recursive", "fixed-flat", "input-addressed-1", "input-addressed-2"}
    # What `nix build --json` reported.
    for item in built:
        drv_path = str(item["drvPath"])
        outputs = item["outputs"]
        assert isinstance(outputs, dict)
        got = output_paths(read_drv(drv_path), read_drv, cache=cache)
        assert {k: v.absolute for k, v in got.items()} == outputs
        for out_path in outputs.values():
            assert Path(out_path).exists()


def nix_string(text: str) -> str:
    return (
        '"'
        + text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("${", "\\${")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        + '"'
    )


def test_fresh_derivations(nix: NixRunner, built: list[dict[str, object]], tmp_path: Path) -> None:
    """Derivations nix has never seen, with strings needing every escape; nix instantiates them."""
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    alphabet = 'ab"\\\n\r\t $/{}é☃'
    exprs = []
    for i in range(6):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        outputs = rng.choice([["out"], ["out", "dev"], ["bin", "lib", "out"]])
        dep = rng.choice(["base", "base.dev", "fod", "fodTree", "top"])
        exprs.append(
            f'(derivation {{ name = "vega-fresh-{seed}-{i}"; system = builtins.currentSystem;'
            f' builder = "/bin/sh"; args = [ "-c" {nix_string(value)} "${{pkgs.{dep}}}" ];'
            f" outputs = [ {' '.join(map(nix_string, outputs))} ];"
            f" weird = {nix_string(value[::-1])}; src = ./data-{i}.txt; }})"
        )
        (tmp_path / f"data-{i}.txt").write_text(value)
    expr = (
        f'let pkgs = (builtins.getFlake "path:{FLAKE}").packages.${{builtins.currentSystem}}; in '
        "map (d: { drv = d.drvPath; outs = builtins.listToAttrs"
        " (map (o: { name = o; value = d.${o}.outPath; }) d.outputs); }) "
        f"[ {' '.join(exprs)} ]"
    )
    (tmp_path / "fresh.nix").write_text(expr)
    got = json.loads(nix.run("nix", "eval", "--impure", "--json", "--file", str(tmp_path / "fresh.nix")))
    cache: dict[str, bytes] = {}
    for item in got:
        drv = check_drv(item["drv"], cache)
        computed = output_paths(drv, read_drv, cache=cache)
        assert {k: v.absolute for k, v in computed.items()} == item["outs"], f"seed {seed}"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"Latin-1: \xe4\xf6\xfc\xdf \xe9t\xe9", id="latin1"),
        pytest.param(b"CP1252: \x80 \x8a \x93quoted\x94 \x9f", id="cp1252"),
        pytest.param(b"mixed: \xc3\xa4 UTF-8 then \xe4 Latin-1", id="mixed"),
    ],
)
def test_non_utf8_strings(nix: NixRunner, tmp_path: Path, raw: bytes) -> None:
    """issue 14: Nix strings are bytes; a .nix file written in Latin-1 or CP1252 gives a .drv
    that is not UTF-8. Its .drv path and output paths (also of a derivation depending on it,
    through the modulo hash) are computed from the same bytes as Nix."""
    nonce = os.urandom(6).hex()
    expr = (
        b'let dep = derivation { name = "vega-bytes-dep-' + nonce.encode() + b'";'
        b' system = builtins.currentSystem; builder = "/bin/sh";'
        b' args = [ "-c" "echo \'' + raw + b'\' > $out" ]; chars = "' + raw + b'"; };'
        b' top = derivation { name = "vega-bytes-top-' + nonce.encode() + b'";'
        b' system = builtins.currentSystem; builder = "/bin/sh";'
        b' args = [ "-c" "cat ${dep} > $out" ]; note = "' + raw + b'"; };'
        b" in map (d: { drv = d.drvPath; out = d.outPath; }) [ dep top ]"
    )
    (tmp_path / "bytes.nix").write_bytes(expr)
    got = json.loads(nix.run("nix", "eval", "--impure", "--json", "--file", str(tmp_path / "bytes.nix")))
    cache: dict[str, bytes] = {}
    for item in got:
        data = Path(item["drv"]).read_bytes()
        assert raw in data
        data.decode("latin-1")  # always possible; the point is the next line
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        drv = check_drv(item["drv"], cache)
        assert {k: v.absolute for k, v in output_paths(drv, read_drv, cache=cache).items()} == {
            "out": item["out"]
        }


def test_every_drv_in_the_store(nix: NixRunner, built: list[dict[str, object]]) -> None:
    """Whatever else is in this store (other tests' builds): up to 400 valid .drv files."""
    valid = nix.text("nix", "path-info", "--all").split()
    paths = sorted(p for p in valid if p.endswith(".drv"))[:400]
    assert paths
    cache: dict[str, bytes] = {}
    for path in paths:
        check_drv(path, cache)
    # The shared cache now holds the modulo hash of every input seen; recomputing agrees.
    for path, digest in list(cache.items())[:50]:
        assert hash_derivation_modulo(read_drv(path), read_drv) == digest
