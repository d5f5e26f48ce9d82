"""vega.client.upload against a MockTransport presign server (agent.md §7.3-§7.4, protocol.md §4.1).

The fake store behaves as the spec requires of a presigned PUT: it checks Content-Length,
refuses chunked bodies, checks ``x-amz-checksum-sha256`` against the body, and answers 403 once
its URL's SigV4 window has passed. Scripted faults (5xx with Retry-After, 401, dropped
connections) are queued per route. No test sleeps: sleep, clocks and jitter are injected.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from calendar import timegm
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import httpx2
import pytest

from vega.client.upload import (
    BytesBody,
    FileBody,
    UploadClient,
    UploadLimits,
    env_seconds,
    is_expired_url,
    static_bearer,
)
from vega.core.api import AttestBody, nar_url_for
from vega.core.hashes import HashAlgorithm, NixHash, hash_bytes
from vega.core.storepath import parse_store_path
from vega.errors import ApiError, AuthError, FormatError, NetworkError

BASE = "http://cp.test"
T0_MS = 1_795_600_000_000
DATA = bytes(range(256)) * 9000  # a little over 2 MiB: three chunks


def sha(data: bytes) -> NixHash:
    return hash_bytes(HashAlgorithm.SHA256, data)


@dataclass
class Store:
    """The control plane and its object store, as MockTransport handlers."""

    now_ms: int = T0_MS
    ttl_s: int = 21600
    faults: dict[str, list[httpx2.Response | Exception]] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)
    seen: list[httpx2.Request] = field(default_factory=list)
    pushed: list[object] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    valid_tokens: tuple[str, ...] = ("t1", "fresh")
    on_body: Callable[[int], None] | None = None

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(request)
        route = f"{request.method} {request.url.path.split('/nar/')[0]}"
        queue = self.faults.get(route, [])
        if queue:
            fault = queue.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault
        if request.method == "PUT":
            return self.put(request)
        self.tokens.append(request.headers.get("authorization", ""))
        if request.headers.get("authorization") not in {f"Bearer {t}" for t in self.valid_tokens}:
            return httpx2.Response(401, json={"error": "bad credential"})
        body = json.loads(request.read())
        if request.url.path == "/api/cache/upload-url":
            date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.now_ms // 1000))
            url = f"http://store.test/put/{body['narUrl']}?X-Amz-Date={date}&X-Amz-Expires={self.ttl_s}"
            return httpx2.Response(200, json={"url": url})
        if request.url.path == "/api/cache/push":
            self.pushed.append(body)
            return httpx2.Response(
                200, json={"published": True, "tenant": "owner:7", "substituter": "/tenant/owner:7"}
            )
        return httpx2.Response(404, json={"error": "no route"})

    def put(self, request: httpx2.Request) -> httpx2.Response:
        assert "authorization" not in request.headers
        assert "content-type" not in request.headers
        assert "transfer-encoding" not in request.headers
        received = b""
        for piece in request.stream:  # type: ignore[union-attr]
            received += piece
            if self.on_body is not None:
                self.on_body(len(received))
        assert int(request.headers["content-length"]) == len(received)
        query = parse_qs(request.url.query.decode())
        issued_ms = timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")) * 1000
        if self.now_ms >= issued_ms + int(query["X-Amz-Expires"][0]) * 1000:
            return httpx2.Response(403, json={"error": "Request has expired"})
        digest = hashlib.sha256(received).digest()
        if request.headers["x-amz-checksum-sha256"] != base64.b64encode(digest).decode():
            return httpx2.Response(403, json={"error": "checksum mismatch"})
        key = request.url.path.removeprefix("/put/")
        if key != nar_url_for(NixHash(HashAlgorithm.SHA256, digest)):
            return httpx2.Response(403, json={"error": "wrong key"})
        self.objects[key] = received
        return httpx2.Response(200)


class Clock:
    """A monotonic clock that only moves when told (``step`` per reading, or ``jump``)."""

    def __init__(self, step: float = 0.0) -> None:
        self.t = 100.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


@dataclass
class Harness:
    store: Store
    client: UploadClient
    sleeps: list[float]
    clock: Clock


def make(
    limits: UploadLimits | None = None,
    *,
    token: str = "t1",  # noqa: S107 - a test bearer
    bearer: Callable[[bool], str] | None = None,
    clock: Clock | None = None,
) -> Harness:
    store = Store()
    sleeps: list[float] = []
    clock = clock or Clock()
    client = UploadClient(
        httpx2.Client(transport=httpx2.MockTransport(store.handler)),
        BASE + "/",
        bearer or static_bearer(token),
        limits,
        now_ms=lambda: store.now_ms,
        sleep=sleeps.append,
        monotonic=clock,
        random=lambda: 0.5,
    )
    return Harness(store, client, sleeps, clock)


def test_upload_presigns_and_puts_the_exact_bytes_with_checksum_and_length() -> None:
    h = make()
    progress: list[tuple[int, int]] = []
    h.client.upload(sha(DATA), BytesBody(DATA), lambda m, t: progress.append((m, t)))
    assert h.store.objects == {nar_url_for(sha(DATA)): DATA}
    presign = h.store.seen[0]
    assert presign.headers["authorization"] == "Bearer t1"
    assert presign.headers["content-type"] == "application/json"
    assert json.loads(presign.read()) == {"narUrl": nar_url_for(sha(DATA)), "fileHash": str(sha(DATA))}
    assert progress == [(1 << 20, len(DATA)), (2 << 20, len(DATA)), (len(DATA), len(DATA))]
    assert h.sleeps == []


def test_file_body_is_reread_from_byte_zero_on_every_attempt(tmp_path: Path) -> None:
    """agent.md §7.4: each attempt restarts from byte 0 with a fresh body."""
    spool = tmp_path / "x.nar.zst"
    spool.write_bytes(DATA)
    h = make()
    h.store.faults["PUT /put"] = [httpx2.Response(503), httpx2.ReadError("connection reset")]
    h.client.upload(sha(DATA), FileBody(str(spool), len(DATA)))
    assert h.store.objects[nar_url_for(sha(DATA))] == DATA
    assert len(h.sleeps) == 2


def test_retry_after_is_honoured_and_capped_and_jitter_otherwise() -> None:
    """agent.md §7.3: Retry-After seconds (min 30 s), else random() * min(30, 0.5 * 2^(k-1))."""
    h = make()
    h.store.faults["PUT /put"] = [
        httpx2.Response(503, headers={"retry-after": "7"}),
        httpx2.Response(429, headers={"retry-after": "3600"}),
        httpx2.Response(502, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        httpx2.Response(500),
    ]
    h.client.upload(sha(DATA), BytesBody(DATA))
    assert h.sleeps == [7.0, 30.0, 0.5 * 2.0, 0.5 * 4.0]
    assert nar_url_for(sha(DATA)) in h.store.objects


def test_five_attempts_then_the_last_status_is_raised() -> None:
    h = make()
    h.store.faults["PUT /put"] = [httpx2.Response(500, json={"error": "disk"})] * 5
    with pytest.raises(ApiError, match=r"^nar upload failed: 500: disk$") as e:
        h.client.upload(sha(DATA), BytesBody(DATA))
    assert e.value.status == 500
    assert len(h.sleeps) == 4
    assert h.store.objects == {}


def test_checksum_mismatch_is_a_final_403_without_retry_or_remint() -> None:
    """protocol.md §4.1: the store rejects a body whose SHA-256 differs; 403 inside the window is final."""
    h = make()
    with pytest.raises(AuthError, match=r"^nar upload failed: 403: checksum mismatch$"):
        h.client.upload(sha(b"other bytes"), BytesBody(DATA))
    assert [r.method for r in h.store.seen] == ["POST", "PUT"]
    assert h.sleeps == []


def test_expired_url_is_reminted_once() -> None:
    """agent.md §7.4 step 5: a 403 after X-Amz-Date + X-Amz-Expires - 60 s mints a fresh URL once."""
    h = make()
    jumped: list[bool] = []

    def slow_upload(received: int) -> None:
        if not jumped:  # the first PUT takes six hours: its URL expires under it
            jumped.append(True)
            h.store.now_ms += 21600 * 1000

    h.store.on_body = slow_upload
    h.client.upload(sha(DATA), BytesBody(DATA))
    assert [r.method for r in h.store.seen] == ["POST", "PUT", "POST", "PUT"]
    assert h.store.objects[nar_url_for(sha(DATA))] == DATA
    assert h.sleeps == []


def test_second_expiry_after_remint_propagates() -> None:
    h = make()
    h.store.ttl_s = 60
    h.store.faults["PUT /put"] = [httpx2.Response(403)] * 2
    with pytest.raises(AuthError, match=r"^nar upload failed: 403$"):
        h.client.upload(sha(DATA), BytesBody(DATA))
    assert [r.method for r in h.store.seen] == ["POST", "PUT", "POST", "PUT"]


def test_403_inside_the_window_is_not_reminted() -> None:
    h = make()
    h.store.faults["PUT /put"] = [httpx2.Response(403, json={"error": "SignatureDoesNotMatch"})]
    with pytest.raises(AuthError, match="SignatureDoesNotMatch"):
        h.client.upload(sha(DATA), BytesBody(DATA))
    assert [r.method for r in h.store.seen] == ["POST", "PUT"]


@pytest.mark.parametrize(
    ("query", "now_s", "expired"),
    [
        ("X-Amz-Date=20261125T000000Z&X-Amz-Expires=21600", 1795564800 + 21600 - 61, False),
        ("X-Amz-Date=20261125T000000Z&X-Amz-Expires=21600", 1795564800 + 21600 - 60, True),
        ("X-Amz-Date=20261125T000000Z", 1895564800, False),
        ("X-Amz-Date=20261125T000000Z&X-Amz-Expires=-5", 1895564800, False),
        ("X-Amz-Date=yesterday&X-Amz-Expires=5", 1895564800, False),
        ("", 1895564800, False),
    ],
)
def test_is_expired_url(query: str, now_s: int, expired: bool) -> None:
    assert is_expired_url(f"https://r2.test/o?{query}", now_s * 1000) is expired


@dataclass
class SlowBody:
    """A body whose chunks the HTTP stack takes slowly: ``delay(k)`` seconds pass after chunk k."""

    data: bytes
    clock: Clock
    delay: Callable[[int], float]

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self) -> Iterator[bytes]:
        for k, chunk in enumerate(BytesBody(self.data).chunks()):
            yield chunk
            self.clock.t += self.delay(k)  # runs when the stack asks for the next chunk


def test_stall_between_chunks_aborts_the_attempt_and_retries() -> None:
    """agent.md §7.4: no bytes moved for the window => abort with the spec's message, retried."""
    clock = Clock()
    h = make(UploadLimits(stall_s=300), clock=clock)
    attempts: list[int] = []

    def delay(k: int) -> float:
        if k == 0:
            attempts.append(k)
        return 301.0 if len(attempts) == 1 and k == 1 else 299.0

    h.client.upload(sha(DATA), SlowBody(DATA, clock, delay))
    assert len(attempts) == 2
    assert len(h.sleeps) == 1
    assert h.store.objects[nar_url_for(sha(DATA))] == DATA


def test_persistent_stall_fails_with_the_spec_message() -> None:
    clock = Clock()
    h = make(UploadLimits(stall_s=300, tries=2), clock=clock)
    with pytest.raises(NetworkError, match=r"^nar upload stalled: no bytes moved for 300s$"):
        h.client.upload(sha(DATA), SlowBody(DATA, clock, lambda k: 1000.0))
    assert h.store.objects == {}
    assert len(h.sleeps) == 1


def test_socket_timeouts_are_stalls_and_the_cap_is_its_own_message() -> None:
    h = make(UploadLimits(stall_s=300, tries=1))
    h.store.faults["PUT /put"] = [httpx2.WriteTimeout("write timed out")]
    with pytest.raises(NetworkError, match=r"^nar upload stalled: no bytes moved for 300s$"):
        h.client.upload(sha(DATA), BytesBody(DATA))
    clock = Clock(step=10)
    h = make(UploadLimits(stall_s=300, cap_s=25, tries=1), clock=clock)
    with pytest.raises(NetworkError, match=r"^nar upload timed out after 25s$"):
        h.client.upload(sha(DATA), BytesBody(DATA))
    h = make(UploadLimits(stall_s=300, cap_s=25, tries=1), clock=Clock(step=30))
    h.store.faults["PUT /put"] = [httpx2.ReadTimeout("read timed out")]
    with pytest.raises(NetworkError, match=r"^nar upload timed out after 25s$"):
        h.client.upload(sha(DATA), BytesBody(DATA))


def test_network_failure_on_every_put_attempt() -> None:
    h = make(UploadLimits(tries=2))
    h.store.faults["PUT /put"] = [httpx2.ConnectError("refused")] * 2
    with pytest.raises(NetworkError, match=r"^nar upload failed: refused$"):
        h.client.upload(sha(DATA), BytesBody(DATA))


def test_control_plane_retries_5xx_and_network_errors() -> None:
    h = make()
    h.store.faults["POST /api/cache/upload-url"] = [
        httpx2.Response(502),
        httpx2.ConnectError("refused"),
        httpx2.Response(429, headers={"retry-after": "2"}),
    ]
    url = h.client.presign(sha(DATA))
    assert url.startswith("http://store.test/put/nar/")
    assert h.sleeps == [0.5 * 0.5, 0.5 * 1.0, 2.0]


def test_control_plane_final_errors_follow_the_safe_error_rule() -> None:
    h = make()
    h.store.faults["POST /api/cache/upload-url"] = [httpx2.Response(400, text="<html>Bearer t1</html>")]
    with pytest.raises(ApiError, match=r"^upload-url failed: 400$"):
        h.client.presign(sha(DATA))
    h.store.faults["POST /api/cache/upload-url"] = [httpx2.Response(200, text="not json")]
    with pytest.raises(FormatError, match=r"^upload-url: "):
        h.client.presign(sha(DATA))
    h.store.faults["POST /api/cache/upload-url"] = [httpx2.Response(200, json={"url": "ftp://x"})]
    with pytest.raises(FormatError, match=r"^upload-url: url"):
        h.client.presign(sha(DATA))
    h = make(UploadLimits(tries=1, http_timeout_s=120))
    h.store.faults["POST /api/cache/upload-url"] = [httpx2.ReadTimeout("slow")]
    with pytest.raises(NetworkError, match=r"^upload-url timed out after 120s$"):
        h.client.presign(sha(DATA))
    h.store.faults["POST /api/cache/upload-url"] = [httpx2.ConnectError("refused")]
    with pytest.raises(NetworkError, match=r"^upload-url failed: "):
        h.client.presign(sha(DATA))


def test_401_mints_a_fresh_bearer_once() -> None:
    """agent.md §7.3: a final 401 forces a fresh token and exactly one more attempt."""
    asked: list[bool] = []

    def bearer(force: bool) -> str:
        asked.append(force)
        return "fresh" if force else "stale"

    h = make(bearer=bearer)
    h.client.presign(sha(DATA))
    assert asked == [False, True]
    assert h.store.tokens == ["Bearer stale", "Bearer fresh"]
    h = make(token="revoked")
    with pytest.raises(AuthError, match=r"^upload-url failed: 401: bad credential$"):
        h.client.presign(sha(DATA))
    assert h.store.tokens == ["Bearer revoked", "Bearer revoked"]
    h = make(token="revoked")
    h.store.faults["POST /api/cache/upload-url"] = [httpx2.Response(401), httpx2.Response(503)]
    with pytest.raises(ApiError, match=r"^upload-url failed: 503$"):
        h.client.presign(sha(DATA))


PATH = parse_store_path("/nix/store/l915bvq3wig4nxwlvga4lw06aigam617-vega-push-app")
LIB = parse_store_path("/nix/store/invfnlz3ykci2qhj50acn1ldc6mb6pmy-vega-push-lib")


def attest_body(**extra: object) -> AttestBody:
    return AttestBody(
        store_path=PATH,
        file_hash=sha(DATA),
        file_size=len(DATA),
        nar_hash=sha(b"nar"),
        nar_size=3,
        references=(LIB,),
        **extra,  # type: ignore[arg-type]
    )


def test_push_sends_the_attest_body_without_attr_dir_or_no_continent() -> None:
    """cli.md §9 step 4, protocol.md §4.4."""
    h = make()
    result = h.client.push(attest_body(attr="packages.x86_64-linux.default", dir="sub", no_continent=True))
    assert result.substituter == "/tenant/owner:7"
    (sent,) = h.store.pushed
    assert sent == {
        "storePath": PATH.absolute,
        "url": nar_url_for(sha(DATA)),
        "compression": "zstd",
        "fileHash": str(sha(DATA)),
        "fileSize": len(DATA),
        "narHash": str(sha(b"nar")),
        "narSize": 3,
        "references": [str(LIB)],
    }
    h.store.faults["POST /api/cache/push"] = [httpx2.Response(200, json={"published": True})]
    with pytest.raises(FormatError, match=r"^push: "):
        h.client.push(attest_body())


def test_attest_posts_to_the_attest_endpoint() -> None:
    h = make()
    h.store.faults["POST /api/cache/attest"] = [httpx2.Response(200, json={"decision": 1})]
    with pytest.raises(FormatError, match=r"^attest: "):
        h.client.attest(attest_body())
    assert h.store.seen[-1].url.path == "/api/cache/attest"


def test_file_body_that_shrinks_fails() -> None:
    body = FileBody("/dev/null", 10)
    with pytest.raises(NetworkError, match="ended early"):
        list(body.chunks())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 300.0),
        ("", 300.0),
        ("  45 ", 45.0),
        ("1e3", 1000.0),
        ("0x10", 16.0),
        ("0.5", 0.5),
        ("0", 300.0),
        ("-4", 300.0),
        ("abc", 300.0),
        ("1_000", 300.0),
        ("Infinity", 300.0),
        ("NaN", 300.0),
        ("0xzz", 300.0),
    ],
)
def test_env_seconds_follows_javascript_number(value: str | None, expected: float) -> None:
    """agent.md §3: envSeconds = finite and > 0, else the default."""
    assert env_seconds(value, 300.0) == expected


def test_limits_from_environ() -> None:
    limits = UploadLimits.from_environ(
        {"VEGA_HTTP_TIMEOUT_SECONDS": "5", "VEGA_UPLOAD_STALL_SECONDS": "7", "VEGA_UPLOAD_CAP_SECONDS": "9"}
    )
    assert (limits.http_timeout_s, limits.stall_s, limits.cap_s) == (5.0, 7.0, 9.0)
    assert UploadLimits.from_environ({"VEGA_UPLOAD_CAP_SECONDS": "-1"}).cap_s == 0.0
    with pytest.raises(ValueError, match="positive"):
        UploadLimits(stall_s=0)
