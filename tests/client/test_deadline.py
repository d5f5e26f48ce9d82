"""Attack: a server dripping one byte at a time cannot hold a request past its wall-clock deadline.

Real loopback sockets (tests/hostile.py). Not a timing test: the deadline is 2 s and the bound
is generous (the drip alone would take minutes); what is asserted is that the request ends, and
that the error names the timeout.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import pytest

from tests.client.conftest import UPSTREAM, CacheServer
from tests.hostile import Reply, Request, serve_hostile
from vega.cli.commands.verify import execute
from vega.cli.main import build_parser
from vega.client.deadline import new_client, request_deadline
from vega.client.http import Http, HttpLimits
from vega.client.verify import open_context
from vega.core.narinfo import format_narinfo
from vega.core.signing import format_public_key
from vega.errors import NetworkError

TIMEOUT_S = 2.0
BOUND_S = 20.0
"""Far above the deadline, far below the drip (the server drips for 40 s, then hangs up)."""


def drip(part: str) -> Reply:
    return Reply(status=200, body=b"x" * 200, drip=part, every_s=0.5)


@pytest.mark.parametrize("part", ["headers", "body"])
def test_http_get_has_a_whole_request_deadline(part: str) -> None:
    with serve_hostile(lambda r: drip(part)) as (url, seen), new_client() as client:
        http = Http(client, HttpLimits(timeout_s=TIMEOUT_S), sleep=lambda s: None)
        start = time.monotonic()
        with pytest.raises(NetworkError) as e:
            http.get(f"{url}/x.narinfo")
        assert time.monotonic() - start < BOUND_S
    assert "timed out" in e.value.message
    assert f"within {TIMEOUT_S:g}s" in e.value.message
    assert len(seen) == 1  # a spent deadline is not retried: the same server would drip again


def test_http_stream_has_a_whole_body_deadline() -> None:
    with serve_hostile(lambda r: drip("body")) as (url, _), new_client() as client:
        http = Http(client, HttpLimits(stream_timeout_s=TIMEOUT_S, tries=1), sleep=lambda s: None)
        start = time.monotonic()
        with (
            pytest.raises(NetworkError, match=r"timed out.*within 2s"),
            http.get_stream(f"{url}/nar/x.nar", 10_000) as resp,
        ):
            for _ in resp.iter_bytes():
                pass
        assert time.monotonic() - start < BOUND_S


def verify_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["verify", *argv])


@pytest.mark.parametrize("part", ["headers", "body"])
def test_vega_verify_is_not_held_by_a_dripping_narinfo(part: str, tmp_path: Path) -> None:
    with serve_hostile(lambda r: drip(part)) as (url, _):
        env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
        out, err = io.StringIO(), io.StringIO()
        start = time.monotonic()
        with open_context(url, env, read_nix_keys=False, limits=HttpLimits(timeout_s=TIMEOUT_S)) as ctx:
            code = execute(verify_args("0" * 32, "--no-nar"), ctx, env, out, err)
        assert time.monotonic() - start < BOUND_S
    assert code == 1
    assert f"timed out: the response was not complete within {TIMEOUT_S:g}s" in err.getvalue()


def test_vega_verify_is_not_held_by_a_dripping_nar(tmp_path: Path) -> None:
    """The narinfo comes at once; the NAR drips: the NAR check fails, naming the timeout."""
    cache = CacheServer(tmp=tmp_path)
    build = cache.add("dripped", key=UPSTREAM)
    narinfo = format_narinfo(build.info).encode()

    def handler(request: Request) -> Reply:
        if request.path.endswith(".narinfo"):
            return Reply(body=narinfo)
        return drip("body")

    with serve_hostile(handler) as (url, _):
        env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
        out, err = io.StringIO(), io.StringIO()
        limits = HttpLimits(timeout_s=TIMEOUT_S, stream_timeout_s=TIMEOUT_S)
        start = time.monotonic()
        with open_context(url, env, read_nix_keys=False, limits=limits) as ctx:
            key = format_public_key(UPSTREAM.public)
            code = execute(verify_args(build.hash, "--public-key", key, "--json"), ctx, env, out, err)
        assert time.monotonic() - start < BOUND_S
    assert code == 1
    assert '"checked":false' in out.getvalue()
    assert f"within {TIMEOUT_S:g}s" in out.getvalue()


def test_nested_deadlines_keep_the_earlier_one() -> None:
    with request_deadline(100.0) as outer, request_deadline(1000.0) as inner:
        assert inner == outer
    with request_deadline(1000.0) as outer, request_deadline(1.0) as inner:
        assert inner < outer


def test_a_spent_deadline_refuses_to_connect() -> None:
    """Every socket operation is bounded: with no time left, not even a connection is opened."""
    with serve_hostile(lambda r: Reply(body=b"ok")) as (url, seen), new_client() as client:
        with request_deadline(-1.0), pytest.raises(Exception, match="deadline"):
            client.get(url)
        assert client.get(url).text == "ok"
    assert len(seen) == 1


def test_a_client_behind_a_proxy_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Users behind an HTTP proxy still reach the control plane: the environment's proxy is used."""
    import http.server
    import threading

    from vega.client.deadline import new_client

    seen: list[str] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b"via proxy"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.setenv("NO_PROXY", "localhost")
        with new_client() as client:
            assert client.get("http://cache.example.invalid/nix-cache-info").text == "via proxy"
        assert seen == ["http://cache.example.invalid/nix-cache-info"]
    finally:
        proxy.shutdown()
        proxy.server_close()
