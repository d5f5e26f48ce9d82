"""LocalBlobStore: content-addressed, checksum-bound, atomic writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vega.core import nixbase32
from vega.errors import FormatError, VerificationError
from vega.server.blobs import LocalBlobStore, is_object_key


def key_of(data: bytes) -> str:
    return f"nar/{nixbase32.encode(hashlib.sha256(data).digest())}.nar.zst"


def test_write_then_read(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    data = b"compressed nar" * 1000
    key = key_of(data)
    assert blobs.size(key) is None
    assert blobs.open(key) is None
    w = blobs.writer(key, hashlib.sha256(data).digest(), len(data))
    w.write(data[:10])
    assert blobs.size(key) is None  # invisible until commit
    w.write(data[10:])
    assert w.commit() == len(data)
    w.abort()  # harmless after commit
    assert blobs.size(key) == len(data)
    f = blobs.open(key)
    assert f is not None
    with f:
        assert f.read() == data
    blobs.put(key, data)  # same object again: still one object
    assert sorted(p.name for p in (tmp_path / "nar").iterdir()) == [key[4:]]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_mismatch_and_caps_leave_nothing(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    data = b"x" * 100
    key = key_of(data)
    w = blobs.writer(key, hashlib.sha256(data).digest(), 100)
    w.write(b"y" * 100)
    with pytest.raises(VerificationError, match="does not match"):
        w.commit()
    w = blobs.writer(key, hashlib.sha256(data).digest(), 50)
    with pytest.raises(FormatError, match="larger than 50"):
        w.write(data)
    assert blobs.size(key) is None
    assert list((tmp_path / "tmp").iterdir()) == []


def test_keys_are_checked(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    assert not is_object_key("nar/../../etc/passwd")
    assert not is_object_key("nar/" + "e" * 52 + ".nar.zst")  # 'e' is not Nix base-32
    with pytest.raises(FormatError, match="not an object key"):
        blobs.size("../x")
    with pytest.raises(FormatError, match="does not name"):
        blobs.writer(key_of(b"a"), hashlib.sha256(b"b").digest(), 1)
