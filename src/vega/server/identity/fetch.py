"""Bounded JSON fetches for the identity edges (JWKS discovery, GitHub's user and token APIs).

Every request has a timeout and a body cap; transport failures and oversized or non-JSON bodies
become :class:`~vega.errors.NetworkError` or :class:`~vega.errors.FormatError`, so nothing above
this module sees an ``httpx2`` exception. Spec: house-style.md §4.6 (adapters translate errors).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx2

from vega.errors import FormatError, NetworkError

__all__ = ["FetchLimits", "JsonResponse", "fetch_json", "require_object"]


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Timeout and body cap of one identity fetch."""

    timeout_s: float = 10.0
    """Deadline for connecting and each read."""
    max_body_bytes: int = 256 * 1024
    """Largest body read; JWKS documents and GitHub user objects are a few KiB."""


@dataclass(frozen=True, slots=True)
class JsonResponse:
    """A status and, when the body was a JSON value, that value (else None)."""

    status: int
    """The HTTP status code."""
    body: object
    """The parsed JSON body, or None when it was not JSON."""


def fetch_json(
    http: httpx2.Client,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    limits: FetchLimits = FetchLimits(),
    method: str = "GET",
    json_body: object = None,
    deadline: float | None = None,
) -> JsonResponse:
    """Send ``method url`` (with ``json_body`` as JSON, when given) and parse the answer as JSON.

    At most ``limits.max_body_bytes`` of the answer are read. With ``deadline`` (a
    ``time.monotonic()`` value), the request also fails once that moment has passed, however
    slowly the answer trickles in (each read's timeout is also cut to the time left).

    Raises:
        NetworkError: the transport failed, timed out, passed the deadline, or the body is over
            the cap.
    """
    timeout = limits.timeout_s
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise NetworkError(f"{method} {_where(url)}: deadline passed")
    content = None if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
    send_headers = dict(headers or {})
    if content is not None:
        send_headers["content-type"] = "application/json"
    try:
        with http.stream(
            method,
            url,
            headers=send_headers,
            content=content,
            timeout=httpx2.Timeout(timeout),
            follow_redirects=False,
        ) as resp:
            chunks: list[bytes] = []
            seen = 0
            for chunk in resp.iter_bytes():
                if deadline is not None and time.monotonic() > deadline:
                    raise NetworkError(f"{method} {_where(url)}: deadline passed while reading")
                seen += len(chunk)
                if seen > limits.max_body_bytes:
                    raise NetworkError(f"{method} {_where(url)}: body over {limits.max_body_bytes} bytes")
                chunks.append(chunk)
            status = resp.status_code
    except (httpx2.HTTPError, httpx2.StreamError, httpx2.InvalidURL) as e:
        raise NetworkError(f"{method} {_where(url)} failed: {type(e).__name__}") from e
    try:
        body: object = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        body = None
    return JsonResponse(status=status, body=body)


def _where(url: str) -> str:
    return url.split("?", 1)[0][:200]


def require_object(body: object, what: str) -> dict[str, object]:
    """``body`` as a JSON object, else FormatError naming ``what``."""
    if not isinstance(body, dict):
        raise FormatError(f"{what}: expected a JSON object")
    return body
