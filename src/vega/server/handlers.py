"""HTTP <-> ``core.api`` translation: read the request, call the service, write the response.

No SQL and no rules here. Bodies are read with a cap; bearer tokens go to the
Authenticator; errors become ``{"error": ...}`` via ``server.errors``. Service
calls run in Starlette's thread pool (storage is synchronous).

Spec: protocol.md §3 (read paths), §4 (write API), §6; docs/server-api.md.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from vega.core import nixbase32
from vega.core.api import AttestBody, DispatchFailedBody, InfoResponse, KeyResponse, UploadUrlRequest
from vega.core.cacheapi import DeleteRequest
from vega.core.signing import format_public_key
from vega.core.trust import TrustRequest
from vega.errors import AuthError, FormatError
from vega.server.blobs import is_object_key
from vega.server.errors import ServiceError, error_response
from vega.server.http import UploadGate
from vega.server.ratelimit import AttestRateLimiter
from vega.server.service import Authenticator, CacheService, CiIdentity, OwnerPrincipal, check_tenant
from vega.server.store import SHARED
from vega.server.upload import ObjectDigest, UploadIngest
from vega.server.views import TOKEN_PATTERN

__all__ = ["NARINFO_TYPE", "NAR_TYPE", "Handlers", "Metrics"]

log = logging.getLogger(__name__)

NARINFO_TYPE = "text/x-nix-narinfo"
NAR_TYPE = "application/x-nix-nar"
CACHE_INFO_TYPE = "text/x-nix-cache-info"
IMMUTABLE = "public, max-age=31536000, immutable"
VIEW_NARINFO_CACHE = "private, max-age=30"
"""A view's narinfos: short-lived, so a revoked edge stops being served soon (issue 8)."""
_CHUNK = 1 << 20
_BATCH = 1 << 20  # PUT body bytes per hand-over to the write and check threads
_NARINFO = re.compile(f"([{nixbase32.ALPHABET}]{{32}})\\.narinfo")
_OWNER_NS = re.compile(r"owner:[0-9]{1,20}")

Endpoint = Callable[[Request], Awaitable[Response]]


class Metrics:
    """Process-local counters, rendered in the Prometheus text format with gauges from the caller."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add to a counter."""
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount

    def render(self, gauges: dict[str, int]) -> str:
        """The Prometheus text exposition of every counter and the given gauges."""
        lines: list[str] = []
        with self._lock:
            items = sorted(self._counters.items())
        seen: set[str] = set()
        for (name, labels), value in items:
            if name not in seen:
                lines.append(f"# TYPE {name} counter")
                seen.add(name)
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
        for name, value in sorted(gauges.items()):
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {value}")
        return "\n".join(lines) + "\n"


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token", status=401, error="missing bearer token")
    return token.strip()


def _guard(fn: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except Exception as e:  # the one place any error becomes a response (5xx sanitised)
            return error_response(e)

    return endpoint


class Handlers:
    """Every endpoint of the cache, bound to one service."""

    def __init__(
        self,
        *,
        service: CacheService,
        authenticator: Authenticator,
        info: Callable[[], InfoResponse],
        gauges: Callable[[], dict[str, int]],
        metrics: Metrics,
        max_json_bytes: int,
        narinfo_max_age_s: int,
        uploads: UploadGate | None = None,
        limiter: AttestRateLimiter | None = None,
    ) -> None:
        self.service = service
        self.auth = authenticator
        self.info = info
        self.gauges = gauges
        self.metrics = metrics
        self.max_json_bytes = max_json_bytes
        self.narinfo_cache = f"public, max-age={narinfo_max_age_s}"
        self.uploads = uploads or UploadGate(16)
        self.limiter = limiter

    # -- helpers -------------------------------------------------------------------------

    async def _json(self, request: Request) -> object:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_json_bytes:
            raise ServiceError(f"request body larger than {self.max_json_bytes} bytes", status=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_json_bytes:
                raise ServiceError(f"request body larger than {self.max_json_bytes} bytes", status=413)
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FormatError("body: not valid JSON") from None

    async def _oidc(self, request: Request) -> CiIdentity:
        token = _bearer(request)
        identity: CiIdentity = await run_in_threadpool(self.auth.oidc, token)
        return identity

    async def _owner(self, request: Request) -> OwnerPrincipal:
        token = _bearer(request)
        owner: OwnerPrincipal = await run_in_threadpool(self.auth.owner, token)
        return owner

    # -- binary cache read paths -----------------------------------------------------------

    @staticmethod
    def _cache_info() -> Response:
        return Response(
            "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n",
            media_type=CACHE_INFO_TYPE,
            headers={"Cache-Control": "public, max-age=3600"},
        )

    async def _narinfo(self, namespace: str, name: str) -> Response:
        match = _NARINFO.fullmatch(name)
        text = (
            None
            if match is None
            else await run_in_threadpool(self.service.narinfo, namespace, match.group(1))
        )
        if text is None:
            return JSONResponse(
                {"error": "not found"}, status_code=404, headers={"Cache-Control": "no-cache"}
            )
        return Response(text, media_type=NARINFO_TYPE, headers={"Cache-Control": self.narinfo_cache})

    async def _nar(self, request: Request, name: str) -> Response:
        key = f"nar/{name}"
        if not is_object_key(key):
            return JSONResponse({"error": "not found"}, status_code=404)
        headers = {"Cache-Control": IMMUTABLE}
        if request.method == "HEAD":
            size = await run_in_threadpool(self.service.blobs.size, key)
            if size is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            headers["Content-Length"] = str(size)
            return Response(None, media_type=NAR_TYPE, headers=headers)
        f = await run_in_threadpool(self.service.blobs.open, key)
        if f is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        size = await run_in_threadpool(self.service.blobs.size, key)
        if size is not None:
            headers["Content-Length"] = str(size)
        return StreamingResponse(_chunks(f), media_type=NAR_TYPE, headers=headers)

    async def _base(self, request: Request, namespace: str, rest: str) -> Response:
        if rest == "nix-cache-info":
            return self._cache_info()
        if rest.startswith("nar/"):
            return await self._nar(request, rest[4:])
        if rest == "key" and namespace != SHARED:
            key = self.service.tenant_public_key(namespace)
            return JSONResponse(KeyResponse(key).to_json())
        return await self._narinfo(namespace, rest)

    async def root(self, request: Request) -> Response:
        """``/nix-cache-info``, ``/<hash>.narinfo``, ``/nar/<file>``: the shared tier."""
        return await self._base(request, SHARED, request.path_params["rest"])

    async def tenant(self, request: Request) -> Response:
        """``/tenant/<owner>/<repo>/...`` and ``/tenant/owner:<id>/...``."""
        rest: str = request.path_params["rest"]
        first, _, after = rest.partition("/")
        if _OWNER_NS.fullmatch(first):
            namespace, tail = first, after
        else:
            repo, _, tail = after.partition("/")
            namespace = f"{first}/{repo}"
        try:
            check_tenant(namespace)
        except ServiceError:
            return JSONResponse({"error": "not found"}, status_code=404)
        return await self._base(request, namespace, tail)

    async def view(self, request: Request) -> Response:
        """``/u/<token>/{nix-cache-info,<hash>.narinfo,nar/...,key}``: a consumer's personal view.

        An unknown token answers exactly as an absent path does (no oracle); nothing logs it.
        """
        token, _, tail = str(request.path_params["rest"]).partition("/")
        consumer = None
        if TOKEN_PATTERN.fullmatch(token):
            consumer = await run_in_threadpool(self.service.consumer_for, token)
        if consumer is None:
            return _not_found()
        if tail == "nix-cache-info":
            return self._cache_info()
        if tail.startswith("nar/"):
            return await self._nar(request, tail[4:])
        if tail == "key":
            key = self.service.view_secret(consumer).public
            return JSONResponse(
                KeyResponse(format_public_key(key)).to_json(), headers={"Cache-Control": "no-cache"}
            )
        match = _NARINFO.fullmatch(tail)
        if match is None:
            return _not_found()
        answer = await run_in_threadpool(self.service.view_narinfo, consumer, match.group(1))
        if answer.text is None:
            if answer.reason is None:
                return _not_found()
            return JSONResponse(
                {"error": "not found", "reason": answer.reason},
                status_code=404,
                headers={"Cache-Control": "no-cache"},
            )
        return Response(answer.text, media_type=NARINFO_TYPE, headers={"Cache-Control": VIEW_NARINFO_CACHE})

    # -- API ----------------------------------------------------------------------------

    async def view_token(self, request: Request) -> Response:
        """``POST /api/view/token`` (owner); ``{"rotate": true}`` replaces the token (issue 8)."""
        owner = await self._owner(request)
        rotate = False
        if request.headers.get("content-length", "0") not in ("", "0"):
            body = await self._json(request)
            if isinstance(body, dict):
                flag = body.get("rotate", False)
                if not isinstance(flag, bool):
                    raise FormatError("rotate: expected a boolean")
                rotate = flag
        view = await run_in_threadpool(lambda: self.service.view_token(owner, rotate=rotate))
        return JSONResponse(view.to_json(), headers={"Cache-Control": "no-store"})

    async def trust_add(self, request: Request) -> Response:
        """``POST /api/trust`` (owner)."""
        owner = await self._owner(request)
        body = TrustRequest.from_json(await self._json(request))
        await run_in_threadpool(self.service.trust_add, owner, body)
        return JSONResponse({"ok": True})

    async def trust_revoke(self, request: Request) -> Response:
        """``POST /api/trust/revoke`` (owner)."""
        owner = await self._owner(request)
        body = TrustRequest.from_json(await self._json(request))
        await run_in_threadpool(self.service.trust_revoke, owner, body)
        return JSONResponse({"ok": True})

    async def trust_list(self, request: Request) -> Response:
        """``GET /api/trust`` (owner): ``{"edges": [...]}``, revoked ones with ``revokedAt``."""
        owner = await self._owner(request)
        edges = await run_in_threadpool(self.service.trust_list, owner)
        return JSONResponse({"edges": [e.to_json() for e in edges]}, headers={"Cache-Control": "no-store"})

    async def status(self, request: Request) -> Response:
        """``GET /api/status/<hash>``."""
        result = await run_in_threadpool(self.service.status, request.path_params["hash"])
        if result is None:
            return JSONResponse({"error": "unknown store path"}, status_code=404)
        return JSONResponse(result.to_json(), headers={"Cache-Control": "no-cache"})

    async def upload_url(self, request: Request) -> Response:
        """``POST /api/cache/upload-url`` (OIDC or owner)."""
        token = _bearer(request)
        try:
            await run_in_threadpool(self.auth.oidc, token)
        except AuthError:
            await run_in_threadpool(self.auth.owner, token)
        body = UploadUrlRequest.from_json(await self._json(request))
        return JSONResponse(self.service.upload_url(body).to_json())

    async def upload(self, request: Request) -> Response:
        """``PUT /api/cache/upload/nar/<file>``: the presigned upload."""
        key = f"nar/{request.path_params['name']}"
        if not is_object_key(key):
            raise ServiceError("not an object key", status=404)
        q = request.query_params
        digest = self.service.check_upload(
            key,
            q.get("X-Amz-Date", ""),
            q.get("X-Amz-Expires", ""),
            q.get("X-Vega-Signature", ""),
            request.headers.get("x-amz-checksum-sha256"),
        )
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit():
            raise ServiceError("Content-Length is required", status=411)
        if int(declared) > self.service.max_upload_bytes:
            raise ServiceError(f"object larger than {self.service.max_upload_bytes} bytes", status=413)

        async def stored() -> bool:
            return await run_in_threadpool(self.service.object_size, key) is not None

        if await self.uploads.wait_turn(key, stored):  # one PUT per object at once (ADR 0013)
            return Response(None, status_code=200)  # the PUT we waited for stored these bytes
        with self.uploads.claim(key):  # a bounded number of PUTs in all
            ingest = self.service.start_upload(key, digest, int(declared))
            try:
                obj = await _ingest(request, ingest)
            except ClientDisconnect:  # cut off, or dropped after stalling (docs/adr/0013)
                ingest.abort()
                raise ServiceError("the upload body was cut off", status=408) from None
            except BaseException:
                ingest.abort()
                raise
            await run_in_threadpool(self.service.record_upload, key, obj)
        size = obj.file_size
        self.metrics.inc("vega_uploads_total")
        self.metrics.inc("vega_upload_bytes_total", size)
        return Response(None, status_code=200)

    async def attest(self, request: Request) -> Response:
        """``POST /api/cache/attest`` (OIDC)."""
        identity = await self._oidc(request)
        body = AttestBody.from_json(await self._json(request))
        if self.limiter is not None:
            self.limiter.charge(f"gh:{identity.repository_owner_id}", body.store_path.hash_part)
        result = await run_in_threadpool(self.service.attest, identity, body)
        self.metrics.inc(
            "vega_attestations_total", lane="vega-repro" if identity.is_reproducer else "gh-actions"
        )
        if result.published_shared:
            self.metrics.inc("vega_shared_published_total")
        return JSONResponse(result.to_json())

    async def push(self, request: Request) -> Response:
        """``POST /api/cache/push`` (owner)."""
        owner = await self._owner(request)
        body = AttestBody.from_json(await self._json(request))
        if self.limiter is not None:
            self.limiter.charge(f"owner:{owner.user_id}", body.store_path.hash_part)
        result = await run_in_threadpool(self.service.push, owner, body)
        self.metrics.inc("vega_attestations_total", lane="owner")
        return JSONResponse(result.to_json())

    async def repro_queue(self, request: Request) -> Response:
        """``GET /api/repro/queue[?limit=N]``."""
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise FormatError("limit: expected an integer from 1 to 1000")
        result = await run_in_threadpool(self.service.repro_queue, int(raw))
        return JSONResponse(result.to_json(), headers={"Cache-Control": "no-cache"})

    async def dispatch_failed(self, request: Request) -> Response:
        """``POST /api/repro/dispatch-failed`` (OIDC, reproducer)."""
        identity = await self._oidc(request)
        body = DispatchFailedBody.from_json(await self._json(request))
        await run_in_threadpool(self.service.dispatch_failed, identity, body)
        return JSONResponse({"recorded": True})

    async def namespace_list(self, request: Request) -> Response:
        """``GET /api/cache/namespace[?after=<hash>&limit=N]`` (owner): what the namespace serves."""
        owner = await self._owner(request)
        raw = request.query_params.get("limit", "1000")
        if not raw.isdigit():
            raise FormatError("limit: expected an integer from 1 to 1000")
        after = request.query_params.get("after", "")
        listing = await run_in_threadpool(self.service.namespace_list, owner, after, int(raw))
        return JSONResponse(listing.to_json(), headers={"Cache-Control": "no-store"})

    async def namespace_delete(self, request: Request) -> Response:
        """``POST /api/cache/delete`` (owner): stop serving paths from the namespace."""
        owner = await self._owner(request)
        body = DeleteRequest.from_json(await self._json(request))
        result = await run_in_threadpool(self.service.namespace_delete, owner, body)
        return JSONResponse(result.to_json())

    async def api_info(self, request: Request) -> Response:
        """``GET /api/info``."""
        return JSONResponse(self.info().to_json(), headers={"Cache-Control": "no-cache"})

    async def healthz(self, request: Request) -> Response:
        """``GET /healthz``: the database answers."""
        await run_in_threadpool(self.service.ping)
        return PlainTextResponse("ok\n", headers={"Cache-Control": "no-cache"})

    async def metrics_endpoint(self, request: Request) -> Response:
        """``GET /metrics``: Prometheus text."""
        gauges = await run_in_threadpool(self.gauges)
        return PlainTextResponse(self.metrics.render(gauges), media_type="text/plain; version=0.0.4")

    def guarded(self, fn: Endpoint) -> Endpoint:
        """Wrap an endpoint so every error becomes the spec's error body."""
        return _guard(fn)


def _not_found() -> Response:
    """The answer for an absent path (and, identically, for an unknown view token)."""
    return JSONResponse({"error": "not found"}, status_code=404, headers={"Cache-Control": "no-cache"})


async def _ingest(request: Request, ingest: UploadIngest) -> ObjectDigest:
    """Stream the body into ``ingest`` in batches, then commit.

    The write and the NAR check run in worker threads; the event loop only hands batches over
    (through the thread pool when the workers are behind, so it never blocks).
    """
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) >= _BATCH:
            data = bytes(buf)
            buf.clear()
            if ingest.has_room():
                ingest.feed(data)
            else:
                await run_in_threadpool(ingest.feed, data)
    if buf:
        await run_in_threadpool(ingest.feed, bytes(buf))
    obj: ObjectDigest = await run_in_threadpool(ingest.commit)
    return obj


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(_CHUNK):
            yield chunk
