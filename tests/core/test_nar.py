"""NAR writer and reader (protocol.md §2.4; Nix archive.cc): vectors, properties, hostile input."""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.core import nar
from vega.core.hashes import HashAlgorithm, NixHash
from vega.errors import FormatError


def s(data: bytes | str) -> bytes:
    """One NAR string."""
    return nar.frame(data.encode() if isinstance(data, str) else data)


def u64(n: int) -> bytes:
    return n.to_bytes(8, "little")


MAGIC = s("nix-archive-1")


def regular(contents: bytes, executable: bool = False) -> bytes:
    exe = s("executable") + s("") if executable else b""
    return s("(") + s("type") + s("regular") + exe + s("contents") + s(contents) + s(")")


def symlink(target: bytes | str) -> bytes:
    return s("(") + s("type") + s("symlink") + s("target") + s(target) + s(")")


def directory(*entries: tuple[bytes | str, bytes]) -> bytes:
    body = b"".join(
        s("entry") + s("(") + s("name") + s(name) + s("node") + node + s(")") for name, node in entries
    )
    return s("(") + s("type") + s("directory") + body + s(")")


def parse(data: bytes, limits: nar.Limits = nar.Limits()) -> list[nar.NarEvent]:  # noqa: B008
    return list(nar.read_nar(io.BytesIO(data).read, limits))


def write(events: list[nar.NarEvent]) -> bytes:
    out: list[bytes] = []
    w = nar.NarWriter(out.append)
    for e in events:
        w.write(e)
    w.close()
    return b"".join(out)


# A tree with every kind of node, written out by hand following archive.cc.
TREE = MAGIC + directory(
    ("a", regular(b"hi")),
    ("bin", directory(("run", regular(b"#!/bin/sh\n", executable=True)))),
    ("e", regular(b"")),
    ("empty", directory()),
    ("link", symlink("../a")),
    ("\u00fcn\u00ef", regular(b"x" * 9)),
)
TREE_EVENTS: list[nar.NarEvent] = [
    nar.DIRECTORY_START,
    nar.EntryStart(b"a"),
    nar.RegularFile(False, 2),
    nar.FileChunk(b"hi"),
    nar.ENTRY_END,
    nar.EntryStart(b"bin"),
    nar.DIRECTORY_START,
    nar.EntryStart(b"run"),
    nar.RegularFile(True, 10),
    nar.FileChunk(b"#!/bin/sh\n"),
    nar.ENTRY_END,
    nar.DIRECTORY_END,
    nar.ENTRY_END,
    nar.EntryStart(b"e"),
    nar.RegularFile(False, 0),
    nar.ENTRY_END,
    nar.EntryStart(b"empty"),
    nar.DIRECTORY_START,
    nar.DIRECTORY_END,
    nar.ENTRY_END,
    nar.EntryStart(b"link"),
    nar.Symlink(b"../a"),
    nar.ENTRY_END,
    nar.EntryStart("\u00fcn\u00ef".encode()),
    nar.RegularFile(False, 9),
    nar.FileChunk(b"x" * 9),
    nar.ENTRY_END,
    nar.DIRECTORY_END,
]


def test_reader_yields_the_events_of_a_handwritten_tree() -> None:
    assert parse(TREE) == TREE_EVENTS


def test_writer_writes_the_handwritten_tree() -> None:
    assert write(TREE_EVENTS) == TREE


def test_single_file_nar_known_bytes() -> None:
    """`nix-store --dump` of a file holding "hi" (archive.cc layout)."""
    data = write([nar.RegularFile(False, 2), nar.FileChunk(b"hi")])
    assert data == MAGIC + s("(") + s("type") + s("regular") + s("contents") + u64(2) + b"hi" + bytes(6) + s(
        ")"
    )
    assert data[:8] == u64(13)
    assert len(data) % 8 == 0


def test_content_address_of_a_nar_hash() -> None:
    digest = hashlib.sha256(TREE).digest()
    h = NixHash(HashAlgorithm.SHA256, digest)
    assert nar.content_address(h) == f"fixed:r:sha256:{h.nix32}"


def test_content_address_requires_sha256() -> None:
    with pytest.raises(FormatError, match="expected a sha256 NAR hash"):
        nar.content_address(NixHash(HashAlgorithm.SHA1, bytes(20)))


def test_list_nar_shows_every_node_with_paths() -> None:
    listing = list(nar.list_nar(iter(TREE_EVENTS)))
    assert [(e.path, e.kind) for e in listing] == [
        (b"", "directory"),
        (b"a", "regular"),
        (b"bin", "directory"),
        (b"bin/run", "regular"),
        (b"e", "regular"),
        (b"empty", "directory"),
        (b"link", "symlink"),
        ("\u00fcn\u00ef".encode(), "regular"),
    ]
    assert listing[3].executable
    assert listing[3].size == 10
    assert listing[6].target == b"../a"


def test_large_file_streams_in_bounded_chunks() -> None:
    size = 5 * 1024 * 1024 + 3
    events = parse(MAGIC + regular(b"z" * size), nar.Limits(chunk_size=1 << 16))
    chunks = [e for e in events if isinstance(e, nar.FileChunk)]
    assert sum(len(c.data) for c in chunks) == size
    assert max(len(c.data) for c in chunks) <= 1 << 16


def test_reader_works_with_one_byte_reads() -> None:
    src = io.BytesIO(TREE)
    events = list(nar.read_nar(lambda n: src.read(1)))
    assert write(events) == TREE


# -- hypothesis: round trips -----------------------------------------------------------------

names = st.binary(min_size=1, max_size=12).filter(
    lambda n: n not in (b".", b"..") and b"/" not in n and b"\0" not in n
)
leaves = st.one_of(
    st.tuples(st.just("file"), st.booleans(), st.binary(max_size=40)),
    st.tuples(st.just("link"), st.binary(min_size=1, max_size=20).filter(lambda t: b"\0" not in t)),
)
trees = st.recursive(
    leaves,
    lambda children: st.dictionaries(names, children, max_size=4).map(lambda d: ("dir", d)),
    max_leaves=12,
)


def events_of(tree: object) -> Iterator[nar.NarEvent]:
    assert isinstance(tree, tuple)
    if tree[0] == "file":
        _, exe, data = tree
        yield nar.RegularFile(exe, len(data))
        if data:
            yield nar.FileChunk(data)
    elif tree[0] == "link":
        yield nar.Symlink(tree[1])
    else:
        yield nar.DIRECTORY_START
        for name in sorted(tree[1]):
            yield nar.EntryStart(name)
            yield from events_of(tree[1][name])
            yield nar.ENTRY_END
        yield nar.DIRECTORY_END


@given(trees)
def test_write_then_read_gives_the_same_events(tree: object) -> None:
    events = list(events_of(tree))
    data = write(events)
    assert parse(data) == events
    assert write(parse(data)) == data


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse(data)


@given(trees, st.data())
def test_mutated_nars_raise_only_format_error(tree: object, data: st.DataObject) -> None:
    raw = bytearray(write(list(events_of(tree))))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    try:
        events = parse(bytes(raw))
    except FormatError:
        return
    assert write(events) == bytes(raw)  # whatever is accepted is canonical


# -- hostile input ---------------------------------------------------------------------------

HOSTILE = {
    "dotdot": MAGIC + directory(("..", regular(b"x"))),
    "dot": MAGIC + directory((".", regular(b"x"))),
    "empty-name": MAGIC + directory(("", regular(b"x"))),
    "slash": MAGIC + directory(("a/b", regular(b"x"))),
    "absolute": MAGIC + directory(("/etc", regular(b"x"))),
    "nul": MAGIC + directory(("a\0b", regular(b"x"))),
    "out-of-order": MAGIC + directory(("b", regular(b"")), ("a", regular(b""))),
    "duplicate": MAGIC + directory(("a", regular(b"")), ("a", regular(b""))),
    "duplicate-dir-over-link": MAGIC
    + directory(("a", symlink("/etc")), ("a", directory(("passwd", regular(b""))))),
    "trailing": TREE + b"\0" * 8,
    "trailing-byte": TREE + b"x",
    "huge-name": MAGIC + directory((b"x", b"")).replace(s("x"), u64(1 << 60)),
    "long-name": MAGIC + directory(("n" * 256, regular(b""))),
    "huge-token": MAGIC + u64(1 << 62),
    "long-target": MAGIC + symlink("t" * 4096),
    "empty-target": MAGIC + symlink(""),
    "nul-target": MAGIC + symlink("a\0b"),
    "bad-magic": s("nix-archive-2") + regular(b""),
    "bad-type": MAGIC + s("(") + s("type") + s("fifo") + s(")"),
    "missing-open": MAGIC + s("type") + s("regular"),
    "unknown-field": MAGIC + s("(") + s("type") + s("regular") + s("size") + u64(0) + s(")"),
    "executable-value": MAGIC
    + s("(")
    + s("type")
    + s("regular")
    + s("executable")
    + s("yes")
    + s("contents")
    + s(b"")
    + s(")"),
    "executable-after-contents": MAGIC
    + s("(")
    + s("type")
    + s("regular")
    + s("contents")
    + s(b"")
    + s("executable")
    + s("")
    + s(")"),
    "bad-entry-token": MAGIC + s("(") + s("type") + s("directory") + s("entri") + s(")"),
    "bad-padding-string": MAGIC[:-1] + b"\x01" + regular(b""),
    "bad-padding-contents": MAGIC + regular(b"abc").replace(b"abc" + bytes(5), b"abc\0\0\0\0\x01"),
    "missing-close": MAGIC + regular(b"")[:-8],
    "huge-file": MAGIC + s("(") + s("type") + s("regular") + s("contents") + u64(1 << 63),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_reader_refuses_hostile_nar(case: str) -> None:
    with pytest.raises(FormatError):
        parse(HOSTILE[case])


def test_error_messages_name_the_problem() -> None:
    with pytest.raises(FormatError, match=r"NAR at byte \d+: NAR entry name not allowed: b'\.\.'"):
        parse(HOSTILE["dotdot"])
    with pytest.raises(FormatError, match="duplicate"):
        parse(HOSTILE["duplicate"])
    with pytest.raises(FormatError, match="out of order"):
        parse(HOSTILE["out-of-order"])
    with pytest.raises(FormatError, match="exceeds the limit of 255"):
        parse(HOSTILE["huge-name"])
    with pytest.raises(FormatError, match="trailing bytes"):
        parse(HOSTILE["trailing"])
    with pytest.raises(FormatError, match="non-zero padding"):
        parse(HOSTILE["bad-padding-contents"])
    with pytest.raises(FormatError, match="unknown node type b'fifo'"):
        parse(HOSTILE["bad-type"])
    with pytest.raises(FormatError, match="expected a keyword, got a string of"):
        parse(HOSTILE["huge-token"])
    with pytest.raises(FormatError, match="executable marker must be empty"):
        parse(HOSTILE["executable-value"])
    with pytest.raises(FormatError, match="expected 'contents'"):
        parse(HOSTILE["unknown-field"])
    with pytest.raises(FormatError, match="expected 'entry' or '\\)'"):
        parse(HOSTILE["bad-entry-token"])
    with pytest.raises(FormatError, match="symlink target not allowed"):
        parse(HOSTILE["empty-target"])
    with pytest.raises(FormatError, match="file of 9223372036854775808 bytes exceeds"):
        parse(HOSTILE["huge-file"])


def test_truncation_at_every_offset_is_refused() -> None:
    for cut in range(len(TREE)):
        with pytest.raises(FormatError, match="truncated"):
            parse(TREE[:cut])


def test_depth_limit() -> None:
    deep = regular(b"")
    for _ in range(5):
        deep = directory(("d", deep))
    assert parse(MAGIC + deep, nar.Limits(max_depth=5))
    with pytest.raises(FormatError, match="nested deeper than 4"):
        parse(MAGIC + deep, nar.Limits(max_depth=4))


def test_validate_name_accepts_any_other_bytes() -> None:
    nar.validate_name(b"\xff\xfe weird \n name", None)
    nar.validate_name(b"b", b"a")


# -- writer misuse ---------------------------------------------------------------------------

WRITER_MISUSE: dict[str, list[nar.NarEvent]] = {
    "chunk-without-file": [nar.FileChunk(b"x")],
    "too-many-bytes": [nar.RegularFile(False, 1), nar.FileChunk(b"xy")],
    "empty-chunk": [nar.RegularFile(False, 1), nar.FileChunk(b"")],
    "event-inside-file": [nar.RegularFile(False, 1), nar.DIRECTORY_END],
    "negative-size": [nar.RegularFile(False, -1)],
    "bad-target": [nar.Symlink(b"")],
    "entry-outside-dir": [nar.EntryStart(b"a")],
    "two-roots": [nar.Symlink(b"x"), nar.Symlink(b"y")],
    "bad-name": [nar.DIRECTORY_START, nar.EntryStart(b"..")],
    "unsorted": [
        nar.DIRECTORY_START,
        nar.EntryStart(b"b"),
        nar.Symlink(b"x"),
        nar.ENTRY_END,
        nar.EntryStart(b"a"),
    ],
    "missing-entry-end": [nar.DIRECTORY_START, nar.EntryStart(b"a"), nar.Symlink(b"x"), nar.DIRECTORY_END],
    "entry-end-outside-entry": [nar.DIRECTORY_START, nar.ENTRY_END],
}


@pytest.mark.parametrize("case", sorted(WRITER_MISUSE))
def test_writer_refuses_invalid_sequences(case: str) -> None:
    w = nar.NarWriter(lambda b: None)
    *ok, bad = WRITER_MISUSE[case]
    for e in ok:
        w.write(e)
    with pytest.raises(FormatError):
        w.write(bad)


def test_writer_close_refuses_an_unfinished_nar() -> None:
    w = nar.NarWriter(lambda b: None)
    w.write(nar.DIRECTORY_START)
    with pytest.raises(FormatError, match="closed before the root node was complete"):
        w.close()


def test_helpers_match_the_writer() -> None:
    assert nar.entry_header(b"a") == s("entry") + s("(") + s("name") + s("a") + s("node")
    assert nar.regular_header(True, 5).endswith(s("executable") + s("") + s("contents") + u64(5))
    assert nar.symlink_node(b"t") == symlink("t")
    assert nar.padding(3) == bytes(5)
    assert nar.padding(8) == b""
    assert directory() == nar.DIRECTORY_HEADER + nar.NODE_END


def test_a_gigabyte_file_streams_in_constant_memory() -> None:
    """Issue 2: a huge file streams through the reader without being held in memory."""
    import tracemalloc

    size = 1 << 30
    head = io.BytesIO(MAGIC + s("(") + s("type") + s("regular") + s("contents") + u64(size))
    tail = io.BytesIO(s(")"))
    body = [size]

    def read(n: int) -> bytes:
        if out := head.read(n):
            return out
        if body[0]:
            k = min(n, body[0])
            body[0] -= k
            return bytes(k)
        return tail.read(n)

    tracemalloc.start()
    try:
        seen = sum(len(e.data) for e in nar.read_nar(read) if isinstance(e, nar.FileChunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == size
    assert peak < 8 * nar.Limits().chunk_size


def listing(**tree: str) -> list[nar.NarListing]:
    """Nodes from path=spec: "dir", "file", or "-> target" for symlinks (keys use __ for /)."""
    out = [nar.NarListing(path=b"", kind="directory")]
    for key, spec in tree.items():
        path = key.replace("__", "/").encode()
        if spec.startswith("-> "):
            out.append(nar.NarListing(path=path, kind="symlink", target=spec[3:].encode()))
        else:
            out.append(nar.NarListing(path=path, kind="regular" if spec == "file" else "directory"))
    return out


@pytest.mark.parametrize(
    ("tree", "escaping"),
    [
        ({"a": "file", "sub": "dir", "sub__l": "-> ../a"}, None),
        ({"sub": "dir", "sub__l": "-> ./../sub//."}, None),
        ({"l": "-> /etc/passwd"}, b"l"),
        ({"l": "-> ../x"}, b"l"),
        ({"sub": "dir", "sub__l": "-> ../../x"}, b"sub/l"),
        # lexically inside, but "a" is the root itself, so a/x/../.. climbs out
        ({"a": "-> .", "x": "dir", "p": "-> a/x/../.."}, b"p"),
        ({"d": "-> sub", "sub": "dir", "p": "-> d/../sub"}, None),
        ({"d": "-> /", "p": "-> d/etc"}, b"d"),
        ({"l1": "-> l2", "l2": "-> l1"}, b"l1"),
        ({"p": "-> missing/../../.."}, None),
        ({"f": "file", "p": "-> f/../.."}, None),
        ({"abs": "-> sub", "sub": "-> /nix/store"}, b"abs"),
    ],
)
def test_find_escaping_symlink(tree: dict[str, str], escaping: bytes | None) -> None:
    assert nar.find_escaping_symlink(listing(**tree)) == escaping


def test_a_symlink_root_always_escapes() -> None:
    assert nar.find_escaping_symlink([nar.NarListing(path=b"", kind="symlink", target=b"x")]) == b""
    assert nar.find_escaping_symlink([nar.NarListing(path=b"", kind="regular")]) is None
