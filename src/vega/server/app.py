"""``create_app``: the control plane's single factory and its route table.

Routes (protocol.md §11; additions in docs/server-api.md)::

    GET        /nix-cache-info, /<hash>.narinfo          shared tier (HEAD too)
    GET, HEAD  /nar/<nix32>.nar.zst                        any stored object
    GET, HEAD  /tenant/<owner>/<repo>/{nix-cache-info,<hash>.narinfo,nar/...,key}
    GET, HEAD  /tenant/owner:<id>/{...}
    GET, HEAD  /u/<token>/{nix-cache-info,<hash>.narinfo,nar/...,key}   personal view (token = capability)
    GET        /api/status/<hash>
    POST       /api/view/token                             owner (issue, or rotate)
    GET, POST  /api/trust, POST /api/trust/revoke          owner (trust edges)
    POST       /api/cache/upload-url                       OIDC or owner
    PUT        /api/cache/upload/nar/<nix32>.nar.zst       presigned (URL is the capability)
    POST       /api/cache/attest                           OIDC
    POST       /api/cache/push                             owner
    GET        /api/repro/queue
    GET        /api/revocations                            signed revocation list (changes-0.19.md)
    POST       /api/repro/dispatch-failed                  OIDC (reproducer)
    GET        /api/info, /healthz, /metrics
    GET        /log/...                                    the transparency log (mounted)
    ...        identity routes                             (mounted: enrol, dev issuer)

Spec: protocol.md §3-§6, §11; house-style.md §4.9; issue 4.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import vega
from vega.core.api import InfoResponse
from vega.core.note import SignerKey, format_verifier_key
from vega.core.promotion import PromotionPolicy
from vega.server.blobs import BlobStore
from vega.server.db import Database
from vega.server.handlers import Handlers, Metrics
from vega.server.http import limit_worker_threads, upload_gate
from vega.server.identity import Authenticator as IdentityAuthenticator
from vega.server.identity import IdentitySettings
from vega.server.identity.dev import DevSettings
from vega.server.log.log import Sequencer, TransparencyLog
from vega.server.log.routes import log_routes
from vega.server.ratelimit import AttestLimits, AttestRateLimiter
from vega.server.revocations import revocations_endpoint
from vega.server.service import CacheService, ServerKeys
from vega.server.settings import ServerSettings
from vega.server.store import Store
from vega.server.views import RedactViewTokens

__all__ = ["CAPABILITIES", "create_app", "identity_for", "log_signer", "promotion_policy"]

CAPABILITIES = (
    "api-info",
    "repro-queue",
    "log-checkpoint",
    "log-tiles",
    "log-lookup",
    "metrics",
    "owner-whoami",
    "namespace-admin",
    "trust",
    "view",
)
"""Optional endpoints this server has (``/api/info``)."""


def log_signer(keys: ServerKeys, origin: str) -> SignerKey:
    """The checkpoint-note signer: the log key's seed, named by the log's origin (C2SP convention)."""
    return SignerKey(origin, keys.log.seed)


def promotion_policy(settings: ServerSettings) -> PromotionPolicy:
    """The promotion thresholds of ``settings`` (used by ``serve`` and ``revoke`` alike)."""
    return PromotionPolicy(
        quorum=settings.quorum,
        min_reproductions=settings.min_reproductions,
        settling_ms=settings.settling_s * 1000,
    )


def identity_for(
    settings: ServerSettings,
    keys: ServerKeys,
    db: Database,
    now: Callable[[], int],
    http: httpx2.Client | None = None,
    *,
    dev_polls: int = 1,
    dev_interval_s: int = 1,
) -> IdentityAuthenticator:
    """The identity lanes (``vega.server.identity``) configured from the server's settings."""
    dev = None
    if settings.dev:
        dev = DevSettings(
            state_dir=settings.data_dir / "dev-identity",
            pending_polls=dev_polls,
            poll_interval_s=dev_interval_s,
        )
    return IdentityAuthenticator(
        IdentitySettings(
            public_url=settings.resolved_public_url,
            github_url=settings.github_url,
            github_api_url=settings.github_api_url,
            github_client_id=settings.github_client_id,
            github_client_secret=settings.github_client_secret,
            oidc_issuers=settings.oidc_issuers,
            reproducer_workflows=settings.reproducer_workflows,
            reproducer_self_hosted=settings.reproducer_self_hosted,
            dev=dev,
            credential_ttl_s=settings.credential_ttl_s,
            oidc_max_token_lifetime_s=settings.oidc_max_token_lifetime_s,
        ),
        master=keys.shared,
        db=db,
        http=http or httpx2.Client(timeout=15.0),
        now=lambda: now() / 1000,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in the spec's error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return JSONResponse({"error": str(detail).lower()}, status_code=status)


class _CountRequests:
    """ASGI middleware counting requests by method and status class."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.inc(
                "vega_http_requests_total", method=str(scope["method"]), code=f"{status['code'] // 100}xx"
            )


def create_app(
    settings: ServerSettings,
    db: Database,
    blobs: BlobStore,
    now: Callable[[], int],
    *,
    keys: ServerKeys,
    authenticator: IdentityAuthenticator | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """Build the control plane.

    Args:
        settings: resolved settings.
        db: the metadata database (migrations are applied here).
        blobs: NAR object storage.
        now: clock, epoch milliseconds.
        keys: the shared and log secret keys.
        authenticator: the identity lanes; built from ``settings`` by :func:`identity_for` when None.
        extra_routes: routes mounted besides the cache's, the log's and the identity lanes'.
    """
    auth = authenticator or identity_for(settings, keys, db, now)
    store = Store(db)
    origin = settings.resolved_log_origin
    signer = log_signer(keys, origin)
    log = TransparencyLog(db, origin, signer, keys.shared, now)
    service = CacheService(
        store=store,
        blobs=blobs,
        keys=keys,
        log=Sequencer(log),  # group commit: concurrent attestations share log transactions
        policy=promotion_policy(settings),
        now=now,
        public_url=settings.resolved_public_url,
        upload_url_ttl_s=settings.upload_url_ttl_s,
        max_upload_bytes=settings.max_upload_bytes,
        max_nar_bytes=settings.max_nar_bytes,
    )
    _ = service.trust  # the ``trust`` migrations, once, before any request
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactViewTokens) for f in logger.filters):
            logger.addFilter(RedactViewTokens())  # view tokens are bearer secrets
    metrics = Metrics()
    info = InfoResponse(
        version=vega.__version__,
        shared_key=service.shared_public_key,
        log_origin=origin,
        log_key=format_verifier_key(signer.verifier),
        github_url=auth.github_info()["url"],
        github_api_url=auth.github_info()["apiUrl"],
        github_client_id=auth.github_info()["clientId"],
        capabilities=CAPABILITIES + (("dev-identity",) if settings.dev else ()),
    )

    uploads = upload_gate(settings)

    def gauges() -> dict[str, int]:
        with store.read() as tx:
            counts = store.counts(tx)
        return {
            "vega_objects": counts.objects,
            "vega_attestations": counts.attestations,
            "vega_promotions": counts.promotions,
            "vega_narinfos": counts.narinfos,
            "vega_log_size": log.latest().size,
            "vega_object_nar_reads": service.nar_reads,
            "vega_uploads_in_progress": uploads.active,
            "vega_uploads_waiting": uploads.waiting,
        }

    h = Handlers(
        service=service,
        authenticator=auth,
        info=lambda: info,
        gauges=gauges,
        metrics=metrics,
        max_json_bytes=settings.max_json_bytes,
        narinfo_max_age_s=settings.narinfo_max_age_s,
        uploads=uploads,
        limiter=AttestRateLimiter(
            AttestLimits(
                path_burst=settings.attest_path_burst,
                path_per_hour=settings.attest_path_per_hour,
                owner_burst=settings.attest_owner_burst,
                owner_per_hour=settings.attest_owner_per_hour,
            ),
            now,
        ),
    )
    g = h.guarded
    routes: list[BaseRoute] = [
        Route("/healthz", g(h.healthz), methods=["GET"]),
        Route("/metrics", g(h.metrics_endpoint), methods=["GET"]),
        Route("/api/info", g(h.api_info), methods=["GET"]),
        Route("/api/status/{hash}", g(h.status), methods=["GET"]),
        Route("/api/cache/upload-url", g(h.upload_url), methods=["POST"]),
        Route("/api/cache/upload/nar/{name}", g(h.upload), methods=["PUT"]),
        Route("/api/cache/attest", g(h.attest), methods=["POST"]),
        Route("/api/cache/push", g(h.push), methods=["POST"]),
        Route("/api/cache/namespace", g(h.namespace_list), methods=["GET"]),
        Route("/api/cache/delete", g(h.namespace_delete), methods=["POST"]),
        Route("/api/repro/queue", g(h.repro_queue), methods=["GET"]),
        Route("/api/repro/dispatch-failed", g(h.dispatch_failed), methods=["POST"]),
        Route("/api/view/token", g(h.view_token), methods=["POST"]),
        Route("/api/trust", g(h.trust_add), methods=["POST"]),
        Route("/api/trust", g(h.trust_list), methods=["GET"]),
        Route("/api/trust/revoke", g(h.trust_revoke), methods=["POST"]),
        Route("/api/revocations", g(revocations_endpoint(store, keys.shared, now)), methods=["GET"]),
        *log_routes(log),
        *auth.routes(),
        *extra_routes,
        Route("/tenant/{rest:path}", g(h.tenant), methods=["GET"]),
        Route("/u/{rest:path}", g(h.view), methods=["GET"]),
        Route("/{rest:path}", g(h.root), methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        limit_worker_threads(settings.worker_threads)  # docs/adr/0013
        yield

    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error}, lifespan=lifespan)
    app.state.service = service
    app.state.log = log
    app.state.authenticator = auth
    app.state.metrics = metrics
    app.add_middleware(_CountRequests, metrics=metrics)
    return app
