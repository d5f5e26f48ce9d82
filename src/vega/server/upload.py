"""Uploads and stored objects: presigned PUT URLs, their check, and proving an object holds its NAR.

Steps 2-3 of an attestation or push (see :mod:`vega.server.service`): the object
``nar/<FileHash>.nar.zst`` must exist with ``FileSize`` bytes (objects are written only when
their SHA-256 matches their key, so existence proves ``FileHash``); it is decompressed and
hashed, and ``NarHash``/``NarSize`` must match (remembered per object, so a retry does not
decompress again).

Spec: protocol.md §4.1 (upload URL), §4.2 (AttestBody); docs/server-api.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import urlencode

import zstandard

from vega.core import nixbase32
from vega.core.api import AttestBody, UploadUrlRequest, UploadUrlResponse, nar_url_for
from vega.core.narinfo import NarInfo, SignedFields
from vega.errors import VerificationError
from vega.server.errors import ServiceError
from vega.server.servicecore import ServiceCore

__all__ = ["UploadRules"]

_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_CHUNK = 1 << 20
_CLOCK_SKEW_MS = 5 * 60 * 1000


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

    def record_upload(self, key: str, size: int) -> None:
        """Remember a stored object (after the blob store committed it)."""
        with self.store.write() as tx:
            self.store.put_object(tx, key, size, self.now())

    def object_size(self, key: str) -> int | None:
        """A stored object's size (the resume probe), or None."""
        return self.blobs.size(key)

    def _verified_narinfo(self, body: AttestBody) -> NarInfo:
        """Steps 2-3: the object exists with the claimed size, and holds the claimed NAR."""
        key = nar_url_for(body.file_hash)
        size = self.blobs.size(key)
        if size is None:
            raise ServiceError(f"{key} has not been uploaded", status=400)
        if size != body.file_size:
            raise VerificationError(
                f"fileSize {body.file_size} does not match the stored object ({size} bytes)"
            )
        with self.store.read() as tx:
            obj = self.store.get_object(tx, key)
        if obj is None or obj.nar_hash is None or obj.nar_size is None:
            nar_hash, nar_size = self._hash_nar(key, body.nar_size)
            if nar_size <= body.nar_size:  # a complete read: remember it
                with self.store.write() as tx:
                    self.store.put_object(tx, key, size, self.now())
                    self.store.set_object_nar(tx, key, nar_hash, nar_size)
        else:
            nar_hash, nar_size = obj.nar_hash, obj.nar_size
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

    def _hash_nar(self, key: str, claimed_size: int) -> tuple[str, int]:
        """Decompress the object and hash it, reading at most one byte past the claimed size."""
        cap = min(self.max_nar_bytes, claimed_size) + 1
        f = self.blobs.open(key)
        if f is None:
            raise ServiceError(f"{key} has not been uploaded", status=400)
        h = hashlib.sha256()
        total = 0
        try:
            with f, zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True) as reader:
                while total < cap:
                    chunk = reader.read(min(_CHUNK, cap - total))
                    if not chunk:
                        break
                    h.update(chunk)
                    total += len(chunk)
        except zstandard.ZstdError:
            raise VerificationError(f"{key} is not a valid zstd stream") from None
        return f"sha256:{nixbase32.encode(h.digest())}", total
