"""Real Nix substitutes from vega-server (issue 4 acceptance): after a push and after a promotion.

The app runs under a real uvicorn on a free loopback port in a thread; NARs are
``nix-store --dump`` compressed with zstandard, uploaded through presigned PUTs
over real HTTP. ``nix copy --from <base> --to <fresh store>`` must succeed with
the served key and refuse with a wrong key, a tampered narinfo, or a corrupted
NAR. Each ``nix copy`` gets a fresh XDG_CACHE_HOME (nix caches narinfo look-ups).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
import zstandard
from starlette.applications import Starlette

from tests.conftest import NIX_CONFIG, NixRunner
from tests.server.cachekit import Harness
from vega.core.hashes import parse_nix_hash
from vega.server.db import open_database

pytestmark = pytest.mark.nix

FLAKE = Path(__file__).parent / "flakes" / "server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Starlette, port: int) -> Iterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def closure(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Build the test flake with a fresh seed; return path-info of the closure, dependencies first."""
    if shutil.which("nix") is None:
        pytest.skip("nix is not installed")
    cache = tmp_path_factory.mktemp("nix-build-cache")
    runner = NixRunner(env=dict(os.environ, NIX_CONFIG=NIX_CONFIG, XDG_CACHE_HOME=str(cache)))
    flake = tmp_path_factory.mktemp("flake")
    shutil.copy(FLAKE / "flake.nix", flake / "flake.nix")
    (flake / "seed.txt").write_text(uuid.uuid4().hex)
    built = json.loads(runner.text("nix", "build", f"path:{flake}#top", "--json", "--no-link"))
    top = built[0]["outputs"]["out"]
    infos = json.loads(runner.text("nix", "path-info", "--json", "--recursive", top))
    if isinstance(infos, dict):  # newer nix: an object keyed by path
        infos = [{"path": k, **v} for k, v in infos.items()]
    infos.sort(key=lambda i: i["path"] != top)  # put top first, then reverse so deps come first
    infos.reverse()
    for info in infos:
        info["nar"] = runner.run("nix-store", "--dump", info["path"])
    assert len(infos) == 2
    assert infos[-1]["path"] == top
    return list(infos)


def attest_body(info: dict[str, Any], compressed: bytes) -> dict[str, Any]:
    file_hash = parse_nix_hash("sha256:" + hashlib.sha256(compressed).hexdigest())
    nar_hash = parse_nix_hash(info["narHash"])  # SRI or sha256:<nix32>, whichever this nix prints
    body: dict[str, Any] = {
        "storePath": info["path"],
        "url": f"nar/{file_hash.nix32}.nar.zst",
        "compression": "zstd",
        "fileHash": f"sha256:{file_hash.nix32}",
        "fileSize": len(compressed),
        "narHash": f"sha256:{nar_hash.nix32}",
        "narSize": info["narSize"],
        "references": [r.removeprefix("/nix/store/") for r in info.get("references", [])],
    }
    if info.get("deriver"):
        body["deriver"] = info["deriver"].removeprefix("/nix/store/")
    return body


def upload_and_send(
    http: httpx2.Client, h: Harness, token: str, info: dict[str, Any], endpoint: str
) -> dict[str, Any]:
    compressed = zstandard.ZstdCompressor(level=8).compress(info["nar"])
    body = attest_body(info, compressed)
    auth = {"authorization": f"Bearer {token}"}
    r = http.post(
        "/api/cache/upload-url", headers=auth, json={"narUrl": body["url"], "fileHash": body["fileHash"]}
    )
    assert r.status_code == 200, r.text
    digest = base64.b64encode(hashlib.sha256(compressed).digest()).decode()
    put = http.put(r.json()["url"], content=compressed, headers={"x-amz-checksum-sha256": digest})
    assert put.status_code == 200, put.text
    r = http.post(endpoint, headers=auth, json=body)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def nix_copy(nix: NixRunner, tmp: Path, base: str, key: str, path: str) -> subprocess.CompletedProcess[str]:
    """``nix copy --from base`` into a fresh store with a fresh narinfo cache."""
    run = uuid.uuid4().hex[:8]
    env = dict(nix.env, XDG_CACHE_HOME=str(tmp / f"cache-{run}"))
    dest = tmp / f"store-{run}"
    argv = ["nix", "copy", "--from", base, "--to", str(dest), "--option", "trusted-public-keys", key, path]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode == 0:
        assert (dest / path.lstrip("/")).exists(), f"{path} not in {dest}"
    return done


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Harness, httpx2.Client, str]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = open_database(f"sqlite:///{tmp_path}/server.db")
    h = Harness(db, tmp_path / "data", public_url=url)
    with serving(h.app, port), httpx2.Client(base_url=url, timeout=60) as http:
        yield h, http, url
    db.close()


def test_nix_substitutes_a_pushed_closure_and_refuses_a_wrong_key(
    nix: NixRunner, tmp_path: Path, closure: list[dict[str, Any]], server: tuple[Harness, httpx2.Client, str]
) -> None:
    h, http, url = server
    credential = h.owner_credential()
    for info in closure:
        result = upload_and_send(http, h, credential, info, "/api/cache/push")
        assert result["substituter"] == "/tenant/owner:1000001"
    base = f"{url}/tenant/owner:1000001"
    key = http.get("/tenant/owner:1000001/key").json()["publicKey"]
    top = closure[-1]["path"]
    done = nix_copy(nix, tmp_path, base, key, top)
    assert done.returncode == 0, done.stderr
    shared_key = http.get("/api/info").json()["sharedKey"]
    wrong = nix_copy(nix, tmp_path, base, shared_key, top)
    assert wrong.returncode != 0
    assert "lacks a valid signature" in wrong.stderr
    # nothing was promoted, so the shared tier has nothing to give
    assert nix_copy(nix, tmp_path, url, shared_key, top).returncode != 0


def test_nix_substitutes_a_promoted_closure_and_refuses_tampering(
    nix: NixRunner, tmp_path: Path, closure: list[dict[str, Any]], server: tuple[Harness, httpx2.Client, str]
) -> None:
    h, http, url = server
    builder = h.ci_token("alice/hello", run_id="1")
    reproducer = h.ci_token("vega-org/vega", run_id="2", reproducer=True)
    for info in closure:
        upload_and_send(http, h, builder, info, "/api/cache/attest")
        result = upload_and_send(http, h, reproducer, info, "/api/cache/attest")
        assert result["publishedShared"] is True, result
    shared_key = http.get("/api/info").json()["sharedKey"]
    top = closure[-1]["path"]
    done = nix_copy(nix, tmp_path, url, shared_key, top)
    assert done.returncode == 0, done.stderr
    tenant_done = nix_copy(nix, tmp_path, f"{url}/tenant/alice/hello", shared_key, top)
    assert tenant_done.returncode != 0  # the tenant tier is signed with the tenant key only

    # a tampered narinfo: a signed field changed, the signature kept
    service = h.app.state.service
    hash_part = top.removeprefix("/nix/store/")[:32]
    original = http.get(f"/{hash_part}.narinfo").text
    size_line = next(line for line in original.splitlines() if line.startswith("NarSize: "))
    tampered = original.replace(size_line, f"NarSize: {int(size_line.split()[1]) + 8}")
    with service.store.write() as tx:
        service.store.put_narinfo(tx, "", hash_part, tampered, "x", "x", 0)
    refused = nix_copy(nix, tmp_path, url, shared_key, top)
    assert refused.returncode != 0
    assert "lacks a valid signature" in refused.stderr
    with service.store.write() as tx:
        service.store.put_narinfo(tx, "", hash_part, original, "x", "x", 0)
    assert nix_copy(nix, tmp_path, url, shared_key, top).returncode == 0

    # a corrupted NAR: the object replaced by a valid zstd stream of different bytes
    obj_url = next(line for line in original.splitlines() if line.startswith("URL: ")).split()[1]
    nar = bytearray(closure[-1]["nar"])
    nar[nar.index(b"#!/bin/sh") + 3] ^= 0x01  # file content, so the NAR stays well-formed
    (h.blobs.root / obj_url).write_bytes(zstandard.ZstdCompressor().compress(bytes(nar)))
    corrupt = nix_copy(nix, tmp_path, url, shared_key, top)
    assert corrupt.returncode != 0
    assert "hash mismatch" in corrupt.stderr.lower()
