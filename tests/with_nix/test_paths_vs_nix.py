"""Store paths and hash encodings computed by vega.core against the real nix (protocol.md §2.2-§2.3).

`nix-store --add` (recursive sha256, a "source" path) of generated files and directories,
`nix-store --add-fixed` flat and recursive with every algorithm, `nix hash file` in every encoding,
and `nix hash to-*` conversions.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.conftest import NixRunner
from vega.core.hashes import HashAlgorithm, HashEncoding, NixHash, hash_bytes, parse_nix_hash
from vega.core.storepath import make_fixed_output_path, make_text_path, parse_store_path
from vega.errors import FormatError

pytestmark = pytest.mark.nix

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?="


def nar(path: Path) -> bytes:
    """The NAR serialisation of ``path``, written out independently of vega.core.nar."""
    parts: list[bytes] = []

    def s(b: bytes) -> None:
        parts.append(len(b).to_bytes(8, "little") + b + b"\0" * (-len(b) % 8))

    def node(p: Path) -> None:
        s(b"(")
        s(b"type")
        if p.is_symlink():
            s(b"symlink")
            s(b"target")
            s(os.fsencode(os.readlink(p)))
        elif p.is_file():
            s(b"regular")
            if os.access(p, os.X_OK):
                s(b"executable")
                s(b"")
            s(b"contents")
            s(p.read_bytes())
        else:
            s(b"directory")
            for name in sorted(os.listdir(p), key=os.fsencode):
                s(b"entry")
                s(b"(")
                s(b"name")
                s(os.fsencode(name))
                s(b"node")
                node(p / name)
                s(b")")
        s(b")")

    s(b"nix-archive-1")
    node(path)
    return b"".join(parts)


def random_name(rng: random.Random) -> str:
    first = rng.choice(NAME_CHARS.replace(".", ""))
    return first + "".join(rng.choice(NAME_CHARS) for _ in range(rng.randrange(0, 12)))


def make_tree(root: Path, rng: random.Random, depth: int) -> None:
    root.mkdir()
    for _ in range(rng.randrange(0, 5)):
        child = root / random_name(rng)
        if child.exists():
            continue
        kind = rng.random()
        if kind < 0.5 or depth == 0:
            child.write_bytes(rng.randbytes(rng.choice([0, 1, 7, 8, 9, 100, 5000])))
            if rng.random() < 0.3:
                child.chmod(0o755)
        elif kind < 0.7:
            child.symlink_to(rng.choice(["target", "../up", "/abs/path", "x" * 40]))
        else:
            make_tree(child, rng, depth - 1)


def generated(tmp_path: Path) -> list[Path]:
    """Twelve generated trees and files, named with every character Nix allows."""
    rng = random.Random(20261125)
    items: list[Path] = []
    for i in range(8):
        root = tmp_path / f"tree{i}-{random_name(rng)}"
        make_tree(root, rng, depth=3)
        items.append(root)
    for i, size in enumerate([0, 1, 1000, 70000]):
        f = tmp_path / f"file{i}+x=y?z_.bin"
        f.write_bytes(rng.randbytes(size))
        if i == 2:
            f.chmod(0o755)
        items.append(f)
    dotted = tmp_path / ".hidden-name"
    dotted.write_bytes(b"nix 2.8 allows a leading dot\n")
    items.append(dotted)
    return items


def test_nix_store_add_source_paths(nix: NixRunner, tmp_path: Path) -> None:
    items = generated(tmp_path)
    got = nix.text("nix-store", "--add", *map(str, items)).splitlines()
    nar_hashes = nix.text(
        "nix", "hash", "path", "--type", "sha256", "--base32", *map(str, items)
    ).splitlines()
    assert len(got) == len(items)
    for item, store_path, nix_nar_hash in zip(items, got, nar_hashes, strict=True):
        h = hash_bytes(HashAlgorithm.SHA256, nar(item))
        assert h.nix32 == nix_nar_hash, item
        ours = make_fixed_output_path(item.name, h, recursive=True)
        assert ours.absolute == store_path, item
        assert parse_store_path(store_path) == ours


@pytest.mark.parametrize("algo", list(HashAlgorithm))
def test_nix_store_add_fixed(nix: NixRunner, tmp_path: Path, algo: HashAlgorithm) -> None:
    items = generated(tmp_path)
    files = [p for p in items if p.is_file()]
    flat = nix.text("nix-store", "--add-fixed", algo.value, *map(str, files)).splitlines()
    for f, store_path in zip(files, flat, strict=True):
        ours = make_fixed_output_path(f.name, hash_bytes(algo, f.read_bytes()), recursive=False)
        assert ours.absolute == store_path, f
    rec = nix.text("nix-store", "--add-fixed", "--recursive", algo.value, *map(str, items)).splitlines()
    for item, store_path in zip(items, rec, strict=True):
        ours = make_fixed_output_path(item.name, hash_bytes(algo, nar(item)), recursive=True)
        assert ours.absolute == store_path, item


def test_text_path_of_to_file(nix: NixRunner, tmp_path: Path) -> None:
    """builtins.toFile: a text path whose references are sorted into the type."""
    src = tmp_path / "ref-src.txt"
    src.write_text("referenced\n")
    plain = nix.text("nix", "eval", "--raw", "--expr", 'builtins.toFile "plain.txt" "no refs"')
    assert make_text_path("plain.txt", b"no refs").absolute == plain
    expr = f'builtins.toFile "refs.txt" "a ${{{src}}} b ${{builtins.toFile "plain.txt" "no refs"}}"'
    with_refs = nix.text("nix", "eval", "--impure", "--raw", "--expr", expr)
    content = Path(with_refs).read_bytes()
    refs = [parse_store_path(p) for p in nix.text("nix-store", "-q", "--references", with_refs).split()]
    assert len(refs) == 2
    assert make_text_path("refs.txt", content, refs).absolute == with_refs


ENCODINGS = {"--base16": HashEncoding.BASE16, "--base32": HashEncoding.NIX32, "--base64": HashEncoding.BASE64}


@pytest.mark.parametrize("algo", list(HashAlgorithm))
def test_nix_hash_file_every_encoding(nix: NixRunner, tmp_path: Path, algo: HashAlgorithm) -> None:
    files = [p for p in generated(tmp_path) if p.is_file()]
    for flag, enc in [*ENCODINGS.items(), ("--sri", HashEncoding.SRI)]:
        got = nix.text("nix", "hash", "file", "--type", algo.value, flag, *map(str, files)).splitlines()
        for f, text in zip(files, got, strict=True):
            h = hash_bytes(algo, f.read_bytes())
            assert h.encoded(enc) == text, (f, flag)
            assert parse_nix_hash(text, None if enc is HashEncoding.SRI else algo) == h


def digests() -> list[NixHash]:
    rng = random.Random(7)
    return [NixHash(a, rng.randbytes(a.digest_size)) for a in HashAlgorithm for _ in range(3)]


@pytest.mark.parametrize("target", ["to-base16", "to-base32", "to-base64", "to-sri"])
def test_nix_hash_conversions(nix: NixRunner, target: str) -> None:
    """Every input form we print, converted by nix, gives what we compute."""
    want_enc = {
        "to-base16": HashEncoding.BASE16,
        "to-base32": HashEncoding.NIX32,
        "to-base64": HashEncoding.BASE64,
        "to-sri": HashEncoding.SRI,
    }[target]
    for h in digests():
        inputs = [h.prefixed(enc) for enc in HashEncoding] + [
            h.sri.rstrip("="),
            f"{h.algorithm}:{h.base16.upper()}",
        ]
        got = nix.text("nix", "hash", target, *inputs).splitlines()
        assert got == [h.encoded(want_enc)] * len(inputs), h
        bare = [h.base16, h.nix32, h.base64]
        got = nix.text("nix", "hash", target, "--type", h.algorithm.value, *bare).splitlines()
        assert got == [h.encoded(want_enc)] * len(bare), h
        for text in inputs:
            assert parse_nix_hash(text) == h


REJECTED = [
    "sha256:j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeqQ",
    "sha256:193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwe",
    "sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aag",
    "sha256-8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
    "SHA256:193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg",
    "sha1:193s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg",
    "sha256:z93s6bfb4ncbr0d3rpb177cac43b2z2h3afxi7grcswgci346hwg",
    "md5-AAAA",
]


@pytest.mark.parametrize("text", REJECTED)
def test_rejections_agree(nix: NixRunner, text: str) -> None:
    with pytest.raises(AssertionError, match="exited 1"):
        nix.run("nix", "hash", "to-base16", text)
    with pytest.raises(FormatError):
        parse_nix_hash(text)
