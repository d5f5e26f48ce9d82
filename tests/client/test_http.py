"""The bounded HTTP edge: retries, Retry-After, caps, safe errors, URL rules (cli.md §1.3, §1.4, §10.4)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.client.http import Http, HttpLimits, require_safe_url, safe_error
from vega.errors import ApiError, ConfigError, FormatError, NetworkError

Handler = Callable[[httpx2.Request], httpx2.Response]


def make(handler: Handler, limits: HttpLimits | None = None) -> tuple[Http, list[float]]:
    slept: list[float] = []
    client = httpx2.Client(transport=httpx2.MockTransport(handler))
    return Http(client, limits, sleep=slept.append), slept


def sequence(*responses: httpx2.Response | Exception) -> tuple[Handler, list[httpx2.Request]]:
    seen: list[httpx2.Request] = []
    queue = list(responses)

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def test_get_returns_body_status_and_lowercased_headers() -> None:
    handler, seen = sequence(httpx2.Response(200, content=b"hello", headers={"X-Thing": "1"}))
    http, slept = make(handler)
    resp = http.get("https://cache.test/a")
    assert (resp.status, resp.body, resp.ok, resp.text()) == (200, b"hello", True, "hello")
    assert resp.headers["x-thing"] == "1"
    assert len(seen) == 1
    assert slept == []
    assert http.requests == 1


def test_retries_5xx_with_spec_backoff_then_succeeds() -> None:
    """cli.md §10.4: 3 tries; sleeps 150 ms then 300 ms."""
    handler, seen = sequence(httpx2.Response(503), httpx2.Response(502), httpx2.Response(200, content=b"x"))
    http, slept = make(handler)
    assert http.get("https://cache.test/a").status == 200
    assert slept == [0.15, 0.3]
    assert len(seen) == 3


def test_after_last_try_a_5xx_is_returned() -> None:
    handler, seen = sequence(*(httpx2.Response(500) for _ in range(3)))
    http, _ = make(handler)
    assert http.get("https://cache.test/a").status == 500
    assert len(seen) == 3


@pytest.mark.parametrize("status", [408, 429])
def test_retries_408_and_429(status: int) -> None:
    handler, seen = sequence(httpx2.Response(status), httpx2.Response(200))
    http, _ = make(handler)
    assert http.get("https://cache.test/a").status == 200
    assert len(seen) == 2


@pytest.mark.parametrize("status", [200, 301, 400, 401, 404, 501])
def test_other_statuses_return_immediately(status: int) -> None:
    handler, seen = sequence(httpx2.Response(status))
    http, slept = make(handler)
    assert http.get("https://cache.test/a").status == status
    assert len(seen) == 1
    assert slept == []


@pytest.mark.parametrize(
    ("header", "want"), [("2", 2.0), ("0", 0.0), ("999", 30.0), ("soon", 0.15), ("-1", 0.15), ("nan", 0.15)]
)
def test_numeric_retry_after_is_honoured_and_capped(header: str, want: float) -> None:
    """agent.md §7.3: numeric Retry-After seconds, min(30 s, value); otherwise the back-off."""
    handler, _ = sequence(httpx2.Response(429, headers={"Retry-After": header}), httpx2.Response(200))
    http, slept = make(handler)
    http.get("https://cache.test/a")
    assert slept == [want]


def test_network_error_retried_then_translated() -> None:
    err = httpx2.ConnectError("connection refused")
    handler, seen = sequence(err, err, err)
    http, slept = make(handler)
    with pytest.raises(NetworkError, match=r"GET https://cache\.test/a failed: connection refused") as info:
        http.get("https://cache.test/a?token=secret")
    assert "secret" not in info.value.message
    assert isinstance(info.value.__cause__, httpx2.ConnectError)
    assert len(seen) == 3
    assert slept == [0.15, 0.3]


def test_timeout_says_timed_out() -> None:
    handler, _ = sequence(httpx2.ReadTimeout("slow"), httpx2.Response(200))
    http, _ = make(handler, HttpLimits(tries=1))
    with pytest.raises(NetworkError, match="timed out"):
        http.get("https://cache.test/a")


def test_network_error_then_success() -> None:
    handler, seen = sequence(httpx2.ReadError("reset"), httpx2.Response(200))
    http, _ = make(handler)
    assert http.get("https://cache.test/a").ok
    assert len(seen) == 2


def test_post_is_not_retried_unless_idempotent() -> None:
    handler, seen = sequence(httpx2.Response(503), httpx2.Response(200))
    http, _ = make(handler)
    assert http.post_json("https://cp.test/api/x", {"a": 1}).status == 503
    assert len(seen) == 1
    assert seen[0].headers["content-type"] == "application/json"
    assert json.loads(seen[0].content) == {"a": 1}
    assert http.post_json("https://cp.test/api/x", {"a": 1}, idempotent=True).status == 200


def test_post_network_error_not_retried() -> None:
    handler, seen = sequence(httpx2.ConnectError("down"), httpx2.Response(200))
    http, _ = make(handler)
    with pytest.raises(NetworkError):
        http.post_json("https://cp.test/api/x", {}, {"authorization": "Bearer t"})
    assert len(seen) == 1
    assert seen[0].headers["authorization"] == "Bearer t"


def test_bodyless_post() -> None:
    handler, seen = sequence(httpx2.Response(502), httpx2.Response(201))
    http, _ = make(handler)
    assert http.post("https://cp.test/api/owner/enroll", headers={"a": "b"}, idempotent=True).status == 201
    assert seen[0].content == b""
    assert "content-type" not in seen[0].headers
    assert len(seen) == 2


def test_head() -> None:
    handler, seen = sequence(httpx2.Response(200))
    http, _ = make(handler)
    assert http.head("https://cache.test/x.narinfo").status == 200
    assert seen[0].method == "HEAD"


def test_body_cap_enforced_while_reading_and_not_retried() -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 100

    seen: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(1)
        return httpx2.Response(200, content=chunks())

    http, _ = make(handler, HttpLimits(max_body_bytes=1000))
    with pytest.raises(NetworkError, match="over the 1000-byte limit"):
        http.get("https://cache.test/big")
    assert len(seen) == 1


def test_declared_content_length_over_cap_fails_fast() -> None:
    handler, _ = sequence(httpx2.Response(200, content=b"y" * 2000))
    http, _ = make(handler, HttpLimits(max_body_bytes=1000))
    with pytest.raises(NetworkError, match="over the 1000-byte limit"):
        http.get("https://cache.test/big")


def test_body_exactly_at_cap_is_fine() -> None:
    handler, _ = sequence(httpx2.Response(200, content=b"y" * 1000))
    http, _ = make(handler, HttpLimits(max_body_bytes=1000))
    assert len(http.get("https://cache.test/ok").body) == 1000


def test_body_deadline_counts_the_whole_read() -> None:
    ticks = iter(range(0, 1000, 10))

    def chunks() -> Iterator[bytes]:
        yield from (b"a" * 70_000, b"b" * 70_000, b"c" * 70_000)

    client = httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(200, content=chunks())))
    http = Http(
        client, HttpLimits(timeout_s=15, tries=1), sleep=lambda s: None, monotonic=lambda: next(ticks)
    )
    with pytest.raises(NetworkError, match="not complete within 15s"):
        http.get("https://cache.test/slow")


def test_get_json_success_and_errors() -> None:
    handler, _ = sequence(
        httpx2.Response(200, json={"size": 3}),
        httpx2.Response(200, content=b"not json"),
        httpx2.Response(404, json={"error": "no such entry", "auth": "Bearer leaked"}),
        httpx2.Response(403, content=b"<html>Authorization: Bearer leaked</html>"),
    )
    http, _ = make(handler)
    assert http.get_json("https://cp.test/log/sth") == {"size": 3}
    with pytest.raises(FormatError, match="response is not JSON"):
        http.get_json("https://cp.test/log/sth")
    with pytest.raises(ApiError) as info:
        http.get_json("https://cp.test/log/entry/9")
    assert info.value.message == "GET https://cp.test/log/entry/9 failed (404: no such entry)"
    assert (info.value.status, info.value.error) == (404, "no such entry")
    with pytest.raises(ApiError) as info:
        http.get_json("https://cp.test/log/entry/9")
    assert "leaked" not in info.value.message
    assert info.value.error is None


def test_deeply_nested_json_is_a_format_error() -> None:
    handler, _ = sequence(httpx2.Response(200, content=b"[" * 100_000))
    http, _ = make(handler)
    with pytest.raises(FormatError, match="not JSON"):
        http.get_json("https://cp.test/log/sth")


def test_text_rejects_non_utf8() -> None:
    handler, _ = sequence(httpx2.Response(200, content=b"\xff"))
    http, _ = make(handler)
    with pytest.raises(FormatError):
        http.get("https://cp.test/x").text()


def test_stream_reads_body_with_cap() -> None:
    handler, _ = sequence(httpx2.Response(503), httpx2.Response(200, content=b"z" * 300))
    http, slept = make(handler)
    with http.get_stream("https://cache.test/nar/x.nar.zst", max_bytes=300) as resp:
        assert resp.ok
        assert b"".join(resp.iter_bytes()) == b"z" * 300
    assert slept == [0.15]
    assert http.requests == 2


def test_stream_over_cap() -> None:
    handler, _ = sequence(httpx2.Response(200, content=iter([b"z" * 200, b"z" * 200])))
    http, _ = make(handler)
    with (
        pytest.raises(NetworkError, match="over the 300-byte limit"),
        http.get_stream("https://cache.test/n", max_bytes=300) as resp,
    ):
        b"".join(resp.iter_bytes())


def test_stream_network_errors() -> None:
    handler, seen = sequence(httpx2.ConnectError("a"), httpx2.ConnectError("b"), httpx2.ConnectError("c"))
    http, _ = make(handler)
    with pytest.raises(NetworkError, match="failed: c"), http.get_stream("https://cache.test/n", 10):
        pass  # pragma: no cover
    assert len(seen) == 3


def test_stream_returns_non_2xx() -> None:
    handler, _ = sequence(httpx2.Response(404, content=b"nope"))
    http, _ = make(handler)
    with http.get_stream("https://cache.test/n", 10) as resp:
        assert resp.status == 404


def test_invalid_url_is_a_config_error() -> None:
    http, _ = make(lambda r: httpx2.Response(200))
    with pytest.raises(ConfigError):
        http.get("https://h:abc/")
    with pytest.raises(ConfigError), http.get_stream("https://h:abc/", 1):
        pass  # pragma: no cover


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout_s": 0}, {"max_body_bytes": -1}, {"tries": 0}, {"backoff_s": ()}, {"backoff_s": (-1.0,)}],
)
def test_limits_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        HttpLimits(**kwargs)  # type: ignore[arg-type]


# -- safe errors (cli.md §1.4) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "want"),
    [
        (500, b'{"error":"boom"}', "500: boom"),
        (401, b"Authorization: Bearer abc", "401"),
        (400, b'{"error": 3}', "400"),
        (400, b'["error"]', "400"),
        (400, b"\xff\xfe", "400"),
        (429, json.dumps({"error": "x" * 300}).encode(), "429: " + "x" * 200),
        (400, b'{"error":"a\\u001b[31mb\\nc"}', "400: a[31mb c"),
    ],
)
def test_safe_error(status: int, body: bytes, want: str) -> None:
    """cli.md §1.4: status, or status and the JSON error field truncated to 200; never the raw body."""
    assert safe_error(status, body) == want


@given(st.binary(max_size=300))
def test_safe_error_never_raises_and_never_echoes_non_json(body: bytes) -> None:
    out = safe_error(502, body)
    assert out == "502" or out.startswith("502: ")


# -- URL rules (cli.md §1.3) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("https://vega-cache.dev/", "https://vega-cache.dev"),
        ("HTTPS://Vega-Cache.DEV:443/tenant/o/r/", "https://vega-cache.dev/tenant/o/r"),
        ("https://h/a/./b/../c/?q=1#f", "https://h/a/c"),
        ("https://user:pw@h:8443/x", "https://h:8443/x"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("http://127.0.0.1", "http://127.0.0.1"),
        ("http://[::1]:9/p", "http://[::1]:9/p"),
        ("http://localhost:80/", "http://localhost"),
        ("https://h/a/..", "https://h"),
        ("https://h/a/.", "https://h/a"),
    ],
)
def test_require_safe_url_normalises(url: str, want: str) -> None:
    assert require_safe_url(url) == want


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://vega-cache.dev", "plaintext http to a host that is not loopback"),
        ("vega-cache.dev", "no scheme"),
        ("https://", "no host"),
        ("https:///x", "no host"),
        ("http://127.0.0.2", "plaintext http to a host that is not loopback"),
        ("https://h:99999", "host or port does not parse"),
        ("https://h/\nx", "spaces, control or invisible characters"),
        ("javascript:alert(1)", "scheme is not https or http (got javascript:)"),
        ("ftp://localhost/x", "scheme is not https or http (got ftp:)"),
        ("http://localhost.evil.com", "plaintext http to a host that is not loopback"),
        ("http://evil.test/\u202e\x1b]0;pwned\x07", "spaces, control or invisible characters"),
        ("https://evil.test/\u202egnp.exe", "spaces, control or invisible characters"),
    ],
)
def test_require_safe_url_rejects_without_echoing_the_url(url: str, why: str) -> None:
    """Issue 14: the URL may be hostile; the message says what is wrong and never echoes it."""
    with pytest.raises(ConfigError) as info:
        require_safe_url(url)
    message = info.value.message
    assert message.startswith("control plane must be a valid https URL: ")
    assert message.endswith("; refusing to send credentials over plaintext.")
    assert why in message
    assert "got '" not in message
    host = url.split("//", 1)[-1].split("/", 1)[0]
    if len(host) > 3 and host != "localhost":
        assert host not in message
