"""Issue 14 (conformance): ``vega verify`` against a control plane that has only the original endpoints.

The original implementation answers every unknown route with 404 and a JSON ``{"error": ...}``
body (protocol.md §4.0 says every non-2xx should carry one). The client must decide that the log
lookup is missing from the endpoint's answer (not a lookup answer), never from the absence of an
error body, and fall back to ``/log/sth``, ``/log/entry/<i>`` and ``/log/proof/inclusion/<i>``.

The server here is real (uvicorn on loopback) and serves the real control plane's data, behind a
filter that lets only the original's routes through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import loopback_socket, serving
from tests.server.cachekit import Harness, Output
from vega.client.http import HttpLimits
from vega.client.logstate import LogState
from vega.client.verify import VerifyContext, verify_target
from vega.server.db import open_database

HELLO = Output("hello", b"nix-archive-1 hello world " * 200)

# protocol.md §11: the original's read routes (the log's, the cache's, status and keys).
_ORIGINAL = re.compile(
    r"/log/(sth|entry/\d+|proof/inclusion/\d+|proof/consistency)|/nix-cache-info|/[0-9a-z]{32}\.narinfo|/nar/.+"
    r"|/api/status/.+|/tenant/.+"
)


def original_only(app: Any) -> Any:
    """An ASGI app with only the original's routes; anything else is 404 ``{"error": "not found"}``."""

    async def filtered(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or _ORIGINAL.fullmatch(scope["path"]):
            await app(scope, receive, send)
            return
        body = json.dumps({"error": "not found"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return filtered


@pytest.fixture
def original(tmp_path: Path) -> Iterator[tuple[Harness, str, list[str]]]:
    h = Harness(open_database(f"sqlite:///{tmp_path}/cp.db"), tmp_path / "cp")
    with h.client:
        for repo, run, repro in (("alice/hello", "1", False), ("vega-org/vega", "2", True)):
            token = h.ci_token(repo, run_id=run, reproducer=repro)
            h.upload(token, HELLO)
            r = h.attest(token, HELLO.body())
            assert r.status_code == 200, r.text
        sock, url = loopback_socket()
        with serving(original_only(h.app), sock) as requests:
            yield h, url, requests


def test_verify_falls_back_against_an_original_server_with_json_404s(
    original: tuple[Harness, str, list[str]], tmp_path: Path
) -> None:
    h, url, requests = original
    missing = httpx2.get(f"{url}/log/lookup/{HELLO.hash_part}")
    assert (missing.status_code, missing.json()) == (404, {"error": "not found"})
    shared = h.keys.shared.public
    with httpx2.Client() as client:
        ctx = VerifyContext(
            client=client,
            base_url=url,
            trusted_keys={shared.name: shared},
            state=LogState(tmp_path / "state"),
            limits=HttpLimits(),
            sleep=lambda s: None,
        )
        report = verify_target(ctx, HELLO.store_path)
        assert report.exit_ok, [(c.name, c.ok, c.detail) for c in report.checks]
        assert report.transparency is not None
        assert report.transparency.legacy
        assert report.transparency.found
        assert any("server lacks /log/lookup" in n for n in report.notices)
        # the log grew: the second run proves consistency by the original endpoints' means only
        h.app.state.service.revoke("0" * 32, "unrelated")
        again = verify_target(ctx, HELLO.store_path)
        assert again.exit_ok, [(c.name, c.ok, c.detail) for c in again.checks]
    assert "GET /log/sth" in requests
