"""``GET /api/revocations``: the original's signed revocation list, from the server's revocation records.

Every revoked store path (``vega-server revoke``, :meth:`vega.server.promotion.Promoter.revoke`)
is listed, oldest first, with the store path its attestations or promotion named (else
``/nix/store/<hash>``, as the revocation's log leaf does), its reason and time; no fingerprint, as a
revocation here withdraws the path whatever its content. The body is signed by the shared key
(:func:`vega.core.revocations.sign_revocation_list`) at request time, so a client's 6-hour
freshness rule holds for as long as the server answers. Global, at the control-plane origin (not
per tenant), and never cached by intermediaries.

Spec: changes-0.19.md ("Revocation list"); issue 14.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vega.core.revocations import Revocation, sign_revocation_list
from vega.core.signing import SecretKey
from vega.server.store import Store

__all__ = ["list_revocations", "revocation_list", "revocations_endpoint"]

_QUERY = (
    "SELECT r.hash_part, r.reason, r.revoked_at_ms,"
    " (SELECT p.store_path FROM cache_promotions p WHERE p.hash_part = r.hash_part),"
    " (SELECT MIN(a.store_path) FROM cache_attestations a WHERE a.hash_part = r.hash_part)"
    " FROM cache_revocations r ORDER BY r.revoked_at_ms, r.hash_part"
)


def list_revocations(store: Store) -> list[Revocation]:
    """Every revocation record, oldest first."""
    with store.read() as tx:
        rows = tx.fetchall(_QUERY)
    return [
        Revocation(
            hash=row[0],
            store_path=row[3] or row[4] or f"/nix/store/{row[0]}",
            reason=row[1],
            at=int(row[2]),
        )
        for row in rows
    ]


def revocation_list(store: Store, shared: SecretKey, now_ms: int) -> dict[str, object]:
    """The signed ``/api/revocations`` body as of ``now_ms``."""
    return sign_revocation_list(shared, list_revocations(store), now_ms)


def revocations_endpoint(
    store: Store, shared: SecretKey, now: Callable[[], int]
) -> Callable[[Request], Awaitable[Response]]:
    """The route's endpoint: the list signed at request time (database work off the event loop)."""

    async def endpoint(request: Request) -> Response:
        body = await run_in_threadpool(revocation_list, store, shared, now())
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return endpoint
