"""A hostile HTTP server on a real loopback socket, for client attack tests (issue 14).

FIXTURE, not a product: it answers each request from a Python function and can drip a reply
(status line and headers, or the body) a byte at a time, as a server that wants to hold a client
would. HTTP/1.1 with ``Connection: close``; request bodies are read by Content-Length.
"""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Handler", "Reply", "Request", "serve_hostile"]


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    """What to answer; ``drip`` sends the ``headers`` part or the ``body`` part one byte per ``every_s``."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drip: str | None = None
    every_s: float = 0.5
    max_drip_s: float = 40.0
    """After this long the drip stops and the connection is closed (so a broken client test ends)."""


Handler = Callable[[Request], Reply]


@contextmanager
def serve_hostile(handler: Handler) -> Iterator[tuple[str, list[Request]]]:
    """Serve ``handler`` on ``127.0.0.1``; yields the ``http://`` base URL and the requests seen."""
    seen: list[Request] = []
    stopping = threading.Event()

    class _Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline(65536).decode("latin-1").strip()
            if not line:
                return
            method, target = line.split(" ")[:2]
            headers: dict[str, str] = {}
            while True:
                h = self.rfile.readline(65536).decode("latin-1")
                if h in ("\r\n", "\n", ""):
                    break
                k, _, v = h.partition(":")
                headers[k.strip().lower()] = v.strip()
            body = self.rfile.read(int(headers.get("content-length", "0") or 0))
            request = Request(method, target, headers, body)
            seen.append(request)
            reply = handler(request)
            head = f"HTTP/1.1 {reply.status} X\r\n"
            all_headers = {"content-length": str(len(reply.body)), "connection": "close", **reply.headers}
            head += "".join(f"{k}: {v}\r\n" for k, v in all_headers.items()) + "\r\n"
            raw_head = head.encode("utf-8")
            try:
                if reply.drip == "headers":
                    self._drip(raw_head, reply)
                    return
                self.wfile.write(raw_head)
                self.wfile.flush()
                if reply.drip == "body":
                    self._drip(reply.body, reply)
                    return
                self.wfile.write(reply.body)
                self.wfile.flush()
            except OSError:
                return

        def _drip(self, data: bytes, reply: Reply) -> None:
            start = time.monotonic()
            for k in range(len(data)):
                if stopping.is_set() or time.monotonic() - start > reply.max_drip_s:
                    return
                self.wfile.write(data[k : k + 1])
                self.wfile.flush()
                stopping.wait(reply.every_s)

    class _Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = _Server(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
