"""Trust edges and personal views: ``/api/trust*``, ``/api/view/token`` and ``/u/<token>/...``.

A consumer's view serves the shared tier as the shared key signed it, and for a store path not
in the shared tier the binding :func:`vega.core.trust.resolve_view` picks from the consumer's
edges, re-signed with the consumer's own view key (protocol.md §2.6: ``vega-social-key-v1:
<consumer>``, the consumer being the numeric user id, so the key is ``vega-view-<id>-1``).

The view token is a bearer secret. It is ``base64url(HMAC-SHA-256(k, "<user id>:<nonce>"))``
with ``k`` derived from the master seed and a random nonce kept in the database with the
token's SHA-256 (the token itself is never stored); a request is looked up by the SHA-256 of
the presented token and the stored hash is compared in constant time. Rotation replaces the
nonce, so the old token stops working with the commit. Nothing here logs a token, and
:class:`RedactViewTokens` removes them from uvicorn's access log.

Spec: protocol.md §2.6, §3, §4.7, §4.8, §6.4; docs/adr/0020; issue 8.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import replace

from vega.core.narinfo import format_narinfo, parse_narinfo, sign_narinfo
from vega.core.signing import SecretKey, format_public_key, view_key
from vega.core.trust import TrustEdge, TrustRequest, ViewResolution, ViewToken, resolve_view
from vega.server.errors import ServiceError
from vega.server.servicecore import HASH_PART, OwnerPrincipal, ServiceCore
from vega.server.store import SHARED
from vega.server.store.trust import TrustStore, ViewTokenRow

__all__ = ["MAX_ACTIVE_EDGES", "TOKEN_PATTERN", "RedactViewTokens", "ViewNarinfo", "ViewRules"]

MAX_ACTIVE_EDGES = 1000
"""Active edges one consumer may hold (every view request reads them all)."""

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,128}")
"""The shape of a view token in a ``/u/<token>`` path."""
_TOKEN_IN_PATH = re.compile(r"/u/[^/?#\s]+")


class RedactViewTokens(logging.Filter):
    """A logging filter that replaces ``/u/<token>`` by ``/u/<redacted>`` in a record's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the message and its arguments; never drops a record."""
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_PATH.sub("/u/<redacted>", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_PATH.sub("/u/<redacted>", a) if isinstance(a, str) else a for a in record.args
            )
        return True


class ViewNarinfo:
    """What a view answers for one narinfo: the text, or why not (``text`` None)."""

    __slots__ = ("reason", "shared", "text")

    def __init__(self, text: str | None, *, shared: bool = False, reason: str | None = None) -> None:
        self.text = text
        """The narinfo, or None."""
        self.shared = shared
        """Served from the shared tier (signed by the shared key)."""
        self.reason = reason
        """Why nothing is served, when the view has something to say (else None: "not found")."""


class ViewRules(ServiceCore):
    """Edges, tokens and the view's read side."""

    _trust_store: TrustStore | None = None
    _view_keys: dict[str, SecretKey] | None = None

    @property
    def trust(self) -> TrustStore:
        """The edge and token store (migrated on first use)."""
        if self._trust_store is None:
            self._trust_store = TrustStore(self.store.db)
        return self._trust_store

    # -- keys and tokens --------------------------------------------------------------

    def view_secret(self, consumer: str) -> SecretKey:
        """The consumer's view key (§2.6, derived; cached)."""
        if self._view_keys is None:
            self._view_keys = {}
        key = self._view_keys.get(consumer)
        if key is None:
            key = view_key(self.keys.shared, consumer)
            self._view_keys[consumer] = key
        return key

    def _token(self, consumer: str, nonce: str) -> str:
        k = hashlib.sha256(self.keys.shared.seed + b"vega-view-token-v1").digest()
        mac = hmac.new(k, f"{consumer}:{nonce}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def view_token(self, owner: OwnerPrincipal, *, rotate: bool = False) -> ViewToken:
        """``POST /api/view/token``: the owner's view (issued on first use; ``rotate`` replaces it)."""
        consumer = owner.user_id
        with self.store.write() as tx:
            row = self.trust.view_token(tx, consumer)
            if row is None or rotate:
                nonce = secrets.token_hex(16)
                token = self._token(consumer, nonce)
                row = ViewTokenRow(
                    consumer_id=consumer,
                    nonce=nonce,
                    token_hash=hashlib.sha256(token.encode()).hexdigest(),
                    issued_at_ms=self.now(),
                )
                self.trust.set_view_token(tx, row)
        token = self._token(consumer, row.nonce)
        return ViewToken(
            token=token,
            substituter=f"/u/{token}",
            public_key=format_public_key(self.view_secret(consumer).public),
            shared_key=self.shared_public_key,
        )

    def consumer_for(self, token: str) -> str | None:
        """The consumer whose current token is ``token``, else None (no detail: not an oracle)."""
        if not TOKEN_PATTERN.fullmatch(token):
            return None
        presented = hashlib.sha256(token.encode()).hexdigest()
        with self.store.read() as tx:
            row = self.trust.consumer_of(tx, presented)
        if row is None or not hmac.compare_digest(row.token_hash, presented):
            return None
        return row.consumer_id

    # -- edges --------------------------------------------------------------------------

    def trust_add(self, owner: OwnerPrincipal, request: TrustRequest) -> None:
        """``POST /api/trust``: add (or re-add) an edge; idempotent."""
        edge = TrustEdge(
            builder=request.builder,
            scope=request.scope,
            accept_unreproducible=request.accept_unreproducible,
        )
        with self.store.write() as tx:
            active = self.trust.edges(tx, owner.user_id, active_only=True)
            known = any(e.builder == edge.builder and e.scope == edge.scope for e in active)
            if not known and len(active) >= MAX_ACTIVE_EDGES:
                raise ServiceError(
                    f"too many trust edges: at most {MAX_ACTIVE_EDGES} active; remove some first", status=409
                )
            self.trust.add_edge(tx, owner.user_id, edge, self.now())

    def trust_revoke(self, owner: OwnerPrincipal, request: TrustRequest) -> None:
        """``POST /api/trust/revoke``: revoke the edge ``(builder, scope)``; idempotent."""
        with self.store.write() as tx:
            self.trust.revoke_edge(tx, owner.user_id, request.builder, request.scope, self.now())

    def trust_list(self, owner: OwnerPrincipal) -> list[TrustEdge]:
        """``GET /api/trust``: every edge of the owner, revoked generations included."""
        with self.store.read() as tx:
            return self.trust.edges(tx, owner.user_id)

    # -- the view's read side ------------------------------------------------------------

    def view_narinfo(self, consumer: str, hash_part: str) -> ViewNarinfo:
        """The narinfo the consumer's view serves for ``hash_part``."""
        if not HASH_PART.fullmatch(hash_part):
            return ViewNarinfo(None)
        with self.store.read() as tx:
            shared = self.store.get_narinfo(tx, SHARED, hash_part)
            if shared is not None:
                return ViewNarinfo(shared, shared=True)
            rows = self.store.attestations(tx, hash_part)
            if not rows:
                return ViewNarinfo(None)
            edges = self.trust.edges(tx, consumer, active_only=True)
            revoked = self.store.is_revoked(tx, hash_part)
        name = rows[0].store_path.rsplit("/", 1)[-1].split("-", 1)[1]
        resolution: ViewResolution = resolve_view(edges, [r.record for r in rows], name, revoked=revoked)
        if not resolution.served:
            reason = None if resolution.reason == "untrusted" else resolution.explain()
            return ViewNarinfo(None, reason=reason)
        row = next(r for r in rows if r.record.attester_id == resolution.attester_id)
        unsigned = replace(parse_narinfo(row.narinfo), sigs=())
        signed = sign_narinfo(unsigned, self.view_secret(consumer))
        return ViewNarinfo(format_narinfo(signed))
