"""protocol.md §2.4, §2.5 against the real nix: what `nix copy --to file://` writes, and back."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import NixRunner
from tests.with_nix.signing_closure import (
    Closure,
    build_closure,
    new_nix_key,
    path_info,
    signed_fields_of,
    write_key_file,
)
from vega.core import narinfo, signing
from vega.core.hashes import HashAlgorithm, NixHash
from vega.core.narinfo import NarInfo, SignedFields
from vega.core.storepath import StorePath, parse_store_path
from vega.errors import VerificationError

pytestmark = pytest.mark.nix


def _copy(nix: NixRunner, cache: Path, compression: str, *paths: str) -> dict[str, bytes]:
    """``nix copy --to file://…``; the narinfo files it wrote, by store path."""
    nix.run("nix", "copy", "--to", f"file://{cache}?compression={compression}", *paths)
    found = {}
    for path in paths:
        file = cache / (parse_store_path(path).hash_part + ".narinfo")
        found[path] = file.read_bytes()
    return found


OTHER = StorePath(bytes(20), "other")
H0 = NixHash(HashAlgorithm.SHA256, bytes(32))
TAMPER: dict[str, Callable[[SignedFields], SignedFields]] = {
    "store_path": lambda s: dataclasses.replace(s, store_path=OTHER),
    "nar_hash": lambda s: dataclasses.replace(s, nar_hash=H0),
    "nar_size": lambda s: dataclasses.replace(s, nar_size=s.nar_size + 1),
    "references+": lambda s: dataclasses.replace(s, references=(*s.references, OTHER)),
    "references-": lambda s: dataclasses.replace(s, references=s.references[1:]),
}


@pytest.mark.parametrize("compression", ["zstd", "none", "xz"])
def test_nix_copy_narinfo_round_trips_and_verifies(nix: NixRunner, tmp_path: Path, compression: str) -> None:
    closure = build_closure(nix, tmp_path)
    key_file, text = new_nix_key(nix, tmp_path)
    public = signing.parse_secret_key(text).public
    nix.run("nix", "store", "sign", "--key-file", str(key_file), *closure.paths)
    cache = tmp_path / "cache"
    written = _copy(nix, cache, compression, *closure.paths)
    rows = path_info(nix, *closure.paths)
    for path, raw in written.items():
        info = narinfo.parse_narinfo(raw)
        assert narinfo.format_narinfo(info).encode() == raw
        assert info.store_path.absolute == path
        assert info.compression == compression
        assert narinfo.fingerprint(info) == narinfo.fingerprint(signed_fields_of(rows[path]))
        assert str(info.deriver) == Path(rows[path]["deriver"]).name
        # The unsigned hints describe the file nix wrote.
        nar_file = (cache / info.url).read_bytes()
        assert len(nar_file) == info.file_size
        assert info.file_hash is not None
        assert hashlib.sha256(nar_file).digest() == info.file_hash.digest
        if compression == "none":
            assert info.file_hash == info.nar_hash
        assert narinfo.verify_narinfo_signature(info, {"test-1": public}) == "test-1"
        for name, tamper in TAMPER.items():
            if name == "references-" and not info.references:
                continue
            bad = dataclasses.replace(info, signed=tamper(info.signed))
            with pytest.raises(VerificationError, match="does not verify"):
                narinfo.verify_narinfo_signature(bad, {"test-1": public})
    top = narinfo.parse_narinfo(written[closure.top])
    assert {str(r) for r in top.references} == {Path(p).name for p in closure.paths}
    assert narinfo.parse_narinfo(written[closure.dep]).references == ()
    assert b"\nReferences: \n" in written[closure.dep]


def test_our_signature_of_nix_unsigned_narinfo_equals_nix_signed_narinfo(
    nix: NixRunner, tmp_path: Path
) -> None:
    closure = build_closure(nix, tmp_path)
    unsigned = _copy(nix, tmp_path / "unsigned", "zstd", *closure.paths)
    key_file, text = new_nix_key(nix, tmp_path, "vega-test-1")
    nix.run("nix", "store", "sign", "--key-file", str(key_file), *closure.paths)
    signed = _copy(nix, tmp_path / "signed", "zstd", *closure.paths)
    secret = signing.parse_secret_key(text)
    for path in closure.paths:
        ours = narinfo.sign_narinfo(narinfo.parse_narinfo(unsigned[path]), secret)
        assert narinfo.format_narinfo(ours).encode() == signed[path]


def _substitute(nix: NixRunner, cache: Path, store: Path, trusted: str, closure: Closure) -> None:
    nix.run(
        "nix", "copy", "--from", f"file://{cache}", "--to", str(store),
        "--option", "trusted-public-keys", trusted, *closure.paths,
    )  # fmt: skip


def test_nix_substitutes_from_narinfo_we_rendered_and_signed(nix: NixRunner, tmp_path: Path) -> None:
    """Nix accepts our fingerprint, signature and rendering; and refuses them under another key."""
    closure = build_closure(nix, tmp_path)
    cache = tmp_path / "cache"
    written = _copy(nix, cache, "zstd", *closure.paths)
    master = signing.generate_secret_key(signing.SHARED_KEY_NAME, os.urandom(32))
    tenant = signing.tenant_key(master, "jasonodoom/nixos-configs")
    for path, raw in written.items():
        info = narinfo.sign_narinfo(narinfo.parse_narinfo(raw), tenant)
        (cache / (parse_store_path(path).hash_part + ".narinfo")).write_text(narinfo.format_narinfo(info))
    with pytest.raises(AssertionError, match="lacks a valid signature"):
        _substitute(nix, cache, tmp_path / "refused", signing.format_public_key(master.public), closure)
    store = tmp_path / "store"
    _substitute(nix, cache, store, signing.format_public_key(tenant.public), closure)
    nix.run("nix", "path-info", "--store", str(store), closure.top)


def test_content_addressed_path_keeps_ca_after_sigs(nix: NixRunner, tmp_path: Path) -> None:
    source = tmp_path / "hello.txt"
    source.write_text(f"hello {secrets.token_hex(8)}\n")
    path = nix.add(source)
    files = [new_nix_key(nix, tmp_path, name)[0] for name in ("test-1", "test-2")]
    for key_file in files:
        nix.run("nix", "store", "sign", "--key-file", str(key_file), path)
    raw = _copy(nix, tmp_path / "cache", "none", path)[path]
    info = narinfo.parse_narinfo(raw)
    assert narinfo.format_narinfo(info).encode() == raw
    assert info.ca is not None
    assert info.ca.startswith("fixed:r:sha256:")
    assert raw.decode().splitlines()[-1].startswith("CA: ")
    assert sorted(s.partition(":")[0] for s in info.sigs) == ["test-1", "test-2"]
    keys = {}
    for key_file in files:
        public = signing.parse_secret_key(key_file.read_text()).public
        keys[public.name] = public
    assert narinfo.verify_narinfo_signature(info, keys) in keys


def test_nix_sig_lines_are_read_in_written_order(nix: NixRunner, tmp_path: Path) -> None:
    """Several signatures on one built path: each verifies under its own key, order kept."""
    closure = build_closure(nix, tmp_path)
    keys = [signing.generate_secret_key(f"k{i}-1", os.urandom(32)) for i in range(3)]
    for key in keys:
        nix.run("nix", "store", "sign", "--key-file", str(write_key_file(tmp_path, key)), closure.top)
    raw = _copy(nix, tmp_path / "cache", "none", closure.top)[closure.top]
    info: NarInfo = narinfo.parse_narinfo(raw)
    assert narinfo.format_narinfo(info).encode() == raw
    assert len(info.sigs) == 3
    for key in keys:
        assert narinfo.verify_narinfo_signature(info, {key.name: key.public}) == key.name
