"""Connection and worker bounds of the HTTP server (docs/adr/0013).

What one client can hold, and for how long:

* **Connections.** ``http_max_connections`` is uvicorn's ``limit_concurrency``: past it, new
  requests get 503 at once. Every connection runs under :func:`guarded_protocol`, uvicorn's h11
  protocol with a watchdog: while the server waits for the client (a fresh connection's first
  bytes, the rest of a request head, the rest of a body) and the client sends nothing for
  ``http_read_timeout_s``, the connection is dropped. Waiting on the application (a paused
  read because a worker is behind) does not count. A dropped request's handler sees a client
  disconnect, so a stalled presigned PUT releases its worker threads, temporary file and
  descriptor. Idle keep-alive connections close after ``http_keep_alive_s``; a request head is
  capped by h11 (``h11_max_incomplete_event_size``, 16 KiB).
* **Worker threads.** Blocking work (database, files, signing) runs in anyio's default thread
  pool, whose size is set to ``worker_threads`` at start-up (:func:`limit_worker_threads`).
* **Uploads.** :class:`UploadGate` admits at most ``max_concurrent_uploads`` PUT bodies at once
  (each uses three worker threads of its own, docs/adr/0010), answering 503 with
  ``Retry-After`` past that, and at most one PUT per object key: a second concurrent PUT of the
  same object waits for the first (up to ``upload_wait_s``) instead of receiving its body, and
  is answered 200 if the first stored the object, or 503 if it is still running (an
  idempotent re-PUT after the first finished is received and checked again).

Spec: protocol.md §4.1 (presigned PUT); issue 14 ("The server checks what it stores").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from vega.server.errors import ServiceError
from vega.server.settings import ServerSettings

__all__ = ["UploadGate", "guarded_protocol", "limit_worker_threads", "upload_gate", "uvicorn_options"]

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
"""Largest request head (request line and headers) h11 buffers."""


class UploadGate:
    """Admission of PUT bodies: a bounded number at once, one per object key.

    Used from the event loop only. A PUT of an object while another PUT of the same object is
    in progress waits (holding no thread, file or slot) for that one to end, at most
    ``wait_s``: if it stored the object, the waiting PUT is answered at once (the key is the
    SHA-256 of the bytes, so they are the same bytes); if it failed, the waiting PUT takes its
    turn; if it is still running, 503.

    Args:
        max_uploads: PUT bodies in progress at once.
        wait_s: how long a PUT waits for another PUT of the same object.
    """

    def __init__(self, max_uploads: int, wait_s: float = 60.0) -> None:
        self._max = max_uploads
        self._wait_s = wait_s
        self._active: dict[str, anyio.Event] = {}
        self.waiting = 0
        """PUTs waiting for another PUT of the same object now."""

    @property
    def active(self) -> int:
        """PUT bodies in progress now."""
        return len(self._active)

    async def wait_turn(self, key: str, stored: Callable[[], Awaitable[bool]]) -> bool:
        """Wait until no other PUT of ``key`` runs; True when one that ran meanwhile stored it.

        Call :meth:`claim` right after a False answer (no ``await`` in between).

        Raises:
            ServiceError: 503 when another PUT of ``key`` is still running after ``wait_s``.
        """
        while (event := self._active.get(key)) is not None:
            self.waiting += 1
            try:
                with anyio.move_on_after(self._wait_s) as scope:
                    await event.wait()
            finally:
                self.waiting -= 1
            if scope.cancelled_caught:
                raise ServiceError("another upload of this object is in progress; try again", status=503)
            if await stored():
                return True
        return False

    @contextlib.contextmanager
    def claim(self, key: str) -> Iterator[None]:
        """Hold ``key``'s upload slot for the duration of the block.

        Raises:
            ServiceError: 503 when every slot is taken (or, misused, ``key`` is taken).
        """
        if key in self._active or len(self._active) >= self._max:
            raise ServiceError("too many uploads in progress; try again", status=503)
        event = anyio.Event()
        self._active[key] = event
        try:
            yield
        finally:
            del self._active[key]
            event.set()


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, dropping a connection whose client stalls while we wait for it."""

    read_timeout_s: float = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._last_rx = self.loop.time()
        self._watch_handle: asyncio.TimerHandle | None = self.loop.call_later(self._interval(), self._watch)

    def data_received(self, data: bytes) -> None:
        self._last_rx = self.loop.time()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch_handle is not None:
            self._watch_handle.cancel()
            self._watch_handle = None
        super().connection_lost(exc)

    def _interval(self) -> float:
        return max(0.05, min(1.0, self.read_timeout_s / 4))

    def _waiting_on_client(self) -> bool:
        if self.flow.read_paused:  # the application is behind, not the client
            return False
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            return True
        cycle: RequestResponseCycle | None = self.cycle  # None before the first request
        return state is h11.IDLE and (cycle is None or cycle.response_complete)

    def _watch(self) -> None:
        self._watch_handle = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if not self._waiting_on_client():
            self._last_rx = now
        elif now - self._last_rx >= self.read_timeout_s:
            log.info(
                "dropping a connection silent for %.0f s while a request was awaited", self.read_timeout_s
            )
            self.transport.close()
            return
        self._watch_handle = self.loop.call_later(self._interval(), self._watch)


def guarded_protocol(read_timeout_s: float) -> type[H11Protocol]:
    """The h11 protocol of uvicorn with a read watchdog of ``read_timeout_s`` (pass as ``http=``)."""
    return type("GuardedH11Protocol", (_GuardedH11Protocol,), {"read_timeout_s": float(read_timeout_s)})


def limit_worker_threads(threads: int) -> None:
    """Size anyio's default thread pool (call inside the event loop, e.g. at start-up)."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads


def upload_gate(settings: ServerSettings) -> UploadGate:
    """The upload admission of ``settings``."""
    return UploadGate(settings.max_concurrent_uploads, settings.upload_wait_s)


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """The uvicorn keyword arguments that bound connections (besides host and port)."""
    return {
        "http": guarded_protocol(settings.http_read_timeout_s),
        "limit_concurrency": settings.http_max_connections,
        "timeout_keep_alive": settings.http_keep_alive_s,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
