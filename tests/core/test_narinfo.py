"""protocol.md §2.4 (narinfo text format) and §2.5 (signature fingerprint)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core import narinfo, nixbase32, signing
from vega.core.hashes import HashAlgorithm, NixHash, parse_nix_hash
from vega.core.narinfo import NarInfo, SignedFields
from vega.core.storepath import StorePath, parse_store_path
from vega.errors import FormatError, VerificationError

# Written by real nix 2.8 (`nix copy --to file://…?compression=zstd` of a two-derivation closure,
# signed with `nix store sign` by a key from `nix key generate-secret --key-name test-1`).
NIX_TOP = (
    "StorePath: /nix/store/bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top\n"
    "URL: nar/16ngagifvqhaqpna0iqw06cvbqfwkicr4174rw89r0a1cpj1m78s.nar.zst\n"
    "Compression: zstd\n"
    "FileHash: sha256:16ngagifvqhaqpna0iqw06cvbqfwkicr4174rw89r0a1cpj1m78s\n"
    "FileSize: 226\n"
    "NarHash: sha256:0pvaq3wd8k5if5fkskycwi6f8hmbnjd2w15svggdnhmfwhz6ynd4\n"
    "NarSize: 576\n"
    "References: bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep\n"
    "Deriver: f5nzml3j2sr2nf8idrq9j351f117v0xk-sigexp-top.drv\n"
    "Sig: test-1:DE4jvxutMaMipMxbD7EjaIJFB7ogGl/FpO4XiunCYu6FOEhEFRzFGCZsdPim/cSYnxwR+eHp+qAWBoHAf9nPCQ==\n"
)
NIX_DEP = (
    "StorePath: /nix/store/ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep\n"
    "URL: nar/00kjynz8n03652qccs76ivsvark3pr3dfr6w1ba3x7bx83kcknvv.nar\n"
    "Compression: none\n"
    "FileHash: sha256:00kjynz8n03652qccs76ivsvark3pr3dfr6w1ba3x7bx83kcknvv\n"
    "FileSize: 120\n"
    "NarHash: sha256:00kjynz8n03652qccs76ivsvark3pr3dfr6w1ba3x7bx83kcknvv\n"
    "NarSize: 120\n"
    "References: \n"
    "Deriver: 15hi6v3893632wrjyfv0f3b5xdpyzgjz-sigexp-dep.drv\n"
)
# `nix-store --add` then signed by test-1 and test-2: Sig lines come before CA.
NIX_CA = (
    "StorePath: /nix/store/5klx9pxl1c90q0j01ph753cpfm5dz3as-hello.txt\n"
    "URL: nar/1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h.nar\n"
    "Compression: none\n"
    "FileHash: sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h\n"
    "FileSize: 120\n"
    "NarHash: sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h\n"
    "NarSize: 120\n"
    "References: \n"
    "Sig: test-1:xftdNNpKRl+5wCX4RrzSNHUau/Zv/McqB515gCLsPREqEveewm/Apw1ebx7Zx58456zYDfowyxjHilqt0HBhCw==\n"
    "Sig: test-2:DY3KqCvG/pso7DrBu+onQ18hEUHUdz8U5sRqC1j3YpihYTfL29vKvjSBRkVT7o2WpZSQ6RyPY3Q5DtGQwI8yDA==\n"
    "CA: fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h\n"
)
TEST_1 = signing.parse_public_key("test-1:X9xgBpo6HXzhx/Sr655rskmXeEBQYP19OwcuW3FuS5o=")
TRUSTED = {TEST_1.name: TEST_1}
KAT = signing.parse_secret_key(
    "vega-kat-1:CzBVep/E6Q4zWH2ix+wRNluApcrvFDleg6jN8hc8YYYkw6SU+iKZYmZEuWWpEy2nnP5nFR/cQt5gDPCQl9uCRw=="
)


def _lines(text: str) -> list[str]:
    return text.split("\n")[:-1]


def _with(text: str, key: str, value: str | None) -> str:
    """Replace (or with None, drop) the line of ``key``."""
    out = []
    for line in _lines(text):
        if line.split(": ", 1)[0] == key or line == key + ":":
            if value is not None:
                out.append(f"{key}: {value}")
        else:
            out.append(line)
    return "".join(line + "\n" for line in out)


# --- what nix writes -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [NIX_TOP, NIX_DEP, NIX_CA], ids=["top", "dep", "ca"])
def test_nix_output_renders_back_identically(text: str) -> None:
    info = narinfo.parse_narinfo(text.encode())
    assert narinfo.format_narinfo(info) == text
    assert narinfo.parse_narinfo(text) == info


def test_nix_output_fields() -> None:
    info = narinfo.parse_narinfo(NIX_TOP)
    assert info.store_path.absolute == "/nix/store/bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top"
    assert info.url == "nar/16ngagifvqhaqpna0iqw06cvbqfwkicr4174rw89r0a1cpj1m78s.nar.zst"
    assert info.compression == "zstd"
    assert info.file_size == 226
    assert info.nar_size == 576
    assert info.nar_hash == parse_nix_hash("sha256:0pvaq3wd8k5if5fkskycwi6f8hmbnjd2w15svggdnhmfwhz6ynd4")
    assert [str(r) for r in info.references] == [
        "bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top",
        "ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep",
    ]
    assert str(info.deriver) == "f5nzml3j2sr2nf8idrq9j351f117v0xk-sigexp-top.drv"
    assert info.ca is None
    assert len(info.sigs) == 1
    assert info.extra_lines == ()


def test_nix_output_fingerprint_and_signature() -> None:
    """§2.5: the fingerprint nix signed, and its signature verifies under the nix-made key."""
    info = narinfo.parse_narinfo(NIX_TOP)
    assert narinfo.fingerprint(info) == (
        "1;/nix/store/bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top;"
        "sha256:0pvaq3wd8k5if5fkskycwi6f8hmbnjd2w15svggdnhmfwhz6ynd4;576;"
        "/nix/store/bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top,"
        "/nix/store/ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep"
    )
    assert narinfo.verify_narinfo_signature(info, TRUSTED) == "test-1"


def test_content_addressed_output_keeps_ca_and_both_signatures() -> None:
    info = narinfo.parse_narinfo(NIX_CA)
    assert info.ca == "fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h"
    assert [s.partition(":")[0] for s in info.sigs] == ["test-1", "test-2"]
    assert info.deriver is None
    assert narinfo.verify_narinfo_signature(info, TRUSTED) == "test-1"


# --- §2.5 fingerprint ----------------------------------------------------------------------------


def test_fingerprint_of_zero_references_ends_with_a_semicolon() -> None:
    info = narinfo.parse_narinfo(NIX_DEP)
    assert narinfo.fingerprint(info) == (
        "1;/nix/store/ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep;"
        "sha256:00kjynz8n03652qccs76ivsvark3pr3dfr6w1ba3x7bx83kcknvv;120;"
    )


def test_fingerprint_sorts_full_references_whatever_the_written_order() -> None:
    info = narinfo.parse_narinfo(NIX_TOP)
    swapped = dataclasses.replace(
        info, signed=dataclasses.replace(info.signed, references=info.references[::-1])
    )
    assert narinfo.fingerprint(swapped) == narinfo.fingerprint(info)
    assert narinfo.fingerprint(swapped.signed) == narinfo.fingerprint(info)
    assert narinfo.verify_narinfo_signature(swapped, TRUSTED) == "test-1"
    # But the written order is kept.
    assert narinfo.format_narinfo(swapped) != narinfo.format_narinfo(info)


# --- §2.4 parser rules ---------------------------------------------------------------------------


def test_empty_lines_are_skipped() -> None:
    text = "\n\n" + NIX_TOP.replace("\nURL", "\n\nURL") + "\n\n"
    assert narinfo.parse_narinfo(text) == narinfo.parse_narinfo(NIX_TOP)


def test_missing_final_newline_is_accepted() -> None:
    assert narinfo.parse_narinfo(NIX_TOP.rstrip("\n")) == narinfo.parse_narinfo(NIX_TOP)


def test_crlf_is_not_stripped() -> None:
    """§2.4: CR is not stripped, so CRLF input leaves '\\r' in values (here NarSize: refused)."""
    with pytest.raises(FormatError, match=r"narinfo line 1: StorePath: not a store path"):
        narinfo.parse_narinfo(NIX_TOP.replace("\n", "\r\n"))
    with pytest.raises(
        FormatError, match=r'narinfo line 7: NarSize must be a non-negative integer, got "576\\r"'
    ):
        narinfo.parse_narinfo(NIX_TOP.replace("NarSize: 576\n", "NarSize: 576\r\n"))


def test_crlf_stays_in_a_sig_and_the_signature_then_fails() -> None:
    info = narinfo.parse_narinfo(NIX_TOP.replace("==\n", "==\r\n"))
    assert info.sigs[0].endswith("==\r")
    with pytest.raises(VerificationError, match="does not verify"):
        narinfo.verify_narinfo_signature(info, TRUSTED)
    with pytest.raises(FormatError, match="control character"):
        narinfo.format_narinfo(info)


def test_key_with_colon_and_no_space_has_an_empty_value() -> None:
    """§2.4: 'References:' (no space) is References with an empty value."""
    info = narinfo.parse_narinfo(NIX_DEP.replace("References: \n", "References:\n"))
    assert info.references == ()
    assert narinfo.format_narinfo(info) == NIX_DEP


def test_deriver_colon_without_space_means_no_deriver() -> None:
    info = narinfo.parse_narinfo(_with(NIX_DEP, "Deriver", None) + "Deriver:\n")
    assert info.deriver is None


def test_empty_deriver_is_dropped() -> None:
    """§2.4: Deriver is kept only when non-empty."""
    info = narinfo.parse_narinfo(_with(NIX_DEP, "Deriver", ""))
    assert info.deriver is None
    assert "Deriver" not in narinfo.format_narinfo(info)


def test_references_line_may_be_absent() -> None:
    info = narinfo.parse_narinfo(_with(NIX_DEP, "References", None))
    assert info.references == ()
    assert narinfo.format_narinfo(info) == NIX_DEP  # …and is always written


def test_line_without_colon_is_an_unknown_key_and_kept() -> None:
    """§2.4: a line with no ': ' not ending in ':' is a key equal to the whole line."""
    info = narinfo.parse_narinfo(NIX_TOP + "NarSize:999\nfree text\n")
    assert info.nar_size == 576
    assert info.extra_lines == ("NarSize:999", "free text")
    assert narinfo.format_narinfo(info) == NIX_TOP + "NarSize:999\nfree text\n"


def test_unknown_keys_are_kept_in_order_and_written_last() -> None:
    text = NIX_DEP.replace("Compression: none\n", "Compression: none\nSystem: x86_64-linux\n")
    info = narinfo.parse_narinfo(text + "X-Extra: 1\nSystem: again\n")
    assert info.extra_lines == ("System: x86_64-linux", "X-Extra: 1", "System: again")
    assert narinfo.format_narinfo(info) == NIX_DEP + "System: x86_64-linux\nX-Extra: 1\nSystem: again\n"


def test_keys_are_case_sensitive() -> None:
    info = narinfo.parse_narinfo(NIX_DEP + "sig: x\nnarsize: 1\n")
    assert info.sigs == ()
    assert info.extra_lines == ("sig: x", "narsize: 1")


def test_sig_repeats_in_order_including_empty_and_colon_forms() -> None:
    text = NIX_DEP + "Sig: b:2\nSig: a:1\nSig: \nSig:\nSig\n"
    info = narinfo.parse_narinfo(text)
    assert info.sigs == ("b:2", "a:1", "", "", "")
    assert narinfo.format_narinfo(info) == NIX_DEP + "Sig: b:2\nSig: a:1\nSig: \nSig: \nSig: \n"


def test_value_is_everything_after_the_first_colon_space() -> None:
    info = narinfo.parse_narinfo(_with(NIX_DEP, "URL", "a: b: c "))
    assert info.url == "a: b: c "


def test_references_split_on_runs_of_whitespace() -> None:
    refs = "  bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top \t  ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep  "
    info = narinfo.parse_narinfo(_with(NIX_TOP, "References", refs))
    assert info == narinfo.parse_narinfo(NIX_TOP)


def test_unicode_whitespace_does_not_split_references() -> None:
    refs = "bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top\u00a0ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep"
    with pytest.raises(FormatError, match="narinfo line 8: References"):
        narinfo.parse_narinfo(_with(NIX_TOP, "References", refs))


# --- liberal reading: what Nix 2.x accepts (issue 14) ----------------------------------------------


@pytest.mark.parametrize("encoding", ["nix32", "base16", "base64", "sri"])
@pytest.mark.parametrize("key", ["NarHash", "FileHash"])
def test_every_hash_encoding_nix_reads(key: str, encoding: str) -> None:
    """Hash::parseAnyPrefixed: Cachix writes base-16; the fingerprint is Nix base-32 whatever was read."""
    top = narinfo.parse_narinfo(NIX_TOP)
    h = top.nar_hash if key == "NarHash" else top.file_hash
    assert h is not None
    text = {"nix32": f"sha256:{h.nix32}", "base16": f"sha256:{h.base16}", "base64": f"sha256:{h.base64}"}
    info = narinfo.parse_narinfo(_with(NIX_TOP, key, text.get(encoding, h.sri)))
    assert info == top
    assert narinfo.fingerprint(info) == narinfo.fingerprint(top)
    assert narinfo.format_narinfo(info) == NIX_TOP  # written back canonically


def test_file_hash_of_another_algorithm_is_read_but_not_written() -> None:
    info = narinfo.parse_narinfo(_with(NIX_TOP, "FileHash", "sha512:" + "ab" * 64))
    assert info.file_hash is not None
    assert info.file_hash.algorithm.value == "sha512"
    with pytest.raises(FormatError, match="refusing to write without a sha256 FileHash"):
        narinfo.format_narinfo(info)


def test_unknown_deriver_means_no_deriver() -> None:
    info = narinfo.parse_narinfo(_with(NIX_TOP, "Deriver", "unknown-deriver"))
    assert info.deriver is None
    assert info == dataclasses.replace(narinfo.parse_narinfo(NIX_TOP), deriver=None)
    assert narinfo.parse_narinfo(_with(NIX_TOP, "Deriver", "")).deriver is None


@pytest.mark.parametrize("value", [None, ""])
def test_missing_compression_is_bzip2_as_in_nix(value: str | None) -> None:
    info = narinfo.parse_narinfo(_with(NIX_TOP, "Compression", value))
    assert info.compression == narinfo.DEFAULT_COMPRESSION == "bzip2"


def test_missing_file_hash_and_size() -> None:
    text = _with(_with(NIX_TOP, "FileHash", None), "FileSize", None)
    info = narinfo.parse_narinfo(text)
    assert (info.file_hash, info.file_size) == (None, None)
    assert narinfo.fingerprint(info) == narinfo.fingerprint(narinfo.parse_narinfo(NIX_TOP))
    with pytest.raises(FormatError, match="refusing to write without a sha256 FileHash"):
        narinfo.format_narinfo(info)
    top = narinfo.parse_narinfo(NIX_TOP)
    with pytest.raises(FormatError, match="refusing to write without a FileSize"):
        narinfo.format_narinfo(dataclasses.replace(top, file_size=None))


def test_unknown_keys_are_ignored_and_kept() -> None:
    info = narinfo.parse_narinfo(NIX_TOP + "System: i686-linux\nProvenance: {}\nNoColonLine\n")
    assert info.extra_lines == ("System: i686-linux", "Provenance: {}", "NoColonLine")
    assert dataclasses.replace(info, extra_lines=()) == narinfo.parse_narinfo(NIX_TOP)


@pytest.mark.parametrize("key", ["StorePath", "URL", "NarHash", "NarSize"])
def test_required_keys(key: str) -> None:
    with pytest.raises(FormatError, match=f"^narinfo: missing {key}$"):
        narinfo.parse_narinfo(_with(NIX_TOP, key, None))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("NarSize", "-1", 'narinfo line 7: NarSize must be a non-negative integer, got "-1"'),
        ("NarSize", "+1", 'NarSize must be a non-negative integer, got "\\+1"'),
        ("NarSize", "1.0", "NarSize must be a non-negative integer"),
        ("NarSize", " 1", "NarSize must be a non-negative integer"),
        ("NarSize", "1_0", "NarSize must be a non-negative integer"),
        ("NarSize", "\uff11", "NarSize must be a non-negative integer"),  # fullwidth 1
        ("NarSize", "", "NarSize must be a non-negative integer"),
        ("NarSize", "0x10", "NarSize must be a non-negative integer"),
        ("NarSize", str(2**64), "NarSize must be a non-negative integer"),
        ("NarSize", "1" * 21, "NarSize must be a non-negative integer"),
        ("FileSize", "abc", 'narinfo line 5: FileSize must be a non-negative integer, got "abc"'),
        (
            "NarHash",
            "sha256-pFlvPuSuQtve27oELpq0q0LkTOTMTz1dcbFM1PjAa",
            "narinfo line 6: NarHash must be a sha256 hash",
        ),
        ("NarHash", "sha256:" + "g" * 64, "NarHash must be a sha256 hash \\(sha256:<nix32"),
        ("NarHash", "sha1:" + "0" * 40, "NarHash must be a sha256 hash"),
        ("NarHash", "0" * 64, "NarHash must be a sha256 hash"),
        ("NarHash", "sha256:0pvaq3wd8k5if5fkskycwi6f8hmbnjd2w15svggdnhmfwhz6ynd", "NarHash must be a sha256"),
        ("NarHash", "sha256:" + "e" * 52, "NarHash must be a sha256 hash"),
        ("FileHash", "", "narinfo line 4: FileHash must be a hash"),
        ("FileHash", "sha3:" + "0" * 64, "narinfo line 4: FileHash must be a hash"),
        ("URL", "", "narinfo line 2: URL must not be empty"),
        (
            "StorePath",
            "bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top",
            "StorePath must be an absolute store path",
        ),
        (
            "StorePath",
            "/nix/store/bgj4cnpq2171av33avlvh81xaknd9zw4",
            "narinfo line 1: StorePath: not a store path",
        ),
        (
            "StorePath",
            "/gnu/store/bgj4cnpq2171av33avlvh81xaknd9zw4-x",
            "StorePath must be an absolute store path",
        ),
        ("StorePath", "/nix/store/bgj4cnpq2171av33avlvh81xaknd9zw4-a b", "StorePath: not a store path"),
        (
            "References",
            "/nix/store/ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep",
            "must be a store path base name",
        ),
        ("References", "ypn9maq8xyyd2x8izylmrg2m3nmzvi0n", "narinfo line 8: References: not a store path"),
        (
            "Deriver",
            "/nix/store/f5nzml3j2sr2nf8idrq9j351f117v0xk-sigexp-top.drv",
            "Deriver must be a store path base",
        ),
        ("Deriver", "f5nzml3j2sr2nf8idrq9j351f117v0xk-a b.drv", "narinfo line 9: Deriver: not a store path"),
    ],
)
def test_parse_rejects_bad_values(key: str, value: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        narinfo.parse_narinfo(_with(NIX_TOP, key, value))


def test_parse_accepts_leading_zeros_and_writes_them_canonically() -> None:
    info = narinfo.parse_narinfo(_with(NIX_DEP, "NarSize", "00120"))
    assert info.nar_size == 120
    assert narinfo.format_narinfo(info) == NIX_DEP


def test_parse_accepts_the_largest_size() -> None:
    info = narinfo.parse_narinfo(_with(NIX_DEP, "FileSize", str(2**64 - 1)))
    assert info.file_size == 2**64 - 1


@pytest.mark.parametrize("key", ["StorePath", "URL", "Compression", "NarHash", "NarSize", "Deriver"])
def test_repeated_key_the_last_one_counts_as_in_nix(key: str) -> None:
    """nar-info.cc assigns each line in turn, so a repeated key's last value is the one Nix uses."""
    other = narinfo.parse_narinfo(NIX_DEP)
    values = {
        "StorePath": other.store_path.absolute,
        "URL": other.url,
        "Compression": "xz",
        "NarHash": str(other.nar_hash),
        "NarSize": "7",
        "Deriver": "unknown-deriver",
    }
    info = narinfo.parse_narinfo(f"{NIX_TOP}{key}: {values[key]}\n")
    first = narinfo.parse_narinfo(NIX_TOP)
    got = {
        "StorePath": info.store_path.absolute,
        "URL": info.url,
        "Compression": info.compression,
        "NarHash": str(info.nar_hash),
        "NarSize": str(info.nar_size),
        "Deriver": "unknown-deriver" if info.deriver is None else str(info.deriver),
    }
    assert got[key] == values[key]
    assert first.sigs == info.sigs


def test_second_references_list_is_refused_unless_the_first_was_empty() -> None:
    """Nix: "extra References" once a non-empty list was read; an empty one adds nothing."""
    line = next(line for line in _lines(NIX_TOP) if line.startswith("References:"))
    with pytest.raises(FormatError, match=r"narinfo line 1[0-9]: References: a second References list"):
        narinfo.parse_narinfo(NIX_TOP + line + "\n")
    top = narinfo.parse_narinfo(NIX_TOP)
    assert narinfo.parse_narinfo(NIX_TOP + "References: \n").references == top.references
    moved = _with(NIX_TOP, "References", "").replace("References: \n", "") + "References: \n" + line + "\n"
    assert narinfo.parse_narinfo(moved).references == top.references


def test_second_ca_is_refused_unless_the_first_was_empty() -> None:
    line = next(line for line in _lines(NIX_CA) if line.startswith("CA:"))
    with pytest.raises(FormatError, match=r"narinfo line 1[0-9]: CA: a second CA"):
        narinfo.parse_narinfo(NIX_CA + line + "\n")
    ca = narinfo.parse_narinfo(NIX_CA).ca
    assert narinfo.parse_narinfo(NIX_CA + "CA: \n").ca == ca
    assert narinfo.parse_narinfo(NIX_DEP + "CA: \n" + line + "\n").ca == ca


def test_repeated_reference_counts_once() -> None:
    """Nix keeps references in a set; the fingerprint lists each once."""
    refs = "ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep"
    info = narinfo.parse_narinfo(_with(NIX_TOP, "References", refs))
    assert [str(r) for r in info.references] == ["ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep"]


def test_empty_ca_means_none() -> None:
    info = narinfo.parse_narinfo(NIX_DEP + "CA: \n")
    assert info.ca is None


def test_invalid_utf8_is_refused_with_its_offset() -> None:
    with pytest.raises(FormatError, match=r"narinfo is not UTF-8 \(byte 3\)"):
        narinfo.parse_narinfo(b"abc\xff")


def test_lone_surrogate_text_is_refused() -> None:
    with pytest.raises(FormatError, match="not encodable as UTF-8"):
        narinfo.parse_narinfo(NIX_DEP + "X: \ud800\n")


@pytest.mark.parametrize("as_bytes", [True, False])
def test_size_cap(as_bytes: bool) -> None:
    text = NIX_DEP + "X: " + "a" * 100 + "\n"
    data = text.encode() if as_bytes else text
    assert narinfo.parse_narinfo(data, max_bytes=len(text)) == narinfo.parse_narinfo(text)
    with pytest.raises(FormatError, match=f"narinfo is larger than {len(text) - 1} bytes"):
        narinfo.parse_narinfo(data, max_bytes=len(text) - 1)


def test_size_cap_counts_utf8_bytes_of_text() -> None:
    text = NIX_DEP + "X: " + "é" * 10 + "\n"
    with pytest.raises(FormatError, match="narinfo is larger than"):
        narinfo.parse_narinfo(text, max_bytes=len(text) + 5)


def test_default_size_cap() -> None:
    with pytest.raises(FormatError, match="larger than"):
        narinfo.parse_narinfo(b"x" * (narinfo.MAX_NARINFO_BYTES + 1))


# --- format --------------------------------------------------------------------------------------


def _info(**changes: Any) -> NarInfo:
    return dataclasses.replace(narinfo.parse_narinfo(NIX_TOP), **changes)


def test_format_writes_references_with_a_trailing_space_when_empty() -> None:
    info = narinfo.parse_narinfo(NIX_DEP)
    assert "\nReferences: \n" in narinfo.format_narinfo(info)


def test_format_order_ca_after_sigs_and_extra_last() -> None:
    info = _info(ca="text:sha256:x", sigs=("a:1", "b:2"), extra_lines=("Z: z",))
    lines = _lines(narinfo.format_narinfo(info))
    assert [line.split(":")[0] for line in lines] == [
        "StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize",
        "References", "Deriver", "Sig", "Sig", "CA", "Z",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "changes",
    [
        {"url": "nar/x\n.nar"},
        {"url": "nar/\x00"},
        {"compression": "zstd\r"},
        {"sigs": ("a:b\x7f",)},
        {"ca": "fixed:\x1b"},
        {"extra_lines": ("X: \t",)},
    ],
)
def test_format_refuses_control_characters(changes: dict[str, Any]) -> None:
    """§2.4: the serialiser refuses [\\x00-\\x1f\\x7f] in any field."""
    with pytest.raises(FormatError, match="refusing to write a control character"):
        narinfo.format_narinfo(_info(**changes))


# --- value invariants ----------------------------------------------------------------------------

SP = parse_store_path("/nix/store/ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep")
H = NixHash(HashAlgorithm.SHA256, bytes(32))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"store_path": "/nix/store/x"}, "store_path must be a StorePath"),
        ({"nar_hash": "sha256:x"}, "nar_hash must be a sha256 NixHash"),
        ({"nar_hash": NixHash(HashAlgorithm.SHA1, bytes(20))}, "nar_hash must be a sha256 NixHash"),
        ({"nar_size": -1}, "nar_size must be an integer from 0 to 2\\^64-1, got -1"),
        ({"nar_size": 2**64}, "nar_size must be an integer"),
        ({"nar_size": True}, "nar_size must be an integer"),
        ({"nar_size": 1.0}, "nar_size must be an integer"),
        ({"references": [SP]}, "references must be a tuple, got list"),
        ({"references": (str(SP),)}, "references must hold StorePath values"),
        ({"references": (SP, SP)}, "references must not repeat a path"),
    ],
)
def test_signed_fields_refuse_invalid_values(changes: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"store_path": SP, "nar_hash": H, "nar_size": 1, "references": ()}
    with pytest.raises(FormatError, match=message):
        SignedFields(**(fields | changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"signed": None}, "signed must be SignedFields"),
        ({"url": ""}, "url must be a non-empty string"),
        ({"url": b"nar/x"}, "url must be a non-empty string"),
        ({"compression": ""}, "compression must be a non-empty string"),
        ({"file_hash": "sha256:x"}, "file_hash must be a sha256 NixHash"),
        ({"file_size": -5}, "file_size must be an integer"),
        ({"deriver": "x.drv"}, "deriver must be a StorePath or None"),
        ({"ca": ""}, "ca must be a non-empty string"),
        ({"sigs": ["a:b"]}, "sigs must be a tuple"),
        ({"sigs": (b"a:b",)}, "each of sigs must be a string"),
        ({"extra_lines": ("",)}, "each of extra_lines must be a non-empty string"),
        ({"extra_lines": ("X: a\nY: b",)}, "is not an unknown-key line"),
        ({"extra_lines": ("Sig: a:b",)}, "is not an unknown-key line"),
        ({"extra_lines": ("NarSize:",)}, "is not an unknown-key line"),
        ({"extra_lines": ("References",)}, "is not an unknown-key line"),
    ],
)
def test_narinfo_refuses_invalid_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        _info(**changes)


# --- signatures ----------------------------------------------------------------------------------


def test_verify_reports_no_signatures() -> None:
    info = narinfo.parse_narinfo(NIX_DEP)
    with pytest.raises(
        VerificationError,
        match=r"^/nix/store/ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep: narinfo has no signatures$",
    ):
        narinfo.verify_narinfo_signature(info, TRUSTED)


def test_verify_reports_signers_when_none_is_trusted() -> None:
    info = narinfo.parse_narinfo(NIX_TOP)
    with pytest.raises(
        VerificationError, match=r"no signature by a trusted key \(signed by test-1; trusted: none\)$"
    ):
        narinfo.verify_narinfo_signature(info, {})
    with pytest.raises(VerificationError, match=r"signed by test-1; trusted: vega-kat-1\)$"):
        narinfo.verify_narinfo_signature(info, {KAT.name: KAT.public})


def test_verify_names_the_trusted_key_whose_signature_fails() -> None:
    info = narinfo.parse_narinfo(NIX_TOP)
    impostor = signing.PublicKey("test-1", KAT.public.key)
    with pytest.raises(VerificationError, match=r"sigexp-top: signature by test-1 does not verify$"):
        narinfo.verify_narinfo_signature(info, {"test-1": impostor})


def test_verify_skips_bad_signatures_until_one_verifies() -> None:
    info = narinfo.parse_narinfo(NIX_TOP)
    bad = "test-1:" + "A" * 86 + "=="
    info = dataclasses.replace(info, sigs=("other:x", bad, "garbage", *info.sigs))
    assert narinfo.verify_narinfo_signature(info, TRUSTED) == "test-1"


def test_sign_narinfo_adds_a_signature_once() -> None:
    info = narinfo.parse_narinfo(NIX_TOP)
    signed = narinfo.sign_narinfo(info, KAT)
    assert signed.sigs[:-1] == info.sigs
    assert signed.sigs[-1].startswith("vega-kat-1:")
    assert narinfo.sign_narinfo(signed, KAT) == signed
    assert narinfo.verify_narinfo_signature(signed, {KAT.name: KAT.public}) == "vega-kat-1"
    assert narinfo.verify_narinfo_signature(signed, TRUSTED) == "test-1"


OTHER = StorePath(bytes(range(20)), "other")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: dataclasses.replace(s, store_path=OTHER), id="store_path"),
        pytest.param(
            lambda s: dataclasses.replace(s, store_path=StorePath(s.store_path.digest, "sigexp-toq")),
            id="store_path-name",
        ),
        pytest.param(lambda s: dataclasses.replace(s, nar_hash=H), id="nar_hash"),
        pytest.param(lambda s: dataclasses.replace(s, nar_size=s.nar_size + 1), id="nar_size"),
        pytest.param(lambda s: dataclasses.replace(s, references=s.references[:1]), id="drop-reference"),
        pytest.param(lambda s: dataclasses.replace(s, references=(*s.references, OTHER)), id="add-reference"),
        pytest.param(
            lambda s: dataclasses.replace(s, references=(OTHER, s.references[1])), id="swap-reference"
        ),
        pytest.param(lambda s: dataclasses.replace(s, references=()), id="no-references"),
    ],
)
def test_tampering_any_signed_field_breaks_verification(tamper: Any) -> None:
    info = narinfo.parse_narinfo(NIX_TOP)
    bad = dataclasses.replace(info, signed=tamper(info.signed))
    with pytest.raises(VerificationError, match="signature by test-1 does not verify"):
        narinfo.verify_narinfo_signature(bad, TRUSTED)


def test_every_flipped_bit_of_the_nar_hash_breaks_verification() -> None:
    info = narinfo.parse_narinfo(NIX_TOP)
    digest = info.nar_hash.digest
    for bit in range(8 * len(digest)):
        flipped = bytearray(digest)
        flipped[bit // 8] ^= 1 << (bit % 8)
        signed = dataclasses.replace(info.signed, nar_hash=NixHash(HashAlgorithm.SHA256, bytes(flipped)))
        with pytest.raises(VerificationError):
            narinfo.verify_narinfo_signature(dataclasses.replace(info, signed=signed), TRUSTED)


@pytest.mark.parametrize(
    "changes",
    [
        {"url": "nar/elsewhere.nar"},
        {"compression": "xz"},
        {"file_hash": H},
        {"file_size": 1},
        {"deriver": None},
        {"ca": "fixed:r:sha256:x"},
        {"extra_lines": ("X: y",)},
    ],
)
def test_unsigned_hints_are_not_covered(changes: dict[str, Any]) -> None:
    """§2.5: only the fingerprint is signed; the cache's hints may change freely."""
    assert narinfo.verify_narinfo_signature(_info(**changes), TRUSTED) == "test-1"


# --- properties ----------------------------------------------------------------------------------

store_paths = st.builds(
    StorePath,
    st.binary(min_size=20, max_size=20),
    st.from_regex(r"[A-Za-z0-9+\-_?=][A-Za-z0-9+\-._?=]{0,30}", fullmatch=True),
)
sha256s = st.builds(NixHash, st.just(HashAlgorithm.SHA256), st.binary(min_size=32, max_size=32))
sizes = st.integers(0, 2**64 - 1)
# Printable, no C0 or DEL: anything else may appear in a value.
values = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x7f", min_codepoint=32))
unknown_lines = values.filter(lambda s: s != "" and narinfo._split_line(s)[0] not in narinfo._KNOWN_KEYS)

narinfos = st.builds(
    NarInfo,
    signed=st.builds(
        SignedFields,
        store_path=store_paths,
        nar_hash=sha256s,
        nar_size=sizes,
        references=st.lists(store_paths, unique=True, max_size=5).map(tuple),
    ),
    url=values.filter(bool),
    compression=values.filter(bool),
    file_hash=sha256s,
    file_size=sizes,
    deriver=st.none() | store_paths,
    ca=st.none() | values.filter(bool),
    sigs=st.lists(values, max_size=3).map(tuple),
    extra_lines=st.lists(unknown_lines, max_size=3).map(tuple),
)


@given(info=narinfos)
def test_round_trip(info: NarInfo) -> None:
    text = narinfo.format_narinfo(info)
    assert narinfo.parse_narinfo(text) == info
    assert narinfo.parse_narinfo(text.encode()) == info
    assert narinfo.format_narinfo(narinfo.parse_narinfo(text)) == text


@given(info=narinfos, seed=st.binary(min_size=32, max_size=32))
def test_signed_round_trip_verifies(info: NarInfo, seed: bytes) -> None:
    key = signing.generate_secret_key("k-1", seed)
    signed = narinfo.parse_narinfo(narinfo.format_narinfo(narinfo.sign_narinfo(info, key)))
    assert narinfo.verify_narinfo_signature(signed, {"k-1": key.public}) == "k-1"


@given(info=narinfos)
def test_fingerprint_shape(info: NarInfo) -> None:
    fp = narinfo.fingerprint(info)
    parts = fp.split(";")
    assert parts[:4] == [
        "1",
        info.store_path.absolute,
        "sha256:" + nixbase32.encode(info.nar_hash.digest),
        str(info.nar_size),
    ]
    assert parts[4] == ",".join(sorted(r.absolute for r in info.references))


@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        narinfo.parse_narinfo(data)


@given(
    lines=st.lists(
        st.sampled_from(_lines(NIX_TOP) + _lines(NIX_CA) + ["", "Sig:", "References:", "X", "NarSize: -1"])
        | st.text(max_size=40),
        max_size=16,
    ),
    sep=st.sampled_from(["\n", "\r\n"]),
)
def test_shuffled_and_mixed_lines_raise_only_format_error(lines: list[str], sep: str) -> None:
    with contextlib.suppress(FormatError):
        info = narinfo.parse_narinfo(sep.join(lines))
        narinfo.format_narinfo(info)


# --- vectors made by the real nix (tools/make_nix_vectors.py) ------------------------------------

VECTORS = Path(__file__).parent.parent / "vectors" / "nix" / "signing"
MANIFEST = json.loads((VECTORS / "narinfo.json").read_text())


def _vector_keys() -> dict[str, signing.PublicKey]:
    texts = [k["public"] for k in json.loads((VECTORS / "keys.json").read_text())]
    texts += [d["public"] for d in json.loads((VECTORS / "derived.json").read_text())]
    return {key.name: key for key in map(signing.parse_public_key, texts)}


VECTOR_TAMPERS: tuple[Callable[[SignedFields], SignedFields], ...] = (
    lambda s: dataclasses.replace(s, nar_size=s.nar_size + 1),
    lambda s: dataclasses.replace(s, nar_hash=H),
    lambda s: dataclasses.replace(s, references=(*s.references, OTHER)),
    lambda s: dataclasses.replace(s, store_path=OTHER),
)


@pytest.mark.parametrize("case", MANIFEST["narinfos"], ids=lambda c: c["file"])
def test_nix_copy_vectors(case: dict[str, Any]) -> None:
    """Narinfo files written by `nix copy --to file://`: identical re-render, Nix's fingerprint,
    every Sig verifies under its key, and tampering any signed field breaks each one."""
    raw = (VECTORS / "narinfo" / case["file"]).read_bytes()
    info = narinfo.parse_narinfo(raw)
    assert narinfo.format_narinfo(info).encode() == raw
    row = case["pathInfo"]
    assert info.store_path.absolute == row["path"]
    assert info.nar_hash == parse_nix_hash(row["narHash"])
    assert info.nar_size == row["narSize"]
    assert sorted(r.absolute for r in info.references) == sorted(row["references"])
    assert sorted(info.sigs) == sorted(case["signatures"])
    keys = _vector_keys()
    assert len(info.sigs) >= 1
    for sig in info.sigs:
        key = keys[sig.partition(":")[0]]
        assert narinfo.verify_narinfo_signature(dataclasses.replace(info, sigs=(sig,)), keys) == key.name
        for tamper in VECTOR_TAMPERS:
            bad = dataclasses.replace(info, signed=tamper(info.signed), sigs=(sig,))
            with pytest.raises(VerificationError):
                narinfo.verify_narinfo_signature(bad, keys)


def test_nix_copy_vectors_cover_every_compression_and_ca() -> None:
    files = [c["file"] for c in MANIFEST["narinfos"]]
    assert {f.split("/")[0] for f in files} == {"zstd", "none", "xz", "bzip2"}
    infos = [narinfo.parse_narinfo((VECTORS / "narinfo" / f).read_bytes()) for f in files]
    assert any(i.ca is not None for i in infos)
    assert any(i.references == () for i in infos)
    assert any(len(i.references) == 2 for i in infos)


# --- messages and edges the mutation run found untested ---------------------------------------------


def test_bad_value_is_quoted_as_text_and_cut_at_120_characters() -> None:
    long = "é" * 200
    with pytest.raises(FormatError) as e:
        narinfo.parse_narinfo(_with(NIX_TOP, "NarSize", long))
    assert e.value.message == f'narinfo line 7: NarSize must be a non-negative integer, got "{"é" * 120}"'


def test_second_references_list_of_only_a_tab_is_refused() -> None:
    """Nix splits References on spaces only: a tab is a (bad) path, so the list is not empty."""
    with pytest.raises(FormatError, match="a second References list"):
        narinfo.parse_narinfo(NIX_TOP + "References: \t\n")


def test_extra_lines_must_be_a_tuple() -> None:
    with pytest.raises(FormatError, match=r"^extra_lines must be a tuple, got list$"):
        _info(extra_lines=["Z: z"])


def test_every_failing_trusted_signature_is_named() -> None:
    a = signing.generate_secret_key("a-1", b"\x01" * 32)
    b = signing.generate_secret_key("b-1", b"\x02" * 32)
    info = _info(sigs=("a-1:" + "A" * 86 + "==", "b-1:" + "A" * 86 + "=="))
    with pytest.raises(VerificationError) as e:
        narinfo.verify_narinfo_signature(info, {"a-1": a.public, "b-1": b.public})
    assert e.value.message.endswith("signature by a-1, b-1 does not verify")
    untrusted = _info(sigs=("z-1:x:y", "y-1:abc"))
    with pytest.raises(VerificationError) as e:
        narinfo.verify_narinfo_signature(untrusted, {"a-1": a.public})
    assert e.value.message.endswith("no signature by a trusted key (signed by y-1, z-1; trusted: a-1)")


def test_write_refusals_say_exactly_what_is_missing() -> None:
    with pytest.raises(FormatError) as e:
        narinfo.format_narinfo(_info(file_hash=None))
    assert e.value.message == "narinfo: refusing to write without a sha256 FileHash"
    with pytest.raises(FormatError) as e:
        narinfo.format_narinfo(_info(file_size=None))
    assert e.value.message == "narinfo: refusing to write without a FileSize"
