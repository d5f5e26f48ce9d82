"""End-to-end fixtures: the real control plane served by uvicorn on a loopback socket in a thread.

Spec: issue 5 (end to end); protocol.md §9 (device flow), §10 (development identity mode).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn

from vega.core.signing import generate_secret_key
from vega.server.app import create_app, identity_for
from vega.server.blobs import LocalBlobStore
from vega.server.db import open_database
from vega.server.identity import Authenticator
from vega.server.service import ServerKeys
from vega.server.settings import ServerSettings


def loopback_socket(backlog: int = 16) -> tuple[socket.socket, str]:
    """A listening socket on a free 127.0.0.1 port, and its ``http://`` URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def serving(app: Any, sock: socket.socket) -> Iterator[list[str]]:
    """Serve ``app`` with uvicorn on ``sock`` in a thread; yield the ``"METHOD /path"`` of each request."""
    requests: list[str] = []

    async def record(scope, receive, send):
        if scope["type"] == "http":
            requests.append(f"{scope['method']} {scope['path']}")
        await app(scope, receive, send)

    uv = uvicorn.Server(uvicorn.Config(record, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield requests
    finally:
        uv.should_exit = True
        thread.join(timeout=30)
        sock.close()


@dataclass
class Server:
    """A development-mode control plane on loopback: its URL, identities, and the requests it saw."""

    url: str
    auth: Authenticator
    requests: list[str]


@contextmanager
def dev_server_at(
    data_dir: Path, *, dev_polls: int = 1, backlog: int = 16, keys_on_disk: bool = False
) -> Iterator[Server]:
    """``create_app`` in development identity mode on SQLite under ``data_dir``, served on loopback.

    ``dev_polls`` is how many ``authorization_pending`` answers the device flow gives before it
    approves (its interval is 0 s), so 1 runs the real polling loop once. ``keys_on_disk``: the
    keys ``vega-server`` keeps in ``data_dir`` (so ``vega-server revoke --data-dir`` signs with
    the same keys), instead of fixed test keys.
    """
    sock, url = loopback_socket(backlog)
    settings = ServerSettings(data_dir=data_dir, public_url=url, dev=True)
    if keys_on_disk:
        from vega.server.__main__ import ensure_keys

        shared, log_key, _ = ensure_keys(settings)
        keys = ServerKeys(shared=shared, log=log_key)
    else:
        keys = ServerKeys(
            shared=generate_secret_key("vega-cache-1", b"\x01" * 32),
            log=generate_secret_key("vega-log-1", b"\x02" * 32),
        )
    db = open_database(settings.resolved_database_url)
    http = httpx2.Client()

    def now_ms() -> int:
        return int(time.time() * 1000)

    auth = identity_for(settings, keys, db, now_ms, http, dev_polls=dev_polls, dev_interval_s=0)
    app = create_app(
        settings, db, LocalBlobStore(settings.resolved_nar_dir), now_ms, keys=keys, authenticator=auth
    )
    try:
        with serving(app, sock) as requests:
            yield Server(url, auth, requests)
    finally:
        http.close()
        db.close()


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[Server]:
    """A development-mode control plane on SQLite in ``tmp_path``, served on loopback."""
    with dev_server_at(tmp_path / "data") as server:
        yield server
