"""The verifier's memory: remembered checkpoints per origin (issue 3, client side)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import multiprocessing
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vega.client.logstate import LogState, RememberedCheckpoint, default_state_dir
from vega.errors import FormatError, LogForkError, VerificationError

ORIGIN = "vega.test/log"


def cp(size: int, tag: str = "", origin: str = ORIGIN) -> RememberedCheckpoint:
    root = hashlib.sha256(f"{size}{tag}".encode()).digest()
    return RememberedCheckpoint(origin=origin, size=size, root_hash=root, note=f"note {size}{tag}")


def never(old: RememberedCheckpoint) -> None:
    raise AssertionError("no consistency check expected")


def ok(old: RememberedCheckpoint) -> None:
    return None


def test_first_use_remembers(tmp_path: Path) -> None:
    state = LogState(tmp_path)
    assert state.load(ORIGIN) is None
    assert state.advance(cp(5), never) is None
    assert state.load(ORIGIN) == cp(5)
    on_disk = json.loads(state.path_for(ORIGIN).read_text())
    assert on_disk["size"] == 5
    assert on_disk["rootHex"] == cp(5).root_hash.hex()


def test_larger_checkpoint_needs_consistency_with_the_remembered_one(tmp_path: Path) -> None:
    state = LogState(tmp_path)
    state.advance(cp(5), never)
    asked: list[RememberedCheckpoint] = []
    assert state.advance(cp(9), asked.append) == cp(5)
    assert asked == [cp(5)]
    assert state.load(ORIGIN) == cp(9)


def test_failed_consistency_is_a_fork_and_keeps_the_old_checkpoint(tmp_path: Path) -> None:
    state = LogState(tmp_path)
    state.advance(cp(5), never)

    def bad(old: RememberedCheckpoint) -> None:
        raise VerificationError("consistency proof does not verify")

    with pytest.raises(LogForkError, match=r"^log fork or rollback detected: .*size 9 is not consistent"):
        state.advance(cp(9), bad)
    assert state.load(ORIGIN) == cp(5)


def test_older_checkpoint_is_refused(tmp_path: Path) -> None:
    """issue 3: a checkpoint older than the remembered one is refused."""
    state = LogState(tmp_path)
    state.advance(cp(9), never)
    with pytest.raises(LogForkError, match=r"log fork or rollback detected: .*size 5, older than .* 9"):
        state.advance(cp(5), never)
    assert state.load(ORIGIN) == cp(9)


def test_same_size_other_root_is_a_fork(tmp_path: Path) -> None:
    state = LogState(tmp_path)
    state.advance(cp(9), never)
    with pytest.raises(LogForkError, match=r"log fork or rollback detected: .* at size 9 has root"):
        state.advance(cp(9, "forked"), never)
    assert state.advance(cp(9), never) == cp(9)


def test_other_exceptions_from_the_check_propagate_unchanged(tmp_path: Path) -> None:
    state = LogState(tmp_path)
    state.advance(cp(1), never)

    def network(old: RememberedCheckpoint) -> None:
        raise OSError("down")

    with pytest.raises(OSError, match="down"):
        state.advance(cp(2), network)
    assert state.load(ORIGIN) == cp(1)


def test_origins_are_separate_and_file_names_safe(tmp_path: Path) -> None:
    state = LogState(tmp_path)
    state.advance(cp(3, origin="a/../../etc"), never)
    state.advance(cp(7, origin="sth:https://x.test"), never)
    assert state.load("a/../../etc") == cp(3, origin="a/../../etc")
    assert state.load("sth:https://x.test") == cp(7, origin="sth:https://x.test")
    names = sorted(p.name for p in (tmp_path / "logs").iterdir() if p.suffix == ".json")
    assert len(names) == 2
    assert all("/" not in n for n in names)
    assert not [p for p in (tmp_path / "logs").iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"origin": 1, "size": 1, "rootHex": "' + "0" * 64 + '"}',
        '{"origin": "vega.test/log", "size": "1", "rootHex": "' + "0" * 64 + '"}',
        '{"origin": "vega.test/log", "size": true, "rootHex": "' + "0" * 64 + '"}',
        '{"origin": "vega.test/log", "size": 1, "rootHex": "XYZ"}',
        '{"origin": "vega.test/log", "size": 1, "rootHex": "' + "0" * 64 + '", "note": 3}',
        '{"origin": "vega.test/log", "size": -1, "rootHex": "' + "0" * 64 + '"}',
        '{"origin": "other", "size": 1, "rootHex": "' + "0" * 64 + '"}',
    ],
)
def test_corrupt_state_is_refused_loudly(tmp_path: Path, content: str) -> None:
    state = LogState(tmp_path)
    path = state.path_for(ORIGIN)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(FormatError, match="remembered checkpoint"):
        state.load(ORIGIN)
    with pytest.raises(FormatError):
        state.advance(cp(1), never)
    assert path.read_text() == content


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"origin": "", "size": 1, "root_hash": b"\0" * 32}, "origin"),
        ({"origin": "a\nb", "size": 1, "root_hash": b"\0" * 32}, "origin"),
        ({"origin": "a", "size": -1, "root_hash": b"\0" * 32}, "size"),
        ({"origin": "a", "size": 1, "root_hash": b"\0" * 31}, "root hash"),
    ],
)
def test_checkpoint_invariants(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(FormatError, match=match):
        RememberedCheckpoint(**kwargs)  # type: ignore[arg-type]


def test_default_state_dir() -> None:
    assert default_state_dir({"XDG_STATE_HOME": "/s", "HOME": "/h"}) == Path("/s/vega")
    assert default_state_dir({"XDG_STATE_HOME": "rel", "HOME": "/h"}) == Path("/h/.local/state/vega")
    assert default_state_dir({"HOME": "/h"}) == Path("/h/.local/state/vega")


def _advance_many(state_dir: str, start: int, count: int) -> None:
    state = LogState(Path(state_dir))
    for size in range(start, start + count):
        # another process may have got further first: refusing the older one is right
        with contextlib.suppress(LogForkError):
            state.advance(cp(size), ok)


def test_concurrent_processes_never_lose_or_tear_an_update(tmp_path: Path) -> None:
    """Four processes race to advance one origin; the file always parses and ends at the maximum."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_advance_many, args=(str(tmp_path), 1 + 5 * k, 40)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    state = LogState(tmp_path)
    assert state.load(ORIGIN) == cp(15 + 40)
    assert not [p for p in (tmp_path / "logs").iterdir() if p.name.startswith(".tmp-")]


def _hold_lock_and_report(state_dir: str, ready: object, release: object) -> None:
    state = LogState(Path(state_dir))

    def slow_check(old: RememberedCheckpoint) -> None:
        ready.set()  # type: ignore[attr-defined]
        release.wait(30)  # type: ignore[attr-defined]

    state.advance(cp(20), slow_check)


def test_advance_holds_the_lock_across_the_consistency_check(tmp_path: Path) -> None:
    """A second process cannot slip a write between the read and the write of the first."""
    LogState(tmp_path).advance(cp(10), never)
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock_and_report, args=(str(tmp_path), ready, release))
    holder.start()
    assert ready.wait(30)
    lock = LogState(tmp_path).path_for(ORIGIN).with_suffix(".lock")
    fd = os.open(lock, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    release.set()
    holder.join(30)
    assert holder.exitcode == 0
    assert LogState(tmp_path).load(ORIGIN) == cp(20)


@settings(max_examples=100)
@given(st.binary(max_size=300))
def test_arbitrary_state_bytes_raise_only_format_error(data: bytes) -> None:
    """A damaged state file is refused with FormatError, never another exception, never reset."""
    with tempfile.TemporaryDirectory() as tmp:
        state = LogState(Path(tmp))
        path = state.path_for(ORIGIN)
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        with contextlib.suppress(FormatError):
            state.load(ORIGIN)
        assert path.read_bytes() == data
