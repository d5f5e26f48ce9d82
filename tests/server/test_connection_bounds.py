"""What one client can hold of a real ``vega-server serve`` (docs/adr/0013; issue 14).

Real sockets against a real server process: a stalled presigned PUT is dropped after the body
read timeout and releases its threads, temporary file and descriptor; one object is never
received by two PUTs at once (the second waits and is answered from the first, takes its turn
if the first fails, or gets 503), yet an idempotent re-PUT after the first finished works;
idle and half-sent connections are closed on a bounded timer; PUT bodies and connections are
admitted up to a bound (503 past it). The server runs with a read timeout of 1 s, so each
wait below is for an event that must happen, with a generous deadline, never a measurement.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
import zstandard

from tests.server.attestload import Job, ServerProcess, ci_token, synthetic_nar
from vega.core import nixbase32
from vega.server.store import Store

DEADLINE_S = 30.0


def _start(tmp_path: Path, database_url: tuple[str, str | None], **env: str) -> ServerProcess:
    url, schema = database_url
    s = ServerProcess(
        tmp_path / "data",
        postgres=None if schema is None else (url, schema),
        env={f"VEGA_SERVER_{k.upper()}": v for k, v in env.items()},
    )
    s.start()
    return s


@pytest.fixture
def server(tmp_path: Path, database_url: tuple[str, str | None]) -> Iterator[ServerProcess]:
    s = _start(tmp_path, database_url, http_read_timeout_s="1", max_concurrent_uploads="2")
    try:
        yield s
    finally:
        s.stop()


def wait_until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)


def closed_by_server(s: socket.socket) -> bool:
    """Read until the server closes the connection (True), or the deadline passes (False)."""
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def presigned(server: ServerProcess, body: bytes) -> tuple[str, str]:
    """A presigned PUT target (path and query) for ``body``, and its object key."""
    file_hash = "sha256:" + nixbase32.encode(hashlib.sha256(body).digest())
    key = f"nar/{file_hash[7:]}.nar.zst"
    with httpx2.Client(timeout=DEADLINE_S) as c:
        token = ci_token(c, server.url, Job("alice/hello", str(uuid.uuid4().int % 10**9 + 10**9)))
        r = c.post(
            f"{server.url}/api/cache/upload-url",
            headers={"authorization": f"Bearer {token}"},
            json={"narUrl": key, "fileHash": file_hash},
        )
        r.raise_for_status()
    parts = urlsplit(r.json()["url"])
    return f"{parts.path}?{parts.query}", key


def put_head(target: str, body: bytes) -> bytes:
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return (
        f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        f"x-amz-checksum-sha256: {checksum}\r\n\r\n"
    ).encode()


def status_of(s: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, "connection closed before a status line"
        data += chunk
    return int(data.split(b" ", 2)[1])


def nar_body(size: int = 1 << 20) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(synthetic_nar(os.urandom(size)))


def temp_files(server: ServerProcess) -> list[Path]:
    return list((server.data_dir / "nars" / "tmp").iterdir())


def open_temp_descriptors(server: ServerProcess) -> list[str]:
    assert server.proc is not None
    fds = Path(f"/proc/{server.proc.pid}/fd")
    links = []
    for fd in fds.iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:
            continue
    return [link for link in links if "/nars/tmp/upload-" in link]


def thread_count(server: ServerProcess) -> int:
    assert server.proc is not None
    return len(os.listdir(f"/proc/{server.proc.pid}/task"))


def uploads_in_progress(server: ServerProcess) -> int:
    text = httpx2.get(f"{server.url}/metrics", timeout=DEADLINE_S).text
    line = next(x for x in text.splitlines() if x.startswith("vega_uploads_in_progress "))
    return int(line.split()[1])


def object_recorded(server: ServerProcess, key: str) -> bool:
    db = server.open_database()
    try:
        store = Store(db)
        with store.read() as tx:
            return store.get_object(tx, key) is not None
    finally:
        db.close()


def test_a_stalled_put_is_dropped_and_releases_threads_temp_file_and_descriptor(
    server: ServerProcess,
) -> None:
    body = nar_body()
    target, key = presigned(server, body)
    threads_before = thread_count(server)
    s = connect(server)
    s.sendall(put_head(target, body) + body[: len(body) // 2])  # then nothing more
    wait_until("the upload started", lambda: len(open_temp_descriptors(server)) == 1)
    assert len(temp_files(server)) == 1
    wait_until("the upload threads started", lambda: thread_count(server) >= threads_before + 3)
    assert closed_by_server(s), "the server kept a stalled upload open"
    s.close()
    wait_until("the temporary file is gone", lambda: temp_files(server) == [])
    wait_until("the descriptor is closed", lambda: open_temp_descriptors(server) == [])
    wait_until("the upload threads ended", lambda: thread_count(server) <= threads_before)
    assert uploads_in_progress(server) == 0
    assert not object_recorded(server, key)
    assert httpx2.head(f"{server.url}/{key}", timeout=DEADLINE_S).status_code == 404


@pytest.fixture
def start(tmp_path: Path, database_url: tuple[str, str | None]) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        s = _start(tmp_path / str(len(started)), database_url, **env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def metric(server: ServerProcess, name: str) -> int:
    text = httpx2.get(f"{server.url}/metrics", timeout=DEADLINE_S).text
    return sum(int(x.split()[-1]) for x in text.splitlines() if x.split("{")[0].split(" ")[0] == name)


def put_in_thread(server: ServerProcess, target: str, body: bytes) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()

    def run() -> None:
        r = httpx2.put(
            f"{server.url}{target}",
            content=body,
            headers={"x-amz-checksum-sha256": checksum},
            timeout=DEADLINE_S,
        )
        answers.append((r.status_code, r.text, r.headers.get("retry-after")))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, answers


def test_a_second_put_of_an_object_waits_for_the_first_and_its_body_is_not_received(
    start: Callable[..., ServerProcess],
) -> None:
    server = start(http_read_timeout_s="60", upload_wait_s="60")
    body = nar_body()
    target, key = presigned(server, body)
    first = connect(server)
    first.sendall(put_head(target, body) + body[:1000])
    wait_until("the first upload started", lambda: uploads_in_progress(server) == 1)
    second, answers = put_in_thread(server, target, body)  # the same URL, at once
    wait_until("the second upload waits", lambda: metric(server, "vega_uploads_waiting") == 1)
    assert uploads_in_progress(server) == 1  # one body at a time: no second ingest, file or threads
    assert len(temp_files(server)) == 1
    first.sendall(body[1000:])
    assert status_of(first) == 200
    first.close()
    second.join(DEADLINE_S)
    assert answers[0][0] == 200, answers
    assert metric(server, "vega_uploads_total") == 1  # the second body was never ingested
    again, answers = put_in_thread(server, target, body)  # afterwards: an idempotent re-PUT
    again.join(DEADLINE_S)
    assert answers[0][0] == 200, answers
    assert metric(server, "vega_uploads_total") == 2
    assert httpx2.get(f"{server.url}/{key}", timeout=DEADLINE_S).content == body
    assert object_recorded(server, key)


def test_a_second_put_takes_its_turn_when_the_first_stalls(start: Callable[..., ServerProcess]) -> None:
    server = start(http_read_timeout_s="1", upload_wait_s="60")
    body = nar_body()
    target, key = presigned(server, body)
    first = connect(server)
    first.sendall(put_head(target, body) + body[:1000])  # then silence: dropped after 1 s
    wait_until("the first upload started", lambda: uploads_in_progress(server) == 1)
    second, answers = put_in_thread(server, target, body)
    assert closed_by_server(first)
    first.close()
    second.join(DEADLINE_S)
    assert answers[0][0] == 200, answers
    assert metric(server, "vega_uploads_total") == 1  # the second's own body, checked and stored
    assert object_recorded(server, key)
    assert temp_files(server) == []


def test_a_second_put_that_cannot_wait_gets_a_clear_503(start: Callable[..., ServerProcess]) -> None:
    server = start(http_read_timeout_s="60", upload_wait_s="0")
    body = nar_body()
    target, _ = presigned(server, body)
    first = connect(server)
    first.sendall(put_head(target, body) + body[:1000])
    wait_until("the first upload started", lambda: uploads_in_progress(server) == 1)
    second, answers = put_in_thread(server, target, body)
    second.join(DEADLINE_S)
    status, text, retry_after = answers[0]
    assert status == 503
    assert "another upload of this object is in progress" in text
    assert retry_after is not None
    first.sendall(body[1000:])
    assert status_of(first) == 200
    first.close()


def test_uploads_past_the_bound_get_503(server: ServerProcess) -> None:
    held = []
    for _ in range(2):  # max_concurrent_uploads = 2
        body = nar_body(4096)
        target, _ = presigned(server, body)
        s = connect(server)
        s.sendall(put_head(target, body) + body[:100])
        held.append(s)
    wait_until("two uploads in progress", lambda: uploads_in_progress(server) == 2)
    body = nar_body(4096)
    target, _ = presigned(server, body)
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    r = httpx2.put(
        f"{server.url}{target}", content=body, headers={"x-amz-checksum-sha256": checksum}, timeout=DEADLINE_S
    )
    assert r.status_code == 503
    assert r.headers["retry-after"].isdigit()
    for s in held:
        s.close()


@pytest.mark.parametrize(
    "sent",
    [
        b"",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"POST /_dev/ci-token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{",
    ],
    ids=["idle", "half-sent-head", "half-sent-body"],
)
def test_idle_and_half_sent_connections_are_dropped(tmp_path: Path, sent: bytes) -> None:
    s_proc = _start(tmp_path, ("", None), http_read_timeout_s="1")
    try:
        s = connect(s_proc)
        s.sendall(sent)
        assert closed_by_server(s), "the server kept a silent connection open"
        s.close()
    finally:
        s_proc.stop()


def test_connections_past_the_bound_get_503(tmp_path: Path) -> None:
    s_proc = _start(tmp_path, ("", None), http_max_connections="3")
    try:
        held = [connect(s_proc) for _ in range(3)]
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert status_of(s) in (200, 503)
        r = httpx2.get(f"{s_proc.url}/healthz", timeout=DEADLINE_S)
        assert r.status_code == 503
        for s in held:
            s.close()
        wait_until("connections released", lambda: httpx2.get(f"{s_proc.url}/healthz").status_code == 200)
    finally:
        s_proc.stop()


def test_the_worker_pool_is_sized_at_start_up(tmp_path: Path) -> None:
    import anyio.to_thread
    from starlette.testclient import TestClient

    from tests.server.cachekit import Harness
    from vega.server.db import open_database

    db = open_database(f"sqlite:///{tmp_path}/w.db")
    h = Harness(db, tmp_path, worker_threads=7)

    async def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    with TestClient(h.app) as client:
        assert client.portal is not None
        assert client.portal.call(tokens) == 7
    db.close()
