"""Differential: our NAR bytes, hash and listing against the real Nix (protocol.md §2.4)."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from tests.conftest import NixRunner, run_vega
from vega.client import narfs

pytestmark = pytest.mark.nix


def make_tree(root: Path, rng: random.Random, depth: int = 0) -> None:
    root.mkdir()
    names = ["a", "B", "lib", "x y", "\u00fcn\u00ef", "\u65e5\u672c", ".hidden", "z" * 60, "e\u0301", "-dash"]
    for i in range(rng.randint(1 if depth == 0 else 0, 6 if depth < 3 else 2)):
        path = root / f"{rng.choice(names)}{i}"
        kind = rng.random()
        if kind < 0.5:
            path.write_bytes(os.urandom(rng.choice([0, 1, 7, 8, 9, 100, 4096, 70_000])))
            if rng.random() < 0.35:
                path.chmod(0o755)
        elif kind < 0.7:
            path.symlink_to(rng.choice(["../a0", "target", "/nix/store/x", "d/e", "\u00fc"]))
        elif depth < 4:
            make_tree(path, rng, depth + 1)
        else:
            path.mkdir()


def dump_bytes(path: Path | str) -> bytes:
    out: list[bytes] = []
    narfs.dump(path, lambda v: out.append(bytes(v)))
    return b"".join(out)


@pytest.fixture
def trees(tmp_path: Path) -> list[Path]:
    rng = random.Random(20261125)
    out = []
    for i in range(6):
        make_tree(tmp_path / f"case{i}", rng)
        out.append(tmp_path / f"case{i}")
    special = tmp_path / "special"
    (special / "empty" / "nested-empty").mkdir(parents=True)
    (special / "emptyfile").write_bytes(b"")
    (special / "exec").write_bytes(b"#!/bin/sh\n")
    (special / "exec").chmod(0o755)
    (special / "big").write_bytes(os.urandom(5 * 1024 * 1024 + 5))
    (special / "link-to-dir").symlink_to("empty")
    out.append(special)
    (tmp_path / "file").write_bytes(b"a single regular file\n")
    out.append(tmp_path / "file")
    return out


def test_dump_hash_and_ls_equal_nix(nix: NixRunner, trees: list[Path], tmp_path: Path) -> None:
    for tree in trees:
        path = nix.add(tree)
        want_nar = nix.run("nix-store", "--dump", path)
        assert dump_bytes(path) == want_nar, tree
        nar_hash, nar_size = narfs.hash_path(path)
        assert nar_hash.sri == nix.text("nix", "hash", "path", path)
        assert nar_size == len(want_nar)
        assert run_vega(["nar", "hash", path]).stdout.decode().strip() == nar_hash.sri
        assert run_vega(["nar", "dump", path]).stdout == want_nar
        nar_file = tmp_path / "x.nar"
        nar_file.write_bytes(want_nar)
        for flags in ([], ["-l"]):
            assert run_vega(["nar", "ls", *flags, str(nar_file)]).stdout == nix.run(
                "nix", "nar", "ls", "-R", *flags, str(nar_file), "/"
            )


def test_restore_of_nix_nar_gives_the_same_tree(nix: NixRunner, trees: list[Path], tmp_path: Path) -> None:
    for i, tree in enumerate(trees):
        path = nix.add(tree)
        want_nar = nix.run("nix-store", "--dump", path)
        narfs.restore(io.BytesIO(want_nar).read, tmp_path / f"r{i}")
        ours = dump_bytes(tmp_path / f"r{i}")
        assert ours == want_nar
        # and nix restores our dump to the same tree
        nix.run("nix-store", "--restore", str(tmp_path / f"n{i}"), input=ours)
        assert nix.run("nix-store", "--dump", str(tmp_path / f"n{i}")) == want_nar
