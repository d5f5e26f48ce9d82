"""Local-directory BlobStore: ``<root>/nar/<nix32>.nar.zst``, atomic writes.

A writer holds an exclusive ``flock`` on its temporary file until it commits
or aborts; the kernel drops it when the process dies. Opening the store
deletes the temporary files nobody holds, so an upload cut off by a crash
(SIGKILL, power loss) does not leave its bytes behind for good.

Edge: the local filesystem.
Spec: protocol.md §4.1; house-style.md §4.9.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from vega.core import nixbase32
from vega.errors import FormatError, StorageError, VerificationError

__all__ = ["LocalBlobStore", "is_object_key"]

_KEY = re.compile(f"nar/[{nixbase32.ALPHABET}]{{52}}\\.nar\\.zst")
_CHUNK = 1 << 20


def is_object_key(key: str) -> bool:
    """Whether ``key`` is a content-addressed object key ``nar/<52 nix32>.nar.zst``."""
    return _KEY.fullmatch(key) is not None


class _LocalWriter:
    def __init__(self, root: Path, final: Path, sha256: bytes, max_bytes: int) -> None:
        self._final = final
        self._sha256 = sha256
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self._size = 0
        try:
            fd, name = tempfile.mkstemp(dir=root / "tmp", prefix="upload-")
        except OSError as e:
            raise StorageError(f"cannot create a temporary object: {e.strerror}") from e
        fcntl.flock(fd, fcntl.LOCK_EX)  # "alive": see _sweep_abandoned
        self._tmp = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise StorageError("write after commit or abort")
        self._size += len(chunk)
        if self._size > self._max:
            self.abort()
            raise FormatError(f"object larger than {self._max} bytes")
        self._hash.update(chunk)
        try:
            self._file.write(chunk)
        except OSError as e:
            self.abort()
            raise StorageError(f"cannot write object: {e.strerror}") from e

    def commit(self) -> int:
        if self._file is None:
            raise StorageError("commit after commit or abort")
        if self._hash.digest() != self._sha256:
            self.abort()
            raise VerificationError("body does not match the SHA-256 the URL is bound to")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            self._final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self._final)
            dir_fd = os.open(self._final.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            self.abort()
            raise StorageError(f"cannot store object: {e.strerror}") from e
        return self._size

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


def _sweep_abandoned(tmp: Path) -> None:
    """Delete temporary uploads no live writer holds (left by a process killed mid-upload)."""
    for path in tmp.glob("upload-*"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live upload, in this process or another
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        finally:
            os.close(fd)


class LocalBlobStore:
    """Objects under a directory; temporary files in ``<root>/tmp`` (same filesystem, so rename is atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        """The directory."""
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        (root / "nar").mkdir(parents=True, exist_ok=True)
        _sweep_abandoned(root / "tmp")

    def _path(self, key: str) -> Path:
        if not is_object_key(key):
            raise FormatError(f"not an object key: {key[:80]!r}")
        return self.root / key

    def writer(self, key: str, sha256: bytes, max_bytes: int) -> _LocalWriter:
        """Start writing ``key``; the bytes must hash to ``sha256`` and stay within ``max_bytes``.

        Raises:
            FormatError: ``key`` is not an object key, or does not name ``sha256``.
        """
        path = self._path(key)
        if nixbase32.decode(key[4:56]) != sha256:
            raise FormatError("object key does not name the expected SHA-256")
        return _LocalWriter(self.root, path, sha256, max_bytes)

    def size(self, key: str) -> int | None:
        """The object's size, or None."""
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageError(f"cannot stat object: {e.strerror}") from e

    def open(self, key: str) -> BinaryIO | None:
        """A reader of the object, or None."""
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageError(f"cannot open object: {e.strerror}") from e

    def presign_put(self, key: str, sha256: bytes, ttl_s: int) -> str | None:
        """None: a local directory has no URL of its own; uploads go through the server's PUT route."""
        return None

    def delete(self, key: str) -> bool:
        """Remove the object (the directory entry is fsynced); False when it was absent.

        Raises:
            StorageError: it could not be removed.
        """
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as e:
            raise StorageError(f"cannot remove object: {e.strerror}") from e
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def put(self, key: str, data: bytes) -> None:
        """Store a whole object at once (its key must name its SHA-256)."""
        w = self.writer(key, hashlib.sha256(data).digest(), len(data))
        for i in range(0, len(data), _CHUNK):
            w.write(data[i : i + _CHUNK])
        w.commit()
