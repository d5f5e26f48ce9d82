"""NAR bytes behind the BlobStore protocol; a local directory is the default.

Objects are content-addressed: the key is ``nar/<nix32 of SHA-256>.nar.zst``,
so identical NARs are stored once and an object never changes. A write
streams into a temporary file while hashing, and becomes visible only if the
digest matches the key's (then fsync, rename, fsync of the directory), so a
reader never sees a partial or wrong object.

Spec: protocol.md §4.1 (checksum-bound uploads); house-style.md §4.9.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

from vega.server.blobs.fs import LocalBlobStore, is_object_key

__all__ = ["BlobStore", "BlobWriter", "LocalBlobStore", "is_object_key"]


class BlobWriter(Protocol):
    """One object being written; nothing is visible until :meth:`commit`."""

    def write(self, chunk: bytes) -> None:
        """Append bytes (raises FormatError past the size cap)."""

    def commit(self) -> int:
        """Check the digest and publish the object; return its size (VerificationError on mismatch)."""

    def abort(self) -> None:
        """Drop everything written; safe to call after commit."""


class BlobStore(Protocol):
    """Content-addressed object storage."""

    def writer(self, key: str, sha256: bytes, max_bytes: int) -> BlobWriter:
        """Start writing the object ``key`` whose bytes must hash to ``sha256``."""

    def size(self, key: str) -> int | None:
        """The object's size, or None when absent."""

    def open(self, key: str) -> BinaryIO | None:
        """A binary reader of the object, or None when absent."""

    def presign_put(self, key: str, sha256: bytes, ttl_s: int) -> str | None:
        """A URL for a direct, checksum-bound PUT (object storage), or None to upload through the server."""

    def delete(self, key: str) -> bool:
        """Remove the object; False when it was absent."""
