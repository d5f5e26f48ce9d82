"""A loopback HTTP proxy in front of the real control plane that injects faults on cue.

Faults are one-shot and consumed in order per route kind (``upload-url``, ``put``, ``attest``):
``429``/``503``/``500`` answered without forwarding (``Retry-After: 0``), ``401``, ``lost``
(forwarded, the server acts on it, but the client gets a 502: the retry must be idempotent),
``expire`` (the presigned URL handed out is rewritten to a lapsed ``X-Amz-Date``: the store
answers 403 and the client must mint a new URL), ``stall`` (the PUT is read and never answered).
Presigned URLs are rewritten to point at the proxy so PUTs pass through it too.
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2


class FaultProxy:
    def __init__(self, upstream: str, faults: dict[str, list[str]]) -> None:
        self.upstream = upstream
        self.faults = {k: list(v) for k, v in faults.items()}
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, int]] = []
        """(kind, fault or "pass", status sent to the client)."""
        self.attested: collections.Counter[str] = collections.Counter()
        """Store path -> attest answers of 200 the client received."""
        self.bearers: list[str] = []
        self.release = threading.Event()
        self.url = ""

    def kind(self, method: str, path: str) -> str:
        if method == "PUT":
            return "put"
        if path.startswith("/api/cache/upload-url"):
            return "upload-url"
        if path.startswith("/api/cache/attest"):
            return "attest"
        return "other"

    def next_fault(self, kind: str) -> str:
        with self.lock:
            queue = self.faults.get(kind, [])
            return queue.pop(0) if queue else "pass"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = proxy.kind(self.command, self.path)
                fault = proxy.next_fault(kind)
                if kind == "attest":
                    proxy.bearers.append(self.headers.get("authorization", ""))
                status = 0
                if fault in ("429", "503", "500", "401"):
                    status = int(fault)
                    self._send(
                        status, json.dumps({"error": f"injected {fault}"}).encode(), {"retry-after": "0"}
                    )
                elif fault == "stall":
                    with proxy.lock:
                        proxy.seen.append((kind, fault, -1))
                    proxy.release.wait(60)
                    self.close_connection = True
                    return
                else:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("host", "content-length", "connection")
                    }
                    resp = httpx2.request(
                        self.command, proxy.upstream + self.path, headers=headers, content=body, timeout=60
                    )
                    data = resp.content
                    status = resp.status_code
                    if kind == "upload-url" and status == 200:
                        url = json.loads(data)["url"].replace(proxy.upstream, proxy.url)
                        if fault == "expire":
                            parts = urlsplit(url)
                            query = dict(parse_qsl(parts.query))
                            query["X-Amz-Date"] = "20200101T000000Z"
                            url = urlunsplit(parts._replace(query=urlencode(query)))
                        data = json.dumps({"url": url}).encode()
                    if fault == "lost":
                        status = 502
                        data = b'{"error":"injected lost answer"}'
                    if kind == "attest" and status == 200:
                        with proxy.lock:
                            proxy.attested[json.loads(body)["storePath"]] += 1
                    ctype = resp.headers.get("content-type", "application/octet-stream")
                    self._send(status, data, {"content-type": ctype})
                with proxy.lock:
                    proxy.seen.append((kind, fault, status))

            do_GET = do_POST = do_PUT = do_HEAD = _handle

        return Handler


@contextmanager
def fault_proxy(upstream: str, faults: dict[str, list[str]]) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream.rstrip("/"), faults)
    server = ThreadingHTTPServer(("127.0.0.1", 0), proxy.handler())
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.release.set()
        server.shutdown()
        server.server_close()
