"""The client's HTTP edge: bounded, retrying requests over an injected ``httpx2.Client``.

Every request has a per-attempt wall-clock deadline covering connecting, the status line, the
headers and the whole body (:mod:`vega.client.deadline` bounds each socket operation by it, so a
server dripping one byte a second cannot hold a request past it), and a body size cap enforced
while reading, so a hostile or broken server can neither hang the client nor make it buffer
without bound. An attempt that ran out of its deadline is not retried: the same server would
drip again. Idempotent requests (GET, HEAD; POST only when the caller says the endpoint
is idempotent) are retried on 408, 429, 5xx and network errors, sleeping for a numeric
``Retry-After`` (capped) or the spec's fixed back-off. After the last try a retryable status is
returned to the caller and a network error is raised as :class:`~vega.errors.NetworkError`, the
library exception kept as ``__cause__``. Nothing above this module sees an ``httpx2`` exception.

Also here: the safe-error rule (never echo a raw body) and the control-plane URL rule.

Spec: cli.md §1.3 (URL validation; this client also accepts ``::1`` as loopback), cli.md §1.4
(safe errors), cli.md §10.4 (15 s, 4 MiB, 3 tries, 150 ms then 300 ms), agent.md §7.3
(retryable statuses, ``Retry-After``), protocol.md §5.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

import httpx2

from vega.client.deadline import request_deadline
from vega.core.safetext import is_safe_text, safe_text
from vega.errors import ApiError, ConfigError, FormatError, NetworkError

__all__ = [
    "Http",
    "HttpLimits",
    "Response",
    "StreamResponse",
    "is_loopback_host",
    "require_safe_url",
    "safe_error",
]

log = logging.getLogger(__name__)

_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """Timeouts, caps and retry counts for one :class:`Http` (the spec's defaults)."""

    timeout_s: float = 15.0
    """Deadline of one attempt: connecting, and reading the whole body."""
    max_body_bytes: int = 4 * 1024 * 1024
    """Largest body :meth:`Http.get` will buffer; larger bodies fail without a retry."""
    tries: int = 3
    """Attempts per idempotent request, including the first."""
    backoff_s: tuple[float, ...] = (0.15, 0.3)
    """Sleep before attempt k+2 when the server sent no usable ``Retry-After`` (last value repeats)."""
    max_retry_after_s: float = 30.0
    """Cap on a server-requested ``Retry-After`` sleep."""
    stream_timeout_s: float = 60.0
    """Deadline of a whole :meth:`Http.get_stream` body (NAR downloads)."""

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.stream_timeout_s <= 0:
            raise ConfigError("http timeouts must be positive")
        if self.max_body_bytes < 0:
            raise ConfigError("http body cap must not be negative")
        if self.tries < 1:
            raise ConfigError("http tries must be at least 1")
        if not self.backoff_s or any(b < 0 for b in self.backoff_s):
            raise ConfigError("http back-off must be a non-empty list of non-negative seconds")


@dataclass(frozen=True, slots=True)
class Response:
    """A fully read response."""

    status: int
    """The HTTP status code."""
    headers: Mapping[str, str]
    """Response headers, names lower-cased (read-only)."""
    body: bytes
    """The body, at most ``HttpLimits.max_body_bytes`` long."""
    url: str = ""
    """The URL that was requested."""

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def json(self) -> object:
        """The body parsed as JSON.

        Raises:
            FormatError: the body is not UTF-8 JSON.
        """
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, RecursionError) as e:
            raise FormatError(f"{_where(self.url)}: response is not JSON") from e

    def text(self) -> str:
        """The body decoded as UTF-8.

        Raises:
            FormatError: the body is not UTF-8.
        """
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"{_where(self.url)}: response is not UTF-8 text") from e


@dataclass(slots=True)
class StreamResponse:
    """A response whose body is read in chunks, bounded in size and time."""

    status: int
    """The HTTP status code."""
    headers: Mapping[str, str]
    """Response headers, names lower-cased."""
    url: str
    """The URL that was requested."""
    _chunks: Iterator[bytes] = field(repr=False)

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def iter_bytes(self) -> Iterator[bytes]:
        """The body in chunks; raises :class:`NetworkError` past the cap, deadline or on a broken stream."""
        return self._chunks


class _TooLargeError(NetworkError):
    """A body over the cap: not transient, so never retried."""


class _DeadlineError(NetworkError):
    """The attempt's wall-clock deadline passed: not retried (the same server would drip again)."""


class Http:
    """Bounded, retrying HTTP requests over an injected client.

    Args:
        client: the ``httpx2.Client`` to send through (Starlette's ``TestClient`` in tests).
        limits: timeouts, caps and retry counts.
        sleep: called with seconds between attempts (injected so tests never sleep).
        monotonic: the clock for body-read deadlines.
    """

    def __init__(
        self,
        client: httpx2.Client,
        limits: HttpLimits | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.limits = limits or HttpLimits()
        self._sleep = sleep
        self._monotonic = monotonic
        self.requests = 0
        """How many HTTP requests (attempts) this instance has sent; benchmarks read it."""

    # -- public verbs ---------------------------------------------------------------------------

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """GET ``url`` and read the body (retried; non-2xx are returned, not raised).

        Raises:
            NetworkError: transport failure after the last try, a body over the cap, or the deadline.
        """
        return self._request("GET", url, headers=headers, body=None, idempotent=True)

    def head(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """HEAD ``url`` (retried; non-2xx are returned, not raised)."""
        return self._request("HEAD", url, headers=headers, body=None, idempotent=True)

    def get_json(self, url: str, headers: Mapping[str, str] | None = None) -> object:
        """GET ``url`` and parse a 2xx JSON body.

        Raises:
            ApiError: the final status was not 2xx (message per the safe-error rule).
            FormatError: the body is not JSON.
            NetworkError: as for :meth:`get`.
        """
        resp = self.get(url, headers)
        if not resp.ok:
            raise ApiError(
                f"GET {_where(url)} failed ({safe_error(resp.status, resp.body)})",
                status=resp.status,
                error=_error_field(resp.body),
            )
        return resp.json()

    def post_json(
        self,
        url: str,
        body: object,
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = False,
    ) -> Response:
        """POST ``body`` as JSON; retried only when the caller marks the endpoint ``idempotent``.

        Raises:
            NetworkError: as for :meth:`get`.
        """
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        merged = {"content-type": "application/json", **(headers or {})}
        return self._request("POST", url, headers=merged, body=data, idempotent=idempotent)

    def post(
        self,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = False,
    ) -> Response:
        """POST raw ``body`` (or none: no content-type is added); retried only when ``idempotent``.

        Raises:
            NetworkError: as for :meth:`get`.
        """
        return self._request("POST", url, headers=headers, body=body, idempotent=idempotent)

    @contextmanager
    def get_stream(
        self, url: str, max_bytes: int, headers: Mapping[str, str] | None = None
    ) -> Iterator[StreamResponse]:
        """GET ``url`` with a streamed body of at most ``max_bytes``, following redirects.

        Connecting is retried like :meth:`get`; once body bytes flow, a failure is raised and not
        retried (the caller is already consuming the stream). Non-2xx bodies are not read.

        Raises:
            NetworkError: transport failure, a body over ``max_bytes``, or ``stream_timeout_s`` passed.
        """
        limits = self.limits
        for attempt in range(1, limits.tries + 1):
            last = attempt == limits.tries
            self.requests += 1
            deadline = request_deadline(limits.stream_timeout_s)
            deadline.__enter__()
            try:
                cm = self.client.stream(
                    "GET",
                    url,
                    headers=dict(headers or {}),
                    timeout=httpx2.Timeout(limits.timeout_s),
                    follow_redirects=True,
                )
                raw = cm.__enter__()
            except (httpx2.HTTPError, httpx2.StreamError) as e:
                deadline.__exit__(None, None, None)
                if last:
                    raise _network_error("GET", url, e, limits.stream_timeout_s) from e  # not yet streaming
                self._sleep(self._delay(attempt, None))
                continue
            except httpx2.InvalidURL as e:
                deadline.__exit__(None, None, None)
                raise ConfigError(f"not a valid URL: {safe_text(url, 200)!r}") from e
            if raw.status_code in _RETRYABLE and not last:
                cm.__exit__(None, None, None)
                deadline.__exit__(None, None, None)
                self._sleep(self._delay(attempt, raw.headers.get("retry-after")))
                continue
            try:
                yield StreamResponse(
                    status=raw.status_code,
                    headers=_headers(raw.headers),
                    url=url,
                    _chunks=self._bounded(raw, url, max_bytes, self._monotonic(), limits.stream_timeout_s),
                )
            finally:
                cm.__exit__(None, None, None)
                deadline.__exit__(None, None, None)
            return

    # -- internals ------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        idempotent: bool,
    ) -> Response:
        limits = self.limits
        tries = limits.tries if idempotent else 1
        for attempt in range(1, tries + 1):
            last = attempt == tries
            self.requests += 1
            try:
                resp = self._once(method, url, headers, body)
            except (_TooLargeError, _DeadlineError):
                raise  # the same server will send the same body again (or drip again)
            except NetworkError as e:
                if last:
                    raise
                log.debug("%s %s: %s; retrying", method, _where(url), e.message)
                self._sleep(self._delay(attempt, None))
                continue
            if resp.status in _RETRYABLE and not last:
                self._sleep(self._delay(attempt, resp.headers.get("retry-after")))
                continue
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, method: str, url: str, headers: Mapping[str, str] | None, body: bytes | None) -> Response:
        limits = self.limits
        start, wall = self._monotonic(), time.monotonic()
        try:
            with (
                request_deadline(limits.timeout_s),
                self.client.stream(
                    method,
                    url,
                    headers=dict(headers or {}),
                    content=body,
                    timeout=httpx2.Timeout(limits.timeout_s),
                    follow_redirects=False,
                ) as raw,
            ):
                # NOTE: a HEAD answer's Content-Length describes the GET body; it carries none.
                cap = limits.max_body_bytes if method != "HEAD" else 0
                parts = list(self._bounded(raw, url, cap, start, limits.timeout_s, head=method == "HEAD"))
                return Response(
                    status=raw.status_code, headers=_headers(raw.headers), body=b"".join(parts), url=url
                )
        except (httpx2.HTTPError, httpx2.StreamError) as e:
            raise _network_error(method, url, e, limits.timeout_s, time.monotonic() - wall) from e
        except httpx2.InvalidURL as e:
            raise ConfigError(f"not a valid URL: {safe_text(url, 200)!r}") from e

    def _bounded(
        self,
        raw: httpx2.Response,
        url: str,
        max_bytes: int,
        start: float,
        deadline_s: float,
        *,
        head: bool = False,
    ) -> Iterator[bytes]:
        declared = raw.headers.get("content-length", "")
        if not head and declared.isdigit() and int(declared) > max_bytes:
            raise _TooLargeError(f"{_where(url)}: response body is over the {max_bytes}-byte limit")
        seen = 0
        try:
            # NOTE: decoded bytes are counted, so a compressed bomb cannot expand past the cap.
            for chunk in raw.iter_bytes(_CHUNK):
                seen += len(chunk)
                if seen > max_bytes:
                    raise _TooLargeError(f"{_where(url)}: response body is over the {max_bytes}-byte limit")
                if self._monotonic() - start > deadline_s:
                    raise _DeadlineError(
                        f"{_where(url)} timed out: the response was not complete within {deadline_s:g}s"
                    )
                yield chunk
        except (httpx2.HTTPError, httpx2.StreamError) as e:
            raise _network_error("GET", url, e, deadline_s, self._monotonic() - start) from e

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        limits = self.limits
        if retry_after is not None:
            try:
                seconds = float(retry_after.strip())
            except ValueError:
                seconds = -1.0
            if not math.isnan(seconds) and seconds >= 0:
                return min(limits.max_retry_after_s, seconds)
        return limits.backoff_s[min(attempt - 1, len(limits.backoff_s) - 1)]


def _headers(headers: httpx2.Headers) -> Mapping[str, str]:
    return MappingProxyType({k.lower(): v for k, v in headers.items()})


def _network_error(
    method: str, url: str, e: Exception, deadline_s: float, elapsed_s: float = 0.0
) -> NetworkError:
    """The transport failure ``e`` as a NetworkError; a spent wall-clock deadline is final."""
    if isinstance(e, httpx2.TimeoutException):
        message = f"{method} {_where(url)} timed out: the response was not complete within {deadline_s:g}s"
        return _DeadlineError(message) if elapsed_s + 0.05 >= deadline_s else NetworkError(message)
    kind = "failed"
    detail = safe_text(str(e), 200) or type(e).__name__
    return NetworkError(f"{method} {_where(url)} {kind}: {detail}")


def _where(url: str) -> str:
    """The URL without query, fragment or user-info, for messages (never leaks a capability query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else url[:200]


def _error_field(body: bytes) -> str | None:
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("error"), str):
        return str(obj["error"])
    return None


def safe_error(status: int, body: bytes) -> str:
    """``<status>`` or ``<status>: <error>`` per the safe-error rule; never the raw body.

    ``<error>`` is the string field ``error`` of a JSON object body, truncated to 200 characters,
    made safe by :func:`vega.core.safetext.safe_text` (so a hostile server cannot drive the terminal).

    Spec: cli.md §1.4.
    """
    error = _error_field(body)
    if error is None:
        return str(status)
    return f"{status}: {safe_text(error[:200], 200)}"


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (lower-case, IPv6 without brackets) is ``localhost``, ``127.0.0.1`` or ``::1``."""
    return host in ("localhost", "127.0.0.1", "::1")


_DEFAULT_PORTS = {"https": 443, "http": 80}


def _remove_dot_segments(path: str) -> str:
    """Resolve ``.`` and ``..`` segments as a URL parser does (RFC 3986 §5.2.4)."""
    if not path:
        return ""
    out: list[str] = []
    segments = path.split("/")
    for k, seg in enumerate(segments[1:] if path.startswith("/") else segments):
        final = k == len(segments) - (2 if path.startswith("/") else 1)
        if seg in (".", "%2e", "%2E"):
            if final:
                out.append("")
        elif seg.lower() in ("..", ".%2e", "%2e.", "%2e%2e"):
            if out:
                out.pop()
            if final:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def _bad_url(why: str) -> ConfigError:
    # NOTE: never echoes the URL: it may come from a hostile server or paste (issue 14).
    return ConfigError(
        f"control plane must be a valid https URL: {why}; refusing to send credentials over plaintext."
    )


def require_safe_url(url: str) -> str:
    """Validate a control-plane URL and return its normalised form.

    Valid iff absolute with scheme ``https``, or scheme ``http`` and host ``localhost``,
    ``127.0.0.1`` or ``::1``. Normalised: ``<scheme>://<host[:port]><path>`` with scheme and host lower-cased,
    the default port dropped, dot-segments resolved, query, fragment and user-info dropped, and one
    trailing ``/`` removed.

    Raises:
        ConfigError: the URL is invalid: the spec's message, except that it says what is wrong
            instead of echoing the URL (issue 14: the URL may be hostile).

    Spec: cli.md §1.3 (this client also accepts ``::1``, as the issue asks; a loopback URL must
    still be http or https).
    """
    if not is_safe_text(url) or " " in url.strip():
        raise _bad_url("it contains spaces, control or invisible characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise _bad_url("its host or port does not parse") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme:
        raise _bad_url("it has no scheme (write https://<host>)")
    if scheme not in _DEFAULT_PORTS:
        raise _bad_url(f"its scheme is not https or http (got {safe_text(scheme, 20)}:)")
    if not host or not parts.netloc:
        raise _bad_url("it has no host")
    if scheme != "https" and not is_loopback_host(host):
        raise _bad_url("it is plaintext http to a host that is not loopback (localhost, 127.0.0.1, ::1)")
    shown_host = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        shown_host = f"{shown_host}:{port}"
    path = _remove_dot_segments(parts.path).removesuffix("/")
    return f"{scheme}://{shown_host}{path}"
