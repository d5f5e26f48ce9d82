"""protocol.md §2.1, §2.5, §2.6 against the real nix: keys, signatures, derived keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import NixRunner
from tests.with_nix.signing_closure import (
    build_closure,
    new_nix_key,
    path_info,
    signed_fields_of,
    write_key_file,
)
from vega.core import narinfo, signing

pytestmark = pytest.mark.nix


def test_nix_secret_key_loads_and_gives_the_same_public_key(nix: NixRunner, tmp_path: Path) -> None:
    key_file, text = new_nix_key(nix, tmp_path)
    secret = signing.parse_secret_key(text)
    assert secret.name == "test-1"
    assert signing.format_secret_key(secret) == text
    public_text = nix.run("nix", "key", "convert-secret-to-public", input=text.encode()).decode()
    assert signing.format_public_key(secret.public) == public_text
    assert signing.parse_public_key(public_text) == secret.public
    assert key_file.read_text() == text


def test_nix_reads_our_secret_key(nix: NixRunner) -> None:
    secret = signing.generate_secret_key("ours-1", os.urandom(32))
    public_text = nix.run(
        "nix", "key", "convert-secret-to-public", input=signing.format_secret_key(secret).encode()
    ).decode()
    assert public_text == signing.format_public_key(secret.public)


def test_signatures_are_byte_identical_to_nix_store_sign(nix: NixRunner, tmp_path: Path) -> None:
    """ed25519 is deterministic: our signature of our fingerprint is exactly nix's."""
    closure = build_closure(nix, tmp_path)
    key_file, text = new_nix_key(nix, tmp_path)
    secret = signing.parse_secret_key(text)
    nix.run("nix", "store", "sign", "--key-file", str(key_file), *closure.paths)
    rows = path_info(nix, *closure.paths)
    assert [len(rows[p]["references"]) for p in closure.paths] == [2, 0]
    for path in closure.paths:
        (nix_sig,) = rows[path]["signatures"]
        message = narinfo.fingerprint(signed_fields_of(rows[path])).encode()
        assert signing.sign(secret, message) == nix_sig
        assert signing.is_valid_signature(secret.public, message, nix_sig)
        assert not signing.is_valid_signature(secret.public, message + b" ", nix_sig)


@pytest.mark.parametrize(
    ("derive", "name"),
    [
        (lambda m: signing.tenant_key(m, "jasonodoom/nixos-configs"), "vega-jasonodoom-nixos-configs-1"),
        (lambda m: signing.tenant_key(m, "owner:583231"), "vega-owner-583231-1"),
        (signing.enroll_key, "vega-enroll-1"),
        (lambda m: signing.view_key(m, "ab12"), "vega-view-ab12-1"),
    ],
)
def test_derived_keys_work_in_nix(nix: NixRunner, tmp_path: Path, derive: object, name: str) -> None:
    """§2.6: a derived key, written in Nix form, signs in nix exactly as we sign, and nix verifies it."""
    master = signing.generate_secret_key(signing.SHARED_KEY_NAME, os.urandom(32))
    derived: signing.SecretKey = derive(master)  # type: ignore[operator]
    assert derived.name == name
    closure = build_closure(nix, tmp_path)
    nix.run("nix", "store", "sign", "--key-file", str(write_key_file(tmp_path, derived)), closure.top)
    row = path_info(nix, closure.top)[closure.top]
    message = narinfo.fingerprint(signed_fields_of(row)).encode()
    assert row["signatures"] == [signing.sign(derived, message)]
    trusted = signing.format_public_key(derived.public)
    nix.run(
        "nix", "store", "verify", "--no-contents", "--sigs-needed", "1",
        "--option", "trusted-public-keys", trusted, closure.top,
    )  # fmt: skip
    with pytest.raises(AssertionError, match="untrusted"):
        nix.run(
            "nix", "store", "verify", "--no-contents", "--sigs-needed", "1",
            "--option", "trusted-public-keys", signing.format_public_key(master.public), closure.top,
        )  # fmt: skip
