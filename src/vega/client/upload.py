"""The upload contract shared by ``vega push`` and the CI agent: presign, PUT, push/attest.

Talks to the control plane's write API and to the presigned object URL it hands out.

* ``POST /api/cache/upload-url`` → a presigned URL bound to the object's SHA-256.
* ``PUT <url>`` with the exact compressed bytes, a ``Content-Length`` (never chunked),
  ``x-amz-checksum-sha256: <base64 digest>``, no ``Authorization`` and no content type.
* ``POST /api/cache/push`` (owner) or ``POST /api/cache/attest`` (CI) with the ``AttestBody``.

Retry policy, per logical request (agent.md §7.3): five attempts; 408, 429, 500, 502, 503,
504, network errors, deadline aborts and a failed read of a 2xx body are retried; the sleep
before attempt k+1 is a numeric ``Retry-After`` capped at 30 s, else full jitter
``random() * min(30 s, 0.5 s * 2^(k-1))``; anything else non-2xx fails at once with
``<label> failed: <status>[: <error>]`` (the safe-error rule, cli.md §1.4). A final 401 on a
control-plane call mints a fresh bearer (forced) and tries exactly once more.

The PUT (agent.md §7.4) is bounded by inactivity, not by total time: every attempt gets a
window of ``stall_s`` that re-arms on each body chunk the HTTP stack takes and once more when
the body is exhausted (so the response gets a full window). It is enforced twice: by the
socket timeouts (connect, write, read, pool), which catch a blocked socket, and by the body
iterator against the injected monotonic clock, which catches slow progress between chunks.
Either aborts with ``nar upload stalled: no bytes moved for <n>s``; the optional absolute cap
aborts with ``nar upload timed out after <n>s``; both are retried from byte 0 with a fresh
body. A final 403 is treated as expiry only when the URL carries ``X-Amz-Date`` and
``X-Amz-Expires`` and ``now ≥ date + expires - 60 s``: then one fresh URL is minted and the
PUT runs again once; a 403 inside the window (checksum mismatch, bad signature) propagates.

Spec: protocol.md §4.0-§4.4; agent.md §3 (environment), §6.2 (checksum header), §7.3, §7.4.
"""

from __future__ import annotations

import base64
import logging
import math
import os
import random
import time
from calendar import timegm
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx2

from vega.client.http import Http, HttpLimits, Response, safe_error
from vega.core.api import AttestBody, AttestResult, PushResult, UploadUrlRequest, UploadUrlResponse
from vega.core.hashes import NixHash
from vega.errors import ApiError, AuthError, FormatError, NetworkError, VegaError

__all__ = [
    "Bearer",
    "Body",
    "BytesBody",
    "FileBody",
    "Progress",
    "UploadClient",
    "UploadLimits",
    "env_seconds",
    "is_expired_url",
    "js_number",
    "static_bearer",
]

log = logging.getLogger(__name__)

_RETRYABLE: Final = frozenset({408, 429, 500, 502, 503, 504})
_CHUNK: Final = 1 << 20
_REMINT_MARGIN_MS: Final = 60_000
_ERROR_BODY_BYTES: Final = 64 * 1024

T = TypeVar("T")

Progress = Callable[[int, int], None]
"""``(moved_bytes, total_bytes)`` after every chunk the HTTP stack took (restarts at 0 on a retry)."""

Bearer = Callable[[bool], str]
"""Returns the bearer token; ``True`` forces a fresh one (the single 401 recovery)."""


def static_bearer(token: str) -> Bearer:
    """A bearer that is always ``token`` (the owner credential: nothing to re-mint)."""
    return lambda _force: token


def js_number(text: str) -> float:
    """JavaScript ``Number(text)``: whitespace trimmed, empty is 0, hex and exponents allowed."""
    s = text.strip()
    if not s:
        return 0.0
    if "_" in s:
        return math.nan
    if s in ("Infinity", "+Infinity", "-Infinity"):
        return -math.inf if s[0] == "-" else math.inf
    if any(c.isalpha() and c not in "eExXoObBabcdefABCDEF" for c in s) or "n" in s.lower():
        return math.nan  # Python's float() also reads "inf" and "nan"; Number() does not
    try:
        prefix = s[:2].lower()
        if prefix in ("0x", "0o", "0b"):
            return float(int(s[2:], {"0x": 16, "0o": 8, "0b": 2}[prefix]))
        return float(s)
    except ValueError:
        return math.nan


def env_seconds(value: str | None, default: float) -> float:
    """agent.md §3 ``envSeconds``: a finite positive number of seconds, else ``default``."""
    if value is None:
        return default
    n = js_number(value)
    return n if math.isfinite(n) and n > 0 else default


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadLimits:
    """Deadlines and the retry budget of the upload contract (agent.md §3 defaults)."""

    http_timeout_s: float = 120.0
    """Per-attempt deadline of a control-plane request (``VEGA_HTTP_TIMEOUT_SECONDS``)."""
    stall_s: float = 300.0
    """PUT inactivity window (``VEGA_UPLOAD_STALL_SECONDS``)."""
    cap_s: float = 0.0
    """Absolute per-attempt cap of a PUT, 0 = off (``VEGA_UPLOAD_CAP_SECONDS``)."""
    tries: int = 5
    """Attempts per logical request, including the first."""
    base_backoff_s: float = 0.5
    """Back-off unit: attempt k+1 waits up to ``base * 2^(k-1)``."""
    max_backoff_s: float = 30.0
    """Cap on any back-off, and on a server's ``Retry-After``."""

    def __post_init__(self) -> None:
        if self.http_timeout_s <= 0 or self.stall_s <= 0 or self.cap_s < 0 or self.tries < 1:
            raise ValueError("upload limits must be positive")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> UploadLimits:
        """The limits from ``VEGA_HTTP_TIMEOUT_SECONDS``, ``VEGA_UPLOAD_STALL_SECONDS`` and ``…_CAP_…``."""
        cap = js_number(environ.get("VEGA_UPLOAD_CAP_SECONDS", ""))
        return cls(
            http_timeout_s=env_seconds(environ.get("VEGA_HTTP_TIMEOUT_SECONDS"), 120.0),
            stall_s=env_seconds(environ.get("VEGA_UPLOAD_STALL_SECONDS"), 300.0),
            cap_s=cap if math.isfinite(cap) and cap > 0 else 0.0,
        )


class Body(Protocol):
    """A re-readable request body of known size: every :meth:`chunks` starts at byte 0."""

    @property
    def size(self) -> int:
        """Bytes in the body."""
        ...  # pragma: no cover

    def chunks(self) -> Iterator[bytes]:
        """The body from its first byte, in pieces."""
        ...  # pragma: no cover


@dataclass(frozen=True, slots=True)
class BytesBody:
    """A body held in memory."""

    data: bytes | bytearray
    """The bytes (not modified while the body is in use)."""

    @property
    def size(self) -> int:
        """Bytes in the body."""
        return len(self.data)

    def chunks(self) -> Iterator[bytes]:
        """The body in 1 MiB slices (no copies)."""
        view = memoryview(self.data)
        for at in range(0, len(view), _CHUNK):
            yield view[at : at + _CHUNK]  # type: ignore[misc]  # httpx2 accepts any buffer


@dataclass(frozen=True, slots=True)
class FileBody:
    """A body read from a file (a spooled compressed NAR), re-opened for every attempt."""

    path: str
    """The file."""
    size: int
    """Its size; reading stops there."""

    def chunks(self) -> Iterator[bytes]:
        """The file from its start, in 1 MiB pieces."""
        left = self.size
        with open(self.path, "rb", buffering=0) as f:
            while left > 0:
                piece = f.read(min(_CHUNK, left))
                if not piece:
                    raise NetworkError(f"nar upload: {os.path.basename(self.path)} ended early")
                left -= len(piece)
                yield piece


_AMZ_DATE: Final = "%Y%m%dT%H%M%SZ"


def is_expired_url(url: str, now_ms: int) -> bool:
    """Whether a presigned URL's own SigV4 window has lapsed (``now ≥ date + expires - 60 s``).

    A URL without a parseable ``X-Amz-Date`` and positive integer ``X-Amz-Expires`` never expires
    (it is never re-minted).
    """
    query = parse_qs(urlsplit(url).query)
    date = (query.get("X-Amz-Date") or [""])[0]
    expires = (query.get("X-Amz-Expires") or [""])[0]
    if not expires.isdigit() or int(expires) <= 0:
        return False
    try:
        issued_s = timegm(time.strptime(date, _AMZ_DATE))
    except ValueError:
        return False
    return now_ms >= issued_s * 1000 + int(expires) * 1000 - _REMINT_MARGIN_MS


class _Retry(Exception):
    """A retryable outcome: the error to raise if attempts run out, and any ``Retry-After``."""

    def __init__(self, error: VegaError, retry_after: str | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


class _Abort(Exception):
    """Raised inside the PUT body iterator to abort the attempt (stall or cap)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _status_error(label: str, status: int, body: bytes) -> ApiError:
    message = f"{label} failed: {safe_error(status, body)}"
    cls = AuthError if status in (401, 403) else ApiError
    err = safe_error(status, body).partition(": ")[2] or None
    return cls(message, status=status, error=err)


class UploadClient:
    """The write API and presigned PUTs, with the agent's retry, stall and re-mint rules.

    Args:
        client: the ``httpx2.Client`` everything goes through (Starlette's TestClient in tests).
        base_url: the control plane, normalised (no trailing ``/``).
        bearer: the control-plane token source.
        limits: deadlines and retries.
        now_ms: the wall clock in epoch ms (presigned-URL expiry).
        sleep: back-off sleeps (injected: tests never sleep).
        monotonic: the clock of the stall window and cap.
        random: ``[0, 1)`` for full-jitter back-off.
    """

    def __init__(
        self,
        client: httpx2.Client,
        base_url: str,
        bearer: Bearer,
        limits: UploadLimits | None = None,
        *,
        now_ms: Callable[[], int],
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.limits = limits or UploadLimits()
        self._bearer = bearer
        self._now_ms = now_ms
        self._sleep = sleep
        self._monotonic = monotonic
        self._random = random
        self._http = Http(
            client,
            HttpLimits(timeout_s=self.limits.http_timeout_s, tries=1, max_body_bytes=1 << 20),
            sleep=sleep,
            monotonic=monotonic,
        )
        self.requests = 0
        """HTTP attempts sent (control plane and PUTs); tests and benchmarks read it."""

    # -- the retry policy ----------------------------------------------------------------------

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        limits = self.limits
        if retry_after is not None:
            try:
                seconds = float(retry_after.strip())
            except ValueError:
                seconds = math.nan
            if math.isfinite(seconds) and seconds >= 0:
                return min(limits.max_backoff_s, seconds)
        return self._random() * min(limits.max_backoff_s, limits.base_backoff_s * 2.0 ** (attempt - 1))

    def _retrying(self, label: str, attempt: Callable[[], T]) -> T:
        for k in range(1, self.limits.tries + 1):
            try:
                return attempt()
            except _Retry as e:
                if k == self.limits.tries:
                    raise e.error from None
                log.debug("%s: %s; attempt %d of %d", label, e.error.message, k + 1, self.limits.tries)
                self._sleep(self._backoff(k, e.retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- control-plane calls -------------------------------------------------------------------

    def _post_once(self, path: str, payload: dict[str, object], label: str, token: str) -> object:
        self.requests += 1
        try:
            resp: Response = self._http.post_json(
                f"{self.base_url}{path}", payload, {"authorization": f"Bearer {token}"}
            )
        except NetworkError as e:
            if " timed out:" in e.message or " not read within " in e.message:
                timeout = self.limits.http_timeout_s
                raise _Retry(NetworkError(f"{label} timed out after {timeout:g}s")) from e
            raise _Retry(NetworkError(f"{label} failed: {e.message}")) from e
        if resp.status in _RETRYABLE:
            raise _Retry(_status_error(label, resp.status, resp.body), resp.headers.get("retry-after"))
        if not resp.ok:
            raise _status_error(label, resp.status, resp.body)
        try:
            return resp.json()
        except FormatError as e:
            raise FormatError(f"{label}: {e.message}") from None

    def post(self, path: str, payload: dict[str, object], label: str) -> object:
        """POST JSON with the bearer under the retry policy; return the 2xx JSON body.

        Raises:
            AuthError: 401/403 (after the one forced re-mint for 401).
            ApiError: another non-2xx, final or after the last try.
            NetworkError: the transport failed on every try.
            FormatError: a 2xx body that is not JSON.
        """
        try:
            return self._retrying(label, lambda: self._post_once(path, payload, label, self._bearer(False)))
        except ApiError as e:
            if e.status != 401:
                raise
        try:
            return self._post_once(path, payload, label, self._bearer(True))
        except _Retry as e:
            raise e.error from None

    def presign(self, file_hash: NixHash) -> str:
        """``POST /api/cache/upload-url``: a URL to PUT the object named by ``file_hash``."""
        doc = self.post("/api/cache/upload-url", UploadUrlRequest(file_hash).to_json(), "upload-url")
        try:
            return UploadUrlResponse.from_json(doc).url
        except FormatError as e:
            raise FormatError(f"upload-url: {e.message}") from None

    def push(self, body: AttestBody) -> PushResult:
        """``POST /api/cache/push`` (owner credential); ``attr``/``dir``/``noContinent`` are dropped."""
        payload = body.to_json()
        for key in ("attr", "dir", "noContinent"):
            payload.pop(key, None)
        try:
            return PushResult.from_json(self.post("/api/cache/push", payload, "push"))
        except FormatError as e:
            raise FormatError(f"push: {e.message}") from None

    def attest(self, body: AttestBody) -> AttestResult:
        """``POST /api/cache/attest`` (OIDC bearer)."""
        try:
            return AttestResult.from_json(self.post("/api/cache/attest", body.to_json(), "attest"))
        except FormatError as e:
            raise FormatError(f"attest: {e.message}") from None

    # -- the NAR upload --------------------------------------------------------------------------

    def upload(self, file_hash: NixHash, body: Body, progress: Progress | None = None) -> None:
        """Presign and PUT one compressed NAR; re-mint once when the URL's window has lapsed.

        Raises:
            AuthError: a 403 inside the URL's window, or a second 403 after the re-mint.
            ApiError, NetworkError: as for :meth:`put`.
        """
        url = self.presign(file_hash)
        try:
            self.put(url, file_hash, body, progress)
            return
        except ApiError as e:
            if e.status != 403 or not is_expired_url(url, self._now_ms()):
                raise
            log.info("nar upload: presigned URL expired; minting a fresh one")
        self.put(self.presign(file_hash), file_hash, body, progress)

    def put(self, url: str, file_hash: NixHash, body: Body, progress: Progress | None = None) -> None:
        """PUT ``body`` to a presigned ``url`` under the retry policy (each attempt from byte 0).

        Raises:
            ApiError: a final non-2xx (``nar upload failed: <status>``), or the last retryable one.
            NetworkError: stalled, capped or a transport failure on the last try.
        """
        checksum = base64.b64encode(file_hash.digest).decode("ascii")
        self._retrying("nar upload", lambda: self._put_once(url, checksum, body, progress))

    def _put_once(self, url: str, checksum: str, body: Body, progress: Progress | None) -> None:
        limits = self.limits
        clock = self._monotonic
        start = clock()
        last = start
        window = min(limits.stall_s, limits.cap_s) if limits.cap_s else limits.stall_s
        stalled = f"nar upload stalled: no bytes moved for {limits.stall_s:g}s"
        capped = f"nar upload timed out after {limits.cap_s:g}s"

        def check() -> None:
            now = clock()
            if limits.cap_s and now - start >= limits.cap_s:
                raise _Abort(capped)
            if now - last >= limits.stall_s:
                raise _Abort(stalled)

        def chunks() -> Iterator[bytes]:
            nonlocal last
            moved = 0
            for chunk in body.chunks():
                check()
                last = clock()  # re-armed: the HTTP stack takes the next chunk
                yield chunk
                moved += len(chunk)
                if progress is not None:
                    progress(moved, body.size)
            check()
            last = clock()  # re-armed once more: the response gets a full window

        self.requests += 1
        headers = {"content-length": str(body.size), "x-amz-checksum-sha256": checksum}
        try:
            with self.client.stream(
                "PUT",
                url,
                content=chunks(),
                headers=headers,
                timeout=httpx2.Timeout(window),
                follow_redirects=False,
            ) as resp:
                status = resp.status_code
                error_body = b""
                if not 200 <= status < 300:
                    for piece in resp.iter_bytes():
                        error_body += piece
                        if len(error_body) >= _ERROR_BODY_BYTES:
                            break
                retry_after = resp.headers.get("retry-after")
        except _Abort as e:
            raise _Retry(NetworkError(e.message)) from None
        except httpx2.TimeoutException as e:
            message = capped if limits.cap_s and clock() - start >= limits.cap_s else stalled
            raise _Retry(NetworkError(message)) from e
        except (httpx2.HTTPError, httpx2.StreamError) as e:
            raise _Retry(NetworkError(f"nar upload failed: {str(e)[:200] or type(e).__name__}")) from e
        if status in _RETRYABLE:
            raise _Retry(_status_error("nar upload", status, error_body), retry_after)
        if not 200 <= status < 300:
            raise _status_error("nar upload", status, error_body)
