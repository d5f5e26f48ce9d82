"""Wall-clock deadlines for whole HTTP requests: connect, headers and body, however slowly they drip.

``httpx2`` has only per-operation timeouts: each connect, each socket read and each write gets
the full timeout anew, so a server that sends one byte a second (status line, headers or body)
holds a request forever. Here every socket operation of a request gets at most the time left
until the request's deadline, and none once it has passed (``httpcore2.ReadTimeout`` and
friends, which ``httpx2`` turns into its ``TimeoutException``s).

:func:`request_deadline` sets the deadline for the calling thread (a context variable, so
concurrent requests on other threads keep their own); :func:`new_client` builds an
``httpx2.Client`` whose connections honour it. :class:`vega.client.http.Http` sets a deadline
around every attempt; a client built any other way (Starlette's TestClient in tests) simply has
no socket to bound.

Spec: issue 14 ("a server dripping one byte a second cannot hold ``vega verify`` past its
timeout"); cli.md §10.4 (15 s per request, 60 s for a NAR).
"""

from __future__ import annotations

import ssl
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore2
import httpx2

__all__ = ["new_client", "request_deadline"]

_DEADLINE: ContextVar[float | None] = ContextVar("vega_http_deadline", default=None)
"""``time.monotonic()`` value by which the current request must be complete, if any."""


@contextmanager
def request_deadline(seconds: float) -> Iterator[float]:
    """Bound every socket operation of this thread's requests to ``seconds`` from now.

    Nested deadlines keep the earlier one. Yields the absolute deadline (``time.monotonic``).
    """
    at = time.monotonic() + seconds
    outer = _DEADLINE.get()
    if outer is not None:
        at = min(at, outer)
    token = _DEADLINE.set(at)
    try:
        yield at
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` cut to the time left before the deadline; raises ``error`` once it has passed."""
    at = _DEADLINE.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's wall-clock deadline has passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore2.NetworkStream):
    """A network stream whose every operation is bounded by the request deadline."""

    def __init__(self, inner: httpcore2.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.NetworkStream:
        bounded = _bounded(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore2.NetworkBackend):
    """The synchronous socket backend, with every stream bounded by the request deadline."""

    def __init__(self) -> None:
        self._inner = httpcore2.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        bounded = _bounded(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, bounded, local_address, socket_options))

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:  # pragma: no cover - no unix sockets are used
        bounded = _bounded(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover - only used by connect retries
        self._inner.sleep(seconds)


def new_client(**kwargs: Any) -> httpx2.Client:
    """An ``httpx2.Client`` (``kwargs`` as for its constructor) whose requests honour deadlines.

    Without a proxy in the environment every connection goes through the bounded backend; a
    proxied connection keeps ``httpx2``'s per-operation timeouts (and :class:`~vega.client.http.Http`
    still checks the deadline between body chunks).
    """
    if urllib.request.getproxies():
        # httpx2 mounts the environment's proxies only when no transport is given: keep them
        # (a user behind a proxy must still reach the control plane), with per-operation timeouts.
        return httpx2.Client(**kwargs)
    transport = httpx2.HTTPTransport()
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore2.ConnectionPool):
        # NOTE: httpx2 has no public hook for the network backend; the pool reads this attribute
        # each time it opens a connection (httpcore2 ConnectionPool._network_backend).
        pool._network_backend = _Backend()
    return httpx2.Client(transport=transport, **kwargs)
