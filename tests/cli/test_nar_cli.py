"""`vega nar dump|hash|restore|ls`: the installed command as a user runs it."""

from __future__ import annotations

import hashlib
import io
import lzma
import os
from pathlib import Path

import pytest
import zstandard

from tests.conftest import run_vega
from vega.cli.main import main


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "t"
    (root / "sub").mkdir(parents=True)
    (root / "a").write_bytes(b"hi")
    (root / "sub" / "x").write_bytes(b"#!/bin/sh\n")
    (root / "sub" / "x").chmod(0o755)
    (root / "sub" / "l").symlink_to("../a")
    return root


def test_dump_then_hash_agree(tree: Path) -> None:
    dumped = run_vega(["nar", "dump", str(tree)])
    assert dumped.returncode == 0
    assert dumped.stdout.startswith(b"\x0d\0\0\0\0\0\0\0nix-archive-1")
    hashed = run_vega(["nar", "hash", str(tree)])
    assert hashed.returncode == 0
    import base64

    want = "sha256-" + base64.b64encode(hashlib.sha256(dumped.stdout).digest()).decode()
    assert hashed.stdout.decode() == want + "\n"


def test_hash_json(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nar", "hash", "--json", str(tree)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('{"narHash":"sha256:')
    assert '"ca":"fixed:r:sha256:' in out


def test_restore_from_stdin_then_ls(tree: Path, tmp_path: Path) -> None:
    data = run_vega(["nar", "dump", str(tree)]).stdout
    done = run_vega(["nar", "restore", str(tmp_path / "r")], stdin=data)
    assert done.returncode == 0, done.stderr
    assert run_vega(["nar", "dump", str(tmp_path / "r")]).stdout == data
    (tmp_path / "t.nar").write_bytes(data)
    listed = run_vega(["nar", "ls", str(tmp_path / "t.nar")])
    assert listed.stdout == b"./a\n./sub\n./sub/l\n./sub/x\n"
    long = run_vega(["nar", "ls", "-l", "-"], stdin=data)
    assert long.stdout.decode().splitlines() == [
        "-r--r--r--                    2 ./a",
        "dr-xr-xr-x                    0 ./sub",
        "lrwxrwxrwx                    0 ./sub/l -> ../a",
        "-r-xr-xr-x                   10 ./sub/x",
    ]


def test_ls_reads_compressed_nars(tree: Path, tmp_path: Path) -> None:
    data = run_vega(["nar", "dump", str(tree)]).stdout
    (tmp_path / "t.nar.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    (tmp_path / "t.nar.xz").write_bytes(lzma.compress(data))
    for name in ("t.nar.zst", "t.nar.xz"):
        assert run_vega(["nar", "ls", str(tmp_path / name)]).stdout == b"./a\n./sub\n./sub/l\n./sub/x\n"


def test_ls_of_a_single_file_nar_prints_an_empty_name(tmp_path: Path) -> None:
    """Like `nix nar ls -R FILE /`: the root file's relative name is empty."""
    (tmp_path / "f").write_bytes(b"x")
    data = run_vega(["nar", "dump", str(tmp_path / "f")]).stdout
    assert run_vega(["nar", "ls", "-"], stdin=data).stdout == b"\n"
    assert run_vega(["nar", "ls", "-l", "-"], stdin=data).stdout == b"-r--r--r--                    1 \n"


def test_restore_of_a_bad_nar_fails_cleanly(tmp_path: Path) -> None:
    done = run_vega(["nar", "restore", str(tmp_path / "r")], stdin=b"not a nar at all")
    assert done.returncode == 1
    assert done.stderr.decode().startswith("error: NAR at byte 0: expected a keyword")
    assert list(tmp_path.iterdir()) == []


def test_restore_into_an_existing_path_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r").mkdir()
    assert main(["nar", "restore", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: restore target already exists: {tmp_path / 'r'}\n\nTry:\n")


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    done = run_vega(["nar", "hash", str(tmp_path / "nope")])
    assert done.returncode == 1
    assert done.stderr.decode().startswith("error: [Errno 2] No such file or directory")


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["nar", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for sub in ("dump", "hash", "restore", "ls"):
        assert f"vega nar {sub}" in out


def test_nar_without_subcommand_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["nar"])
    assert "usage: vega nar" in capsys.readouterr().out


def test_restore_reads_a_compressed_nar(tree: Path, tmp_path: Path) -> None:
    data = run_vega(["nar", "dump", str(tree)]).stdout
    done = run_vega(["nar", "restore", str(tmp_path / "r")], stdin=zstandard.ZstdCompressor().compress(data))
    assert done.returncode == 0, done.stderr
    assert run_vega(["nar", "dump", str(tmp_path / "r")]).stdout == data


def test_max_size_stops_a_bomb(tmp_path: Path) -> None:
    head = b"\x0d" + bytes(7) + b"nix-archive-1" + bytes(3)
    frame = b"".join(
        len(w).to_bytes(8, "little") + w + bytes(-len(w) % 8) for w in (b"(", b"type", b"regular")
    )
    contents = (8).to_bytes(8, "little") + b"contents" + (1 << 30).to_bytes(8, "little")
    bomb = zstandard.ZstdCompressor(level=1).compress(head + frame + contents + bytes(32 << 20))
    done = run_vega(["nar", "restore", "--max-size", "1000000", str(tmp_path / "r")], stdin=bomb)
    assert done.returncode == 1
    assert "error: zstd stream: decompressed output exceeds 1000000 bytes" in done.stderr.decode()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "b.nar.zst").write_bytes(bomb)
    listed = run_vega(["nar", "ls", "--max-size", "1000000", str(tmp_path / "b.nar.zst")])
    assert listed.returncode == 1
    assert "exceeds 1000000 bytes" in listed.stderr.decode()


def test_restore_confine_symlinks(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "l").symlink_to("/etc/passwd")
    data = run_vega(["nar", "dump", str(tmp_path / "t")]).stdout
    done = run_vega(["nar", "restore", "--confine-symlinks", str(tmp_path / "r")], stdin=data)
    assert done.returncode == 1
    assert done.stderr.decode() == "error: NAR symlink would point outside the restore target: b'l'\n"
    assert not (tmp_path / "r").exists()
    assert run_vega(["nar", "restore", str(tmp_path / "r")], stdin=data).returncode == 0


def test_ls_on_a_terminal_makes_hostile_names_safe(tmp_path: Path) -> None:
    """Issue 14: a NAR's names (often a cache's) cannot drive the terminal; piped, bytes stay exact."""
    from vega.cli.commands.nar import _ls_line
    from vega.core import nar

    root = tmp_path / "t"
    root.mkdir()
    hostile = "a\x1b]0;owned\x07\u202eb\u200bc\x9b"
    (root / hostile).write_bytes(b"x")
    os.symlink(hostile, root / "l")
    data = run_vega(["nar", "dump", str(root)]).stdout
    entries = [e for e in nar.list_nar(nar.read_nar(io.BytesIO(data).read)) if e.path]
    assert [_ls_line(e, long=False, terminal=True) for e in entries] == [b"./a]0;ownedbc", b"./l"]
    long = _ls_line(entries[1], long=True, terminal=True)
    assert long.endswith(b"./l -> a]0;ownedbc")
    assert _ls_line(entries[0], long=False) == b"./" + hostile.encode()
