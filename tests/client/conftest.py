"""A test binary cache + transparency log, in process, for verify tests.

FIXTURE, not the control plane: the log is the real one (``vega.server.log``: ``TransparencyLog``
and ``log_routes``, on SQLite), and a tiny Starlette route serves narinfo and NAR files written
with ``vega.core``. Requests go through Starlette's TestClient transport wrapped in a
:class:`Recorder`, which counts requests per path and can tamper with responses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.testclient import TestClient

from vega.client.http import HttpLimits
from vega.client.logstate import LogState
from vega.client.verify import VerifyContext, VerifyOptions
from vega.core import nixbase32, tlog
from vega.core.compression import Compression, Compressor
from vega.core.hashes import HashAlgorithm, hash_bytes
from vega.core.narinfo import NarInfo, SignedFields, fingerprint, format_narinfo, sign_narinfo
from vega.core.note import SignerKey
from vega.core.revocations import Revocation, sign_revocation_list
from vega.core.signing import PublicKey, SecretKey, generate_secret_key
from vega.core.storepath import StorePath, parse_store_path
from vega.server.db import open_database
from vega.server.log.log import LogEntry, TransparencyLog
from vega.server.log.routes import log_routes

BASE = "https://cache.test"
ORIGIN = "cache.test/log"
SHARED = generate_secret_key("vega-cache-1", b"\x01" * 32)
NOTE_KEY = SignerKey(ORIGIN, b"\x02" * 32)
TENANT = generate_secret_key("vega-alice-hello-1", b"\x03" * 32)
UPSTREAM = generate_secret_key("cache.nixos.org-1", b"\x04" * 32)
LEGACY_PATHS = ("/log/sth", "/log/entry/", "/log/proof/inclusion/", "/log/proof/consistency")


def store_hash(n: int | str) -> str:
    digest = hashlib.sha256(str(n).encode()).digest()[:20]
    return nixbase32.encode(digest)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_767_225_600_000

    def __call__(self) -> int:
        self.ms += 1
        return self.ms


class _LogProxy:
    """Forwards to whichever log is current, so a test can swap in a rolled-back or forked one."""

    def __init__(self) -> None:
        self.current: TransparencyLog | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)


@dataclass
class Build:
    """One store path in the fixture cache."""

    path: StorePath
    info: NarInfo
    nar: bytes
    compressed: bytes

    @property
    def hash(self) -> str:
        return self.path.hash_part


class Recorder(httpx2.BaseTransport):
    """Counts requests and applies per-path response tampering (the test's man in the middle)."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self.inner = inner
        self.paths: list[str] = []
        self.tamper: dict[str, Callable[[bytes], bytes]] = {}
        self.serve: dict[str, tuple[int, bytes]] = {}

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.paths.append(request.url.path)
        if request.url.path in self.serve:
            status, content = self.serve[request.url.path]
            return httpx2.Response(status, content=content)
        resp = self.inner.handle_request(request)
        for prefix, change in self.tamper.items():
            if request.url.path.startswith(prefix):
                body = resp.read()
                headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
                return httpx2.Response(resp.status_code, headers=headers, content=change(body))
        return resp

    def reset(self) -> None:
        self.paths.clear()


@dataclass
class CacheServer:
    """The fixture cache: builds, a log, and switches for tampering and old-server behaviour."""

    tmp: Path
    clock: Clock = field(default_factory=Clock)
    builds: dict[str, Build] = field(default_factory=dict)
    tenant_builds: dict[str, Build] = field(default_factory=dict)
    legacy: bool = False
    revoked_list: list[Revocation] = field(default_factory=list)
    """Entries of the signed ``/api/revocations`` list (changes-0.19.md)."""
    proxy: _LogProxy = field(default_factory=_LogProxy)
    logs: int = 0

    def __post_init__(self) -> None:
        self.log = self.new_log()
        app = Starlette(routes=self._routes())
        self.test_client = TestClient(app, base_url=BASE)
        self.recorder = Recorder(self.test_client._transport)
        self.client = httpx2.Client(transport=self.recorder, base_url=BASE)

    # -- the log -----------------------------------------------------------------------------------

    def new_log(self) -> TransparencyLog:
        """A fresh, empty log (own database) made current."""
        self.logs += 1
        db = open_database(str(self.tmp / f"log{self.logs}.db"))
        log = TransparencyLog(db, ORIGIN, NOTE_KEY, SHARED, self.clock)
        self.proxy.current = log
        self.log = log
        return log

    def append(self, data: bytes, hash_part: str | None = None, key: str | None = None) -> int:
        entry = LogEntry(
            data=data,
            dedupe_key=key or hashlib.sha256(data).hexdigest(),
            store_hashes=(hash_part,) if hash_part else (),
        )
        (index,) = self.log.append([entry])
        return index

    def filler(self, count: int, start: int = 0) -> None:
        """Unrelated attestation-like entries."""
        entries = [
            LogEntry(
                data=json.dumps({"v": 1, "event": "other", "n": n}).encode(),
                dedupe_key=f"filler-{n}",
                store_hashes=(store_hash(f"filler-{n}"),),
            )
            for n in range(start, start + count)
        ]
        for k in range(0, len(entries), 2000):
            self.log.append(entries[k : k + 2000])

    def promote(self, build: Build) -> int:
        leaf = tlog.PromotionLeaf(
            store_path=build.path.absolute,
            fingerprint=fingerprint(build.info),
            nar_hash=str(build.info.nar_hash),
            at=self.clock(),
        )
        return self.append(tlog.encode_leaf(leaf), build.hash)

    def revoke(self, build: Build) -> int:
        leaf = tlog.RevocationLeaf(store_path=build.path.absolute, reason="compromised", at=self.clock())
        return self.append(tlog.encode_leaf(leaf), build.hash)

    # -- the cache ---------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        content: bytes = b"hello\n",
        *,
        key: SecretKey | None = SHARED,
        references: tuple[Build, ...] = (),
        compression: Compression = Compression.ZSTD,
        tenant: bool = False,
    ) -> Build:
        path = parse_store_path(f"/nix/store/{store_hash(name)}-{name}")
        nar = b"\x0d\x00\x00\x00\x00\x00\x00\x00nix-archive-1\x00\x00\x00" + content
        c = Compressor(compression)
        compressed = c.compress(nar) + c.finish()
        file_hash = hash_bytes(HashAlgorithm.SHA256, compressed)
        info = NarInfo(
            signed=SignedFields(
                store_path=path,
                nar_hash=hash_bytes(HashAlgorithm.SHA256, nar),
                nar_size=len(nar),
                references=tuple(sorted(r.path for r in references)),
            ),
            url=f"nar/{file_hash.nix32}.nar{compression.extension}",
            compression=compression.value,
            file_hash=file_hash,
            file_size=len(compressed),
        )
        if key is not None:
            info = sign_narinfo(info, key)
        build = Build(path=path, info=info, nar=nar, compressed=compressed)
        (self.tenant_builds if tenant else self.builds)[build.hash] = build
        return build

    def _routes(self) -> list[BaseRoute]:
        log = cast(TransparencyLog, self.proxy)
        real = log_routes(log)
        server = self

        def legacy_filter(route: BaseRoute) -> BaseRoute:
            path = getattr(route, "path", "")
            inner = route.endpoint  # type: ignore[attr-defined]

            def endpoint(request: Request) -> Response:
                if server.legacy and not any(path.startswith(p.rstrip("/")) for p in LEGACY_PATHS):
                    return Response("Not Found", status_code=404, media_type="text/plain")
                return inner(request)  # type: ignore[no-any-return]

            return Route(path, endpoint, methods=["GET"])

        def narinfo(request: Request) -> Response:
            tenant = request.path_params.get("tenant")
            table = self.tenant_builds if tenant else self.builds
            build = table.get(request.path_params["hash"])
            if build is None:
                return Response("not found", status_code=404)
            return Response(format_narinfo(build.info), media_type="text/x-nix-narinfo")

        def nar(request: Request) -> Response:
            tenant = request.path_params.get("tenant")
            table = self.tenant_builds if tenant else self.builds
            for build in table.values():
                if build.info.url == f"nar/{request.path_params['file']}":
                    return Response(build.compressed, media_type="application/octet-stream")
            return Response("not found", status_code=404)

        def status(request: Request) -> Response:
            if request.path_params["hash"] in self.tenant_builds:
                return JSONResponse({"verdict": "unknown", "tenants": ["alice/hello", "bad tenant!"]})
            return JSONResponse({"error": "unknown"}, status_code=404)

        def revocations(request: Request) -> Response:
            body = self.revocations_body()
            return body if isinstance(body, Response) else JSONResponse(body)

        def tenant_key(request: Request) -> Response:
            from vega.core.signing import format_public_key

            return JSONResponse({"publicKey": format_public_key(TENANT.public)})

        return [
            *(legacy_filter(r) for r in real),
            Route("/{hash}.narinfo", narinfo),
            Route("/nar/{file}", nar),
            Route("/api/status/{hash}", status),
            Route("/api/revocations", revocations),
            Route("/tenant/{owner}/{tenant}/{hash}.narinfo", narinfo),
            Route("/tenant/{owner}/{tenant}/nar/{file}", nar),
            Route("/tenant/{owner}/{tenant}/key", tenant_key),
        ]

    def revocations_body(self) -> object:
        """The signed revocation list as served (tests override it to tamper)."""
        return sign_revocation_list(SHARED, self.revoked_list, self.clock.ms)

    # -- the client side ---------------------------------------------------------------------------

    def context(
        self, *, trusted: tuple[PublicKey, ...] = (SHARED.public,), base: str = BASE
    ) -> VerifyContext:
        return VerifyContext(
            client=self.client,
            base_url=base,
            trusted_keys={k.name: k for k in trusted},
            state=LogState(self.tmp / "state"),
            limits=HttpLimits(),
            sleep=lambda s: None,
            now_ms=lambda: self.clock.ms,
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CacheServer]:
    s = CacheServer(tmp=tmp_path)
    with s.test_client:
        yield s


__all__ = ["BASE", "ORIGIN", "SHARED", "TENANT", "UPSTREAM", "Build", "CacheServer", "VerifyOptions"]
