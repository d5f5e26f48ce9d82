"""MCP fixtures: a real ``vega-server serve --dev`` subprocess, a tampering proxy, ``vega mcp`` sessions.

Builds reach the shared tier the way CI puts them there: OIDC tokens from the dev server's
Actions-compatible issuer (``POST /_dev/ci-token``, then the token service), a presigned upload
and ``POST /api/cache/attest``, by two distinct repository owners, one of them running the
configured reproducer workflow at a pinned ref. The MCP side is the SDK's own stdio client
driving ``vega mcp`` as a subprocess.

Spec: issue 9 (acceptance); docs/development-identity.md; protocol.md §4.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest

from tests.e2e.agents import ServerProcess
from tests.e2e.conftest import loopback_socket, serving
from tests.server.cachekit import Output

SHA = "0123456789abcdef0123456789abcdef01234567"
REPRO_REPOSITORY = "vega-org/repro"
REPRO_WORKFLOW_PATH = ".github/workflows/reproduce.yml"
REPRO_REF = "refs/heads/main"
REPRO_WORKFLOW = f"{REPRO_REPOSITORY}/{REPRO_WORKFLOW_PATH}@{REPRO_REF}"
"""The exact configured reproducer job_workflow_ref (pinned ref)."""
ROOT = Path(__file__).resolve().parent.parent.parent
VEGA = [sys.executable, "-m", "vega"]


class VegaServer(ServerProcess):
    """``vega-server serve --dev`` as a subprocess on a loopback port, with an HTTP client."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        super().__init__(data_dir, log, REPRO_WORKFLOW, log_origin="vega-mcp-test.invalid/log")
        self.http = httpx2.Client(base_url=self.url, timeout=30)

    @staticmethod
    def _server() -> list[str]:
        return [sys.executable, "-m", "vega.server"]

    def stop(self) -> None:
        self.http.close()
        super().stop()

    def revoke(self, hash_part: str) -> None:
        done = subprocess.run(
            [*self._server(), "revoke", "--data-dir", str(self.data_dir), hash_part, "--reason", "test"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    # -- CI, as the dev identity mode serves it ----------------------------------------------------

    def ci_token(self, repository: str, *, reproducer: bool = False, run_id: str = "1") -> str:
        """An Actions OIDC token minted by the dev issuer for one simulated job."""
        job: dict[str, Any] = {"repository": repository, "sha": SHA, "runId": run_id}
        if reproducer:
            job.update(workflow=REPRO_WORKFLOW, runnerEnvironment="github-hosted")
        got = self.http.post("/_dev/ci-token", json=job)
        assert got.status_code == 200, got.text
        env = got.json()
        token = httpx2.get(
            env["ACTIONS_ID_TOKEN_REQUEST_URL"],
            params={"audience": self.url},
            headers={"authorization": f"Bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"},
        )
        assert token.status_code == 200, token.text
        return str(token.json()["value"])

    def attest(self, out: Output, repository: str, *, reproducer: bool = False, run_id: str = "1") -> None:
        token = self.ci_token(repository, reproducer=reproducer, run_id=run_id)
        auth = {"authorization": f"Bearer {token}"}
        r = self.http.post(
            "/api/cache/upload-url", headers=auth, json={"narUrl": out.nar_url, "fileHash": out.file_hash}
        )
        assert r.status_code == 200, r.text
        parts = urlsplit(r.json()["url"])
        checksum = base64.b64encode(hashlib.sha256(out.compressed).digest()).decode()
        put = self.http.put(
            f"{parts.path}?{parts.query}", content=out.compressed, headers={"x-amz-checksum-sha256": checksum}
        )
        assert put.status_code == 200, put.text
        r = self.http.post("/api/cache/attest", headers=auth, json=out.body())
        assert r.status_code == 200, r.text

    def promote(self, out: Output) -> None:
        """Two repository owners, one of them the pinned reproducer workflow: promoted."""
        self.attest(out, "alice/hello", run_id="11")
        self.attest(out, REPRO_REPOSITORY, reproducer=True, run_id="12")
        got = self.http.get(f"/{out.hash_part}.narinfo")
        assert got.status_code == 200, got.text

    def narinfo(self, out: Output) -> bytes:
        got = self.http.get(f"/{out.hash_part}.narinfo")
        assert got.status_code == 200
        return got.content


@dataclass
class Proxy:
    """A man in the middle on loopback: forwards GETs to ``upstream``, or serves/rewrites by path."""

    upstream: str
    serve: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    tamper: dict[str, Callable[[bytes], bytes]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    url: str = ""
    client: httpx2.Client = field(default_factory=lambda: httpx2.Client(timeout=30), repr=False)
    """One pooled client for every forwarded request (closed by the owner)."""

    def reset(self, upstream: str) -> None:
        self.upstream = upstream
        self.serve.clear()
        self.tamper.clear()
        self.seen.clear()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        self.seen.append(path)
        if path in self.serve:
            status, body = self.serve[path]
            ctype = b"application/json"
        else:
            query = scope["query_string"].decode()
            target = self.upstream + path + (f"?{query}" if query else "")
            r = await anyio.to_thread.run_sync(self.client.get, target)
            status, body = r.status_code, r.content
            ctype = r.headers.get("content-type", "application/octet-stream").encode()
            for prefix, change in self.tamper.items():
                if path.startswith(prefix):
                    body = change(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    """The proxy, served by uvicorn in a thread for the whole module."""
    sock, url = loopback_socket()
    p = Proxy(upstream="http://127.0.0.1:9", url=url)
    with p.client, serving(p, sock):
        yield p


# -- a real MCP session --------------------------------------------------------------------------------


@dataclass
class ToolResult:
    """One ``tools/call`` result as the SDK client saw it."""

    is_error: bool
    text: str
    structured: dict[str, Any] | None

    @property
    def verdict(self) -> str | None:
        return None if self.structured is None else self.structured.get("verdict")


@dataclass
class Session:
    """What one ``vega mcp`` session answered."""

    tools: list[Any]
    results: list[ToolResult]
    server_name: str


def mcp_session(
    url: str, home: Path, calls: list[tuple[str, dict[str, Any]]], *, public_key: str | None = None
) -> Session:
    """Start ``vega mcp`` with the SDK's stdio client, list the tools, make ``calls`` in order."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    args = ["-m", "vega", "mcp", "--url", url]
    if public_key is not None:
        args += ["--public-key", public_key]
    env = {
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "src"),
    }
    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(home))

    async def run() -> Session:
        with (home / "mcp-stderr.log").open("a") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as s:
                init = await s.initialize()
                listed = await s.list_tools()
                results = []
                for name, arguments in calls:
                    r = await s.call_tool(name, arguments)
                    text = r.content[0].text if r.content else ""  # type: ignore[union-attr]
                    results.append(ToolResult(r.is_error, text, r.structured_content))
                return Session(listed.tools, results, init.server_info.name)

    home.mkdir(parents=True, exist_ok=True)
    return anyio.run(run)
