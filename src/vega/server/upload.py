"""Uploads and stored objects: presigned PUT URLs, their check, and proving an object holds its NAR.

The PUT is where an object is checked (ADR 0010): as its body streams through, the server
hashes the compressed bytes (they must match the key the URL is bound to) and, in the same
pass, decompresses them with the capped streaming decoder (:class:`vega.core.compression.
Decompressor`) into a SHA-256 of the NAR and its size. A body that is not one complete zstd
stream, or decompresses past ``max_nar_bytes``, is refused and nothing is kept; otherwise the
object is stored and its ``(fileHash, fileSize, narHash, narSize)`` recorded, computed by the
server from the bytes it stored.

Steps 2-3 of an attestation or push (see :mod:`vega.server.service`) then compare the claims
with that record: no re-read, no decompression. An object with no NAR record (stored before
``cache`` migration 2, or through a presigned URL of object storage, which bypasses our PUT) is
read back and decompressed once, and the result recorded, so each object is decompressed at
most once.

Spec: protocol.md §4.1 (upload URL), §4.2 (AttestBody); docs/server-api.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from vega.core import nixbase32
from vega.core.api import AttestBody, UploadUrlRequest, UploadUrlResponse, nar_url_for
from vega.core.compression import Compression, Decompressor
from vega.core.nar import read_nar
from vega.core.narinfo import NarInfo, SignedFields
from vega.errors import FormatError, VerificationError
from vega.server.blobs import BlobWriter
from vega.server.errors import ServiceError
from vega.server.servicecore import ServiceCore

__all__ = ["NarCheck", "ObjectDigest", "UploadIngest", "UploadRules"]

_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_CHUNK = 1 << 20
_CLOCK_SKEW_MS = 5 * 60 * 1000
_HASH_QUEUE = 8
_STAGE_QUEUE = 8


def _sha256_text(digest: bytes) -> str:
    return f"sha256:{nixbase32.encode(digest)}"


@dataclass(frozen=True, slots=True)
class ObjectDigest:
    """What the server computed from a stored object's bytes (trusted: never the client's claim)."""

    file_hash: str
    """``sha256:<nix32>`` of the stored (compressed) bytes."""
    file_size: int
    """Stored bytes."""
    nar_hash: str
    """``sha256:<nix32>`` of the decompressed NAR."""
    nar_size: int
    """Bytes of the NAR."""


class _NarParse:
    """The NAR handed over in pieces, in order: hashed and parsed by the strict reader.

    A thread of its own pulls the pieces through :func:`vega.core.nar.read_nar` (which accepts
    only a canonical NAR: no ``..``, ``.``, ``/``, empty or unordered names, nothing after the
    end) while hashing every byte. The hand-off holds at most ``_HASH_QUEUE`` pieces (1 MiB
    each), so memory stays bounded when decompression runs ahead; after a parse error the rest
    is drained unread. :meth:`close` ends the thread (idempotent).
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_HASH_QUEUE)
        self._hash = hashlib.sha256()
        self._piece = b""
        self._pos = 0
        self._ended = False
        self.error: FormatError | None = None
        """Why the bytes are not a NAR (set by the thread; final once :meth:`close` returned)."""
        self._thread = threading.Thread(target=self._run, name="vega-nar-parse", daemon=True)
        self._thread.start()

    def _read(self, n: int) -> bytes:
        if self._pos >= len(self._piece):
            piece = None if self._ended else self._queue.get()
            if piece is None:
                self._ended = True
                return b""
            self._hash.update(piece)
            self._piece, self._pos = piece, 0
        out = self._piece[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def _run(self) -> None:
        try:
            for _ in read_nar(self._read):
                pass
        except FormatError as e:
            self.error = e
        while not self._ended:  # after an error: consume (and hash) the rest so producers never wait
            piece = self._queue.get()
            if piece is None:
                self._ended = True
            else:
                self._hash.update(piece)

    def update(self, piece: bytes) -> None:
        self._queue.put(piece)

    def digest(self) -> bytes:
        """The SHA-256 of everything handed over (ends the thread first)."""
        self.close()
        return self._hash.digest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class NarCheck:
    """The NAR inside a zstd stream fed in order: parsed strictly, its SHA-256 and size.

    Decompression is capped at ``max_nar_bytes``; the decompressed bytes go to a thread of their
    own that hashes them and parses them with the strict NAR reader (call :meth:`close` when
    abandoning the check).
    """

    def __init__(self, max_nar_bytes: int) -> None:
        """Accept at most ``max_nar_bytes`` of decompressed output."""
        self._decompressor = Decompressor(Compression.ZSTD, max_output=max_nar_bytes)
        self._parse = _NarParse()

    def close(self) -> None:
        """Stop the parsing thread (idempotent)."""
        self._parse.close()

    @property
    def over_cap(self) -> bool:
        """Whether the output went past the cap (the cause of the last ``feed``'s error)."""
        return self._decompressor.total > self._decompressor.max_output

    def _refuse_if_not_nar(self) -> None:
        if self._parse.error is not None:
            raise VerificationError(f"the object is not a valid NAR: {self._parse.error.message}")

    def feed(self, chunk: bytes) -> None:
        """Decompress, hash and parse the next compressed bytes.

        Raises:
            VerificationError: not a zstd stream, its output exceeds the cap, or what came out so
                far is not a NAR.
        """
        self._refuse_if_not_nar()
        try:
            self._decompressor.feed_to(chunk, self._parse.update)
        except FormatError as e:
            raise VerificationError(f"the object is not a valid zstd stream of a NAR: {e.message}") from None

    def finish(self) -> tuple[str, int]:
        """The NAR's ``sha256:<nix32>`` and size, once the whole stream was fed.

        Raises:
            VerificationError: the stream is truncated (or was empty), or is not one whole NAR.
        """
        try:
            self._decompressor.finish()
        except FormatError as e:
            self.close()
            raise VerificationError(f"the object is not a valid zstd stream of a NAR: {e.message}") from None
        digest = self._parse.digest()
        self._refuse_if_not_nar()
        return _sha256_text(digest), self._decompressor.total


class _Stage:
    """One worker thread applying ``step`` to batches in order; after a failure it skips the rest.

    The hand-off holds at most ``_STAGE_QUEUE`` batches; one producer puts, so :meth:`has_room`
    tells whether a put returns at once.
    """

    def __init__(self, step: Callable[[bytes], None], name: str) -> None:
        self._step = step
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_STAGE_QUEUE)
        self.error: BaseException | None = None
        """The step's first failure."""
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self.error is None and not self._cancelled:
                try:
                    self._step(batch)
                except BaseException as e:  # handed to the producer by UploadIngest
                    self.error = e

    def has_room(self) -> bool:
        return self._queue.qsize() < _STAGE_QUEUE

    def put(self, batch: bytes) -> None:
        self._queue.put(batch)

    def cancel(self) -> None:
        """Skip the queued batches and end the thread (idempotent)."""
        self._cancelled = True
        self.close()

    def close(self) -> None:
        """Let queued batches drain, then end the thread (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class UploadIngest:
    """One PUT body: written to the blob store and checked as a zstd NAR as it streams in.

    Each batch goes to two worker threads (the file write with its SHA-256; decompression,
    which hands its output to a third thread for the NAR's SHA-256), decoupled by bounded
    queues so no stage waits on another batch by batch. One producer calls :meth:`feed` (or
    :meth:`has_room` first, to feed without blocking), then :meth:`commit` or :meth:`abort`.
    """

    def __init__(self, writer: BlobWriter, digest: bytes, max_nar_bytes: int) -> None:
        """Wrap ``writer`` (bound to the SHA-256 ``digest``)."""
        self._writer = writer
        self._digest = digest
        self._check = NarCheck(max_nar_bytes)
        self._stages = (
            _Stage(self._check.feed, "vega-upload-check"),
            _Stage(writer.write, "vega-upload-write"),
        )

    def _raise_failure(self) -> None:
        for stage in self._stages:  # the check's verdict first: it names what is wrong
            if stage.error is not None:
                raise stage.error

    def has_room(self) -> bool:
        """Whether :meth:`feed` would return without waiting."""
        return all(stage.has_room() for stage in self._stages)

    def feed(self, batch: bytes) -> None:
        """Queue the next bytes for both stages (waits while they are behind).

        Raises:
            VerificationError: an earlier batch was not a zstd NAR (FormatError/StorageError
                from the writer likewise).
        """
        self._raise_failure()
        for stage in self._stages:
            stage.put(batch)

    def commit(self) -> ObjectDigest:
        """Drain both stages, check the stream ended whole and the bytes match the key, publish.

        Raises:
            VerificationError: not a zstd NAR, a truncated stream, or bytes that do not hash to
                the key.
        """
        for stage in self._stages:
            stage.close()
        self._raise_failure()
        nar_hash, nar_size = self._check.finish()
        size = self._writer.commit()
        return ObjectDigest(_sha256_text(self._digest), size, nar_hash, nar_size)

    def abort(self) -> None:
        """Drop everything written (waits for the stages to stop)."""
        for stage in self._stages:
            stage.cancel()
        self._check.close()
        self._writer.abort()


class UploadRules(ServiceCore):
    """Presign, check and record uploads; verify an uploaded object against an ``AttestBody``."""

    def _upload_signature(self, key: str, date: str, expires: str) -> str:
        message = f"PUT\n{key}\n{date}\n{expires}".encode()
        return hmac.new(self.keys.upload_secret, message, hashlib.sha256).hexdigest()

    def upload_url(self, request: UploadUrlRequest) -> UploadUrlResponse:
        """Presign a PUT of one object: bound to its key (= its SHA-256) and expiring (§4.1)."""
        key = request.nar_url
        direct = self.blobs.presign_put(key, request.file_hash.digest, self.upload_url_ttl_s)
        if direct is not None:  # object storage takes the bytes itself (checksum-bound, expiring)
            return UploadUrlResponse(direct)
        date = datetime.fromtimestamp(self.now() // 1000, UTC).strftime(_AMZ_DATE)
        expires = str(self.upload_url_ttl_s)
        query = urlencode(
            {
                "X-Amz-Date": date,
                "X-Amz-Expires": expires,
                "X-Vega-Signature": self._upload_signature(key, date, expires),
            }
        )
        return UploadUrlResponse(f"{self.public_url}/api/cache/upload/{key}?{query}")

    def check_upload(
        self, key: str, date: str, expires: str, signature: str, checksum_b64: str | None
    ) -> bytes:
        """Check a presigned PUT's URL and checksum header; return the SHA-256 the body must have.

        Raises:
            ServiceError: 403 for a URL we did not sign or that expired; 400 for a missing or
                mismatching ``x-amz-checksum-sha256``.
        """
        expected = self._upload_signature(key, date, expires)
        if not hmac.compare_digest(expected, signature):
            raise ServiceError("upload URL signature is not valid", status=403)
        try:
            issued_ms = int(datetime.strptime(date, _AMZ_DATE).replace(tzinfo=UTC).timestamp()) * 1000
            ttl_ms = int(expires) * 1000
        except ValueError:
            raise ServiceError("upload URL is malformed", status=403) from None
        now = self.now()
        if now >= issued_ms + ttl_ms or issued_ms > now + _CLOCK_SKEW_MS:
            raise ServiceError("upload URL expired", status=403)
        digest = nixbase32.decode(key[4:56])
        if checksum_b64 is None:
            raise ServiceError("x-amz-checksum-sha256 header is required", status=400)
        if checksum_b64 != base64.b64encode(digest).decode("ascii"):
            raise ServiceError("x-amz-checksum-sha256 does not match the object key", status=400)
        return digest

    def start_upload(self, key: str, digest: bytes, declared_size: int) -> UploadIngest:
        """Begin storing and checking a PUT body of ``declared_size`` bytes bound to ``digest``."""
        return UploadIngest(self.blobs.writer(key, digest, declared_size), digest, self.max_nar_bytes)

    def record_upload(self, key: str, obj: ObjectDigest) -> None:
        """Remember a stored object and what the server computed from its bytes (after commit)."""
        with self.store.write() as tx:
            self.store.put_object(tx, key, obj.file_size, self.now())
            self.store.set_object_nar(
                tx, key, obj.nar_hash, obj.nar_size, file_hash=obj.file_hash, source="upload"
            )

    def object_size(self, key: str) -> int | None:
        """A stored object's size (the resume probe), or None."""
        return self.blobs.size(key)

    def _verified_narinfo(self, body: AttestBody) -> NarInfo:
        """Steps 2-3: the object exists with the claimed size, and holds the claimed NAR."""
        key = nar_url_for(body.file_hash)
        size = self.blobs.size(key)
        if size is None:
            raise ServiceError(f"{key} has not been uploaded", status=400)
        with self.store.read() as tx:
            obj = self.store.get_object(tx, key)
        if obj is not None and obj.nar_hash is not None and obj.nar_size is not None:
            # Recorded by the server from the stored bytes (during the PUT or one earlier read).
            file_size, nar_hash, nar_size = obj.size, obj.nar_hash, obj.nar_size
            file_hash = obj.file_hash
        else:
            file_size, file_hash = size, None  # existence under its key proves the file hash
            if size != body.file_size:
                raise VerificationError(
                    f"fileSize {body.file_size} does not match the stored object ({size} bytes)"
                )
            nar_hash, nar_size = self._hash_nar(key, size, body.nar_size)
        if file_size != body.file_size or size != file_size:
            raise VerificationError(
                f"fileSize {body.file_size} does not match the stored object ({size} bytes)"
            )
        if file_hash is not None and file_hash != str(body.file_hash):
            raise VerificationError("fileHash does not match the stored object")
        if nar_size != body.nar_size or nar_hash != str(body.nar_hash):
            raise VerificationError("narHash/narSize do not match the uploaded NAR")
        return NarInfo(
            signed=SignedFields(
                store_path=body.store_path,
                nar_hash=body.nar_hash,
                nar_size=body.nar_size,
                references=body.references,
            ),
            url=key,
            compression="zstd",
            file_hash=body.file_hash,
            file_size=body.file_size,
            deriver=body.deriver,
        )

    def _hash_nar(self, key: str, size: int, claimed_nar_size: int) -> tuple[str, int]:
        """Read the object back, decompress and hash it; record the result when the read was whole.

        Decompression stops one byte past the claimed NAR size (a mismatch either way), so a
        lying claim costs no more than the truth; only a complete stream is recorded.
        """
        f = self.blobs.open(key)
        if f is None:
            raise ServiceError(f"{key} has not been uploaded", status=400)
        self.nar_reads += 1
        check = NarCheck(min(self.max_nar_bytes, claimed_nar_size + 1))
        try:
            with f:
                try:
                    while chunk := f.read(_CHUNK):
                        check.feed(chunk)
                except VerificationError:
                    if check.over_cap and claimed_nar_size < self.max_nar_bytes:
                        raise VerificationError("narHash/narSize do not match the uploaded NAR") from None
                    raise
            nar_hash, nar_size = check.finish()
        finally:
            check.close()
        with self.store.write() as tx:
            self.store.put_object(tx, key, size, self.now())
            self.store.set_object_nar(tx, key, nar_hash, nar_size, source="read")
        return nar_hash, nar_size
