"""narfs: NAR dump/hash of real trees and the restore security boundary (protocol.md §2.4)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vega.client import narfs
from vega.core import nar
from vega.errors import ConfigError, FormatError


def s(data: bytes | str) -> bytes:
    return nar.frame(data.encode() if isinstance(data, str) else data)


MAGIC = s("nix-archive-1")


def regular(contents: bytes, executable: bool = False) -> bytes:
    exe = s("executable") + s("") if executable else b""
    return s("(") + s("type") + s("regular") + exe + s("contents") + s(contents) + s(")")


def symlink(target: str) -> bytes:
    return s("(") + s("type") + s("symlink") + s("target") + s(target) + s(")")


def directory(*entries: tuple[bytes | str, bytes]) -> bytes:
    body = b"".join(
        s("entry") + s("(") + s("name") + s(name) + s("node") + node + s(")") for name, node in entries
    )
    return s("(") + s("type") + s("directory") + body + s(")")


def dump_bytes(path: Path | str) -> bytes:
    out: list[bytes] = []
    size = narfs.dump(path, lambda v: out.append(bytes(v)))
    data = b"".join(out)
    assert size == len(data)
    return data


def restore_bytes(data: bytes, target: Path) -> None:
    narfs.restore(io.BytesIO(data).read, target)


def make_tree(root: Path) -> None:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a").write_bytes(b"hi")
    (root / "e").write_bytes(b"")
    (root / "sub" / "x.sh").write_bytes(b"#!/bin/sh\n")
    (root / "sub" / "x.sh").chmod(0o755)
    (root / "sub" / "link").symlink_to("../a")
    (root / "abs").symlink_to("/nix/store/eeee-missing")
    (root / "\u00fcn\u00ef").write_bytes("\u00fc".encode())
    (root / "big").write_bytes(bytes(range(256)) * 4096 * 5)  # 5 MiB: crosses buffers
    os.mkdir(os.path.join(os.fsencode(root), b"\xff-not-utf8"))


def test_dump_of_a_tree_parses_to_the_expected_listing(tmp_path: Path) -> None:
    make_tree(tmp_path / "t")
    data = dump_bytes(tmp_path / "t")
    listing = {e.path: e for e in nar.list_nar(nar.read_nar(io.BytesIO(data).read))}
    assert list(listing) == sorted(listing)  # bytewise order
    assert listing[b"sub/x.sh"].executable
    assert not listing[b"a"].executable
    assert listing[b"sub/link"].target == b"../a"
    assert listing[b"big"].size == 5 * 1024 * 1024
    assert listing[b"\xff-not-utf8"].kind == "directory"
    assert listing["\u00fcn\u00ef".encode()].size == 2


def test_entries_are_sorted_by_bytes_not_by_text(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path / "t")
    os.mkdir(root)
    for name in (b"\xc3\xa9", b"\xff", b"Z", b"a", b"\xef\xbf\xbd"):
        with open(os.path.join(root, name), "wb"):
            pass
    data = dump_bytes(tmp_path / "t")
    names = [e.name for e in nar.read_nar(io.BytesIO(data).read) if isinstance(e, nar.EntryStart)]
    assert names == [b"Z", b"a", b"\xc3\xa9", b"\xef\xbf\xbd", b"\xff"]


def test_single_file_and_symlink_roots(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"hi")
    assert dump_bytes(tmp_path / "f") == MAGIC + regular(b"hi")
    (tmp_path / "x").write_bytes(b"")
    (tmp_path / "x").chmod(0o700)
    assert dump_bytes(tmp_path / "x") == MAGIC + regular(b"", executable=True)
    (tmp_path / "l").symlink_to("f")
    assert dump_bytes(tmp_path / "l") == MAGIC + symlink("f")
    (tmp_path / "d").mkdir()
    assert dump_bytes(tmp_path / "d") == MAGIC + directory()


def test_hash_path_is_sha256_of_the_dump(tmp_path: Path) -> None:
    make_tree(tmp_path / "t")
    data = dump_bytes(tmp_path / "t")
    nar_hash, size = narfs.hash_path(tmp_path / "t")
    assert nar_hash.digest == hashlib.sha256(data).digest()
    assert size == len(data)


def test_dump_to_fd_matches_dump_for_files_and_pipes(tmp_path: Path) -> None:
    make_tree(tmp_path / "t")
    want = dump_bytes(tmp_path / "t")
    with open(tmp_path / "out.nar", "wb") as f:
        narfs.dump_to_fd(tmp_path / "t", f.fileno())
    assert (tmp_path / "out.nar").read_bytes() == want
    # O_APPEND refuses sendfile (EINVAL): the buffered copy takes over
    with open(tmp_path / "append.nar", "ab") as f:
        narfs.dump_to_fd(tmp_path / "t", f.fileno())
    assert (tmp_path / "append.nar").read_bytes() == want
    r, w = os.pipe()
    with open(r, "rb") as reader, open(w, "wb") as writer:
        import threading

        got: list[bytes] = []
        t = threading.Thread(target=lambda: got.append(reader.read()))
        t.start()
        narfs.dump_to_fd(tmp_path / "t", writer.fileno())
        writer.close()
        t.join()
    assert got == [want]


def test_dump_refuses_special_files(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    os.mkfifo(tmp_path / "t" / "fifo")
    with pytest.raises(FormatError, match=r"unsupported type: .*fifo"):
        dump_bytes(tmp_path / "t")
    with pytest.raises(FormatError, match="unsupported type"):
        dump_bytes(tmp_path / "t" / "fifo")


def test_dump_of_a_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        narfs.hash_path(tmp_path / "nope")


def test_consumer_error_stops_the_walk(tmp_path: Path) -> None:
    make_tree(tmp_path / "t")

    def sink(view: memoryview) -> None:
        raise BrokenPipeError

    with pytest.raises(BrokenPipeError):
        narfs.dump(tmp_path / "t", sink)


# -- restore ---------------------------------------------------------------------------------


def test_restore_round_trip_keeps_modes_and_links(tmp_path: Path) -> None:
    make_tree(tmp_path / "t")
    data = dump_bytes(tmp_path / "t")
    restore_bytes(data, tmp_path / "r")
    assert dump_bytes(tmp_path / "r") == data
    assert os.stat(tmp_path / "r" / "sub" / "x.sh").st_mode & stat.S_IXUSR
    assert not os.stat(tmp_path / "r" / "a").st_mode & stat.S_IXUSR
    assert os.readlink(tmp_path / "r" / "abs") == "/nix/store/eeee-missing"
    assert sorted(os.listdir(tmp_path)) == ["r", "t"]  # no scratch directory left


@pytest.mark.parametrize(
    "data",
    [MAGIC + regular(b"x", executable=True), MAGIC + symlink("/etc/passwd"), MAGIC + directory()],
    ids=["file", "symlink", "empty-dir"],
)
def test_restore_non_directory_and_empty_roots(tmp_path: Path, data: bytes) -> None:
    restore_bytes(data, tmp_path / "r")
    assert dump_bytes(tmp_path / "r") == data


trees = st.recursive(
    st.one_of(
        st.tuples(st.just("file"), st.booleans(), st.binary(max_size=20)),
        st.tuples(st.just("link"), st.text("ab./", min_size=1, max_size=6)),
    ),
    lambda kids: st.dictionaries(st.text("abc\u00e9", min_size=1, max_size=3), kids, max_size=3).map(
        lambda d: ("dir", d)
    ),
    max_leaves=8,
)


def build(path: str, tree: tuple[object, ...]) -> None:
    if tree[0] == "file":
        with open(path, "wb") as f:
            f.write(tree[2])  # type: ignore[arg-type]
        os.chmod(path, 0o755 if tree[1] else 0o644)
    elif tree[0] == "link":
        os.symlink(tree[1], path)  # type: ignore[arg-type]
    else:
        os.mkdir(path)
        for name, sub in tree[1].items():  # type: ignore[attr-defined]
            build(os.path.join(path, name), sub)


@settings(max_examples=40)
@given(trees)
def test_dump_restore_dump_round_trip(tree: tuple[object, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        build(os.path.join(tmp, "t"), tree)
        data = dump_bytes(os.path.join(tmp, "t"))
        restore_bytes(data, Path(tmp, "r"))
        assert dump_bytes(os.path.join(tmp, "r")) == data


HOSTILE = {
    "dotdot": MAGIC + directory(("..", regular(b"pwned"))),
    "slash": MAGIC + directory(("a", directory()), ("a/../../x", regular(b"pwned"))),
    "through-symlinked-dir": MAGIC
    + directory(("a", symlink("OUTSIDE")), ("a", directory(("x", regular(b"pwned"))))),
    "file-over-symlink": MAGIC + directory(("a", symlink("OUTSIDE/x")), ("a", regular(b"pwned"))),
    "out-of-order": MAGIC + directory(("b", regular(b"")), ("a", regular(b"pwned"))),
    "trailing": MAGIC + directory(("a", regular(b"data"))) + b"junk",
    "truncated-mid-file": (MAGIC + directory(("a", regular(b"data" * 1000))))[:-100],
    "huge-name": MAGIC
    + s("(")
    + s("type")
    + s("directory")
    + s("entry")
    + s("(")
    + s("name")
    + (1 << 40).to_bytes(8, "little"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_restore_refuses_hostile_nar_and_leaves_nothing(tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    parent = tmp_path / "work"
    parent.mkdir()
    data = HOSTILE[case].replace(s("OUTSIDE"), s(str(outside))).replace(s("OUTSIDE/x"), s(f"{outside}/x"))
    with pytest.raises(FormatError):
        restore_bytes(data, parent / "r")
    assert os.listdir(parent) == []
    assert os.listdir(outside) == []


def test_restore_failure_after_many_files_leaves_nothing(tmp_path: Path) -> None:
    make_tree(tmp_path / "t")
    data = dump_bytes(tmp_path / "t")
    (tmp_path / "work").mkdir()
    for cut in (len(data) // 3, len(data) - 8):
        with pytest.raises(FormatError, match="truncated"):
            restore_bytes(data[:cut], tmp_path / "work" / "r")
        assert os.listdir(tmp_path / "work") == []


def test_restore_refuses_an_existing_target_and_leaves_it_alone(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "f").write_bytes(b"keep")
    (tmp_path / "l").symlink_to("nowhere")
    for name in ("r", "f", "l"):
        with pytest.raises(ConfigError, match="restore target already exists"):
            restore_bytes(MAGIC + regular(b"new"), tmp_path / name)
    assert os.listdir(tmp_path / "r") == []
    assert (tmp_path / "f").read_bytes() == b"keep"
    assert sorted(os.listdir(tmp_path)) == ["f", "l", "r"]


def test_restore_needs_an_existing_parent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="parent is not a directory"):
        restore_bytes(MAGIC + regular(b""), tmp_path / "missing" / "r")


def test_rename_noreplace_refuses_to_replace(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        narfs._rename_noreplace(os.fsencode(tmp_path / "src"), os.fsencode(tmp_path / "dst"))
    with pytest.raises(FileNotFoundError):
        narfs._rename_noreplace(os.fsencode(tmp_path / "nope"), os.fsencode(tmp_path / "x"))


def test_restore_refuses_a_decompression_bomb_and_leaves_nothing(tmp_path: Path) -> None:
    import zstandard

    from vega.core.compression import Compression, DecompressingReader

    size = 64 << 20
    head = MAGIC + s("(") + s("type") + s("regular") + s("contents") + size.to_bytes(8, "little")
    z = zstandard.ZstdCompressor(level=1).compressobj()
    bomb = z.compress(head) + z.compress(bytes(size)) + z.compress(s(")")) + z.flush()
    assert len(bomb) < 1 << 20
    reader = DecompressingReader(io.BytesIO(bomb).read, Compression.ZSTD, max_output=1 << 20)
    with pytest.raises(FormatError, match="decompressed output exceeds 1048576 bytes"):
        narfs.restore(reader.read, tmp_path / "r")
    assert os.listdir(tmp_path) == []


def test_confined_restore_refuses_escaping_symlinks_and_keeps_inside_ones(tmp_path: Path) -> None:
    inside = MAGIC + directory(("a", regular(b"x")), ("l", symlink("a")))
    narfs.restore(io.BytesIO(inside).read, tmp_path / "ok", confine_symlinks=True)
    assert os.readlink(tmp_path / "ok" / "l") == "a"
    (tmp_path / "work").mkdir()
    for bad in (
        MAGIC + directory(("l", symlink("/etc"))),
        MAGIC + directory(("a", symlink(".")), ("p", symlink("a/x/../..")), ("x", directory())),
        MAGIC + symlink("anything"),
    ):
        with pytest.raises(FormatError, match="would point outside the restore target"):
            narfs.restore(io.BytesIO(bad).read, tmp_path / "work" / "r", confine_symlinks=True)
        assert os.listdir(tmp_path / "work") == []
    narfs.restore(io.BytesIO(MAGIC + symlink("/etc")).read, tmp_path / "work" / "r")  # not confined: verbatim
    assert os.readlink(tmp_path / "work" / "r") == "/etc"
