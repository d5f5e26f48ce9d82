"""storepath (protocol.md §2.3): parsing, Nix's name rule, and path computation with answers from Nix 2.8."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core import nixbase32, storepath
from vega.core.hashes import HashAlgorithm, NixHash, hash_bytes, parse_nix_hash
from vega.core.storepath import (
    STORE_DIR,
    StorePath,
    make_fixed_output_path,
    make_output_path,
    make_store_path,
    make_text_path,
    parse_store_path,
)
from vega.errors import FormatError

HELLO = b"hello\n"
# `nix hash path` of a file holding HELLO, and of a small directory (Nix 2.8).
HELLO_NAR = parse_nix_hash("sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=")
DIR_NAR = parse_nix_hash("sha256-3TNnkdUseCB5NUaSavJdiThU+DK2JVMSsBQcrGI6Eig=")


def test_parse_absolute_and_base_name() -> None:
    text = "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt"
    p = parse_store_path(text)
    assert p.absolute == text
    assert str(p) == "i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt"
    assert p.hash_part == "i9pmrzmpshapij2kin22pff6fc2adavx"
    assert p.name == "hello.txt"
    assert p.digest == nixbase32.decode("i9pmrzmpshapij2kin22pff6fc2adavx")
    assert parse_store_path(str(p)) == p
    assert p.in_store("/tmp/s") == "/tmp/s/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt"
    assert parse_store_path("/tmp/s/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt", "/tmp/s") == p
    assert storepath.is_store_path(text)
    assert not storepath.is_store_path(text + "/bin")


GOOD_NAMES = ["a", "hello-2.12.1", ".foo", "..foo", "a" * 211, "x+y_z?=A.B-C", "-", "a..", "..a-b"]
BAD_NAMES = ["", ".", "..", ".-", ".-x", "..-x", "a" * 212, "a b", "a/b", "caf\u00e9", "a\n", "a:b", "a@b"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name: str) -> None:
    storepath.check_name(name)
    assert parse_store_path("0" * 32 + "-" + name).name == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names(name: str) -> None:
    with pytest.raises(FormatError):
        storepath.check_name(name)
    with pytest.raises(FormatError, match="not a store path"):
        parse_store_path("/nix/store/" + "0" * 32 + "-" + name)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/nix/store/",
        "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx",
        "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-",
        "/nix/store/i9pmrzmpshapij2kin22pff6fc2adave-x",
        "/nix/store/I9pmrzmpshapij2kin22pff6fc2adavx-x",
        "/nix/store/i9pmrzmpshapij2kin22pff6fc2adav-x",
        "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavxx-x",
        "/gnu/store/i9pmrzmpshapij2kin22pff6fc2adavx-x",
        "nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-x",
        "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-x/bin",
        "/nix/store//i9pmrzmpshapij2kin22pff6fc2adavx-x",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(FormatError, match="not a store path"):
        parse_store_path(text)
    assert not storepath.is_store_path(text)


def test_constructor_checks() -> None:
    with pytest.raises(FormatError, match="expected 20 bytes"):
        StorePath(bytes(32), "x")
    with pytest.raises(FormatError, match="empty"):
        StorePath(bytes(20), "")
    with pytest.raises(FormatError, match="longer than 211"):
        StorePath(bytes(20), "a" * 212)


def test_order_and_hash() -> None:
    a, b = StorePath(bytes(20), "a"), StorePath(bytes(19) + b"\x01", "a")
    assert sorted([b, a]) == [a, b]
    assert len({a, StorePath(bytes(20), "a")}) == 1


# --- paths computed as Nix does; each expected value printed by Nix 2.8 -------------------------


def test_add_file_is_recursive_sha256_source() -> None:
    """`nix-store --add hello.txt`."""
    assert HELLO_NAR.algorithm is HashAlgorithm.SHA256
    got = make_fixed_output_path("hello.txt", HELLO_NAR, recursive=True)
    assert got.absolute == "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt"


def test_add_directory() -> None:
    """`nix-store --add d` of a directory with a subdirectory, an executable and a symlink."""
    assert (
        make_fixed_output_path("d", DIR_NAR, True).absolute == "/nix/store/4vqrrkivvjimw0i0s9z919lplqn2xz1n-d"
    )


def test_add_fixed_flat_sha256_and_md5() -> None:
    """`nix-store --add-fixed sha256 hello.txt` and `--add-fixed md5`."""
    sha = hash_bytes(HashAlgorithm.SHA256, HELLO)
    assert make_fixed_output_path("hello.txt", sha, False).absolute == (
        "/nix/store/gy454w1cxaq731grqwylhzf4pp9r5izh-hello.txt"
    )
    md5 = hash_bytes(HashAlgorithm.MD5, HELLO)
    assert make_fixed_output_path("hello.txt", md5, False).absolute == (
        "/nix/store/dra1cz5vbrhclpv4y1q0psnbkxz581bk-hello.txt"
    )


def test_add_fixed_recursive_sha1() -> None:
    """`nix-store --add-fixed --recursive sha1 hello.txt`: fixed:out:r:sha1."""
    nar = _nar_of_regular_file(HELLO)
    h = hash_bytes(HashAlgorithm.SHA1, nar)
    assert hashlib.sha256(nar).digest() == HELLO_NAR.digest  # the NAR below is the right one
    assert make_fixed_output_path("hello.txt", h, True).absolute == (
        "/nix/store/hzq8n5jpi3g2d0xhlvqd8q1gx5c9s6i3-hello.txt"
    )


def test_text_paths() -> None:
    """`builtins.toFile`, without and with references (a .drv is such a text file)."""
    x = make_text_path("x.txt", b"hello")
    assert x.absolute == "/nix/store/88vj4mdd0v081vjikgj4m40wmxmm7cn2-x.txt"
    hello = parse_store_path("/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt")
    content = f"see {x.absolute} and {hello.absolute}".encode()
    want = "/nix/store/7nz9y1px00dykwb9gpnyv04xnmm21hsz-y.txt"
    assert make_text_path("y.txt", content, [x, hello]).absolute == want
    assert make_text_path("y.txt", content, [hello, x, hello]).absolute == want
    assert make_text_path("y.txt", content, [x]).absolute != want


def test_references_only_for_recursive_sha256() -> None:
    ref = StorePath(bytes(20), "r")
    sha = hash_bytes(HashAlgorithm.SHA256, HELLO)
    with pytest.raises(FormatError, match="references"):
        make_fixed_output_path("x", sha, False, [ref])
    with pytest.raises(FormatError, match="references"):
        make_fixed_output_path("x", sha, False, self_reference=True)
    with_ref = make_fixed_output_path("x", sha, True, [ref])
    with_self = make_fixed_output_path("x", sha, True, self_reference=True)
    assert len({with_ref, with_self, make_fixed_output_path("x", sha, True)}) == 3


def test_make_store_path_fingerprint() -> None:
    """The fingerprint and XOR-fold written out by hand."""
    inner = hash_bytes(HashAlgorithm.SHA256, b"content")
    fp = f"source:sha256:{inner.base16}:/nix/store:n".encode()
    full = hashlib.sha256(fp).digest()
    folded = bytes(full[i] ^ (full[i + 20] if i + 20 < 32 else 0) for i in range(20))
    assert make_store_path("source", inner, "n") == StorePath(folded, "n")
    assert make_store_path("source", inner.base16, "n") == StorePath(folded, "n")
    other = make_store_path("source", inner, "n", store_dir="/gnu/store")
    assert other != StorePath(folded, "n")
    with pytest.raises(FormatError, match="hex of a sha256"):
        make_store_path("source", "zz", "n")
    with pytest.raises(FormatError, match="hex of a sha256"):
        make_store_path("source", "00", "n")
    with pytest.raises(FormatError):
        make_store_path("source", inner, "bad name")


def test_output_path_names() -> None:
    h = bytes(range(32))
    out = make_output_path(h, "out", "pkg-1.0")
    dev = make_output_path(h, "dev", "pkg-1.0")
    assert out.name == "pkg-1.0"
    assert dev.name == "pkg-1.0-dev"
    assert out == make_store_path("output:out", NixHash(HashAlgorithm.SHA256, h), "pkg-1.0")
    assert dev == make_store_path("output:dev", NixHash(HashAlgorithm.SHA256, h), "pkg-1.0-dev")


@given(
    st.binary(min_size=20, max_size=20),
    st.from_regex(r"[A-Za-z0-9+_?=][A-Za-z0-9+\-._?=]{0,210}", fullmatch=True),
)
def test_round_trip(digest: bytes, name: str) -> None:
    p = StorePath(digest, name)
    assert parse_store_path(p.absolute) == p
    assert parse_store_path(str(p)) == p


@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_format_error(text: str) -> None:
    try:
        p = parse_store_path(text)
    except FormatError:
        return
    assert text in (p.absolute, str(p))


@given(st.text(alphabet="0123456789abcdfghijklmnpqrsvwxyz-.", min_size=30, max_size=40))
def test_near_store_paths_raise_only_format_error(text: str) -> None:
    try:
        p = parse_store_path(STORE_DIR + "/" + text)
    except FormatError:
        return
    assert str(p) == text


def _nar_of_regular_file(contents: bytes) -> bytes:
    def s(b: bytes) -> bytes:
        return len(b).to_bytes(8, "little") + b + b"\0" * (-len(b) % 8)

    return b"".join(s(x) for x in (b"nix-archive-1", b"(", b"type", b"regular", b"contents", contents, b")"))


def test_name_length_limit_is_inclusive() -> None:
    """A name of exactly MAX_NAME_LEN characters is a store path name; one more is not."""
    storepath.check_name("a" * storepath.MAX_NAME_LEN)
    with pytest.raises(FormatError, match="longer than"):
        storepath.check_name("a" * (storepath.MAX_NAME_LEN + 1))
