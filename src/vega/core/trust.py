"""Trust edges and personal views: which social binding a consumer's view serves (pure).

A consumer (an enrolled owner) adds *edges*: "I accept builds from builder B within scope S".
Builders are immutable numeric GitHub ids. A scope is one of (protocol.md §4.8):

* ``all`` -- every build the builder attested;
* ``package`` -- builds whose store-path name equals the scope's name (builder-chosen: a
  blast-radius limit, not a barrier);
* ``flake`` -- builds with verified GitHub Actions provenance from that repository (lane
  ``gh-actions``, the tenant ``owner/repo`` taken from the verified OIDC token);
* ``org`` -- likewise from any repository of that owner.

:func:`resolve_view` decides, for one store path that is **not** in the shared tier, whether a
consumer's view serves a binding and which fingerprint. The rules (docs/adr/0020):

1. a revoked store path is never served (``revoked``);
2. only the consumer's active edges count (revoked edges are history); edges are not
   transitive: an edge names the builder whose own attestations count, nobody else's;
3. an attestation is *admitted* by an edge when its owner id is the edge's builder, its lane is
   a builder lane (``gh-actions`` or ``owner``) and the edge's scope matches it. None admitted:
   ``untrusted`` (no edge names any attester) or ``out-of-scope``;
4. *conflict*: the consumer's trusted builders (any active edge, whatever its scope) attested
   more than one fingerprint for the path -- nothing is served (``conflict``);
5. *divergence*: Vega's own reproductions (lane ``vega-repro``) attested a different fingerprint
   -- withheld (``diverged``) unless an admitting edge accepts unreproducible builds;
6. otherwise the admitted fingerprint is served (``trusted``), re-signed with the consumer's
   view key by the server.

Spec: protocol.md §2.6 (view keys), §3 (``/u/<token>``), §4.8 (trust edges); cli.md §15; issue 8.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from vega.core.jsonfields import expect_object
from vega.core.promotion import AttestationRecord
from vega.core.signing import is_printable_key
from vega.errors import FormatError

__all__ = [
    "SCOPE_KINDS",
    "ScopeKind",
    "TrustEdge",
    "TrustRequest",
    "TrustScope",
    "ViewReason",
    "ViewResolution",
    "ViewToken",
    "edge_admits",
    "resolve_view",
]

ScopeKind = Literal["all", "package", "flake", "org"]
SCOPE_KINDS: tuple[ScopeKind, ...] = ("all", "package", "flake", "org")
"""Every scope kind of protocol.md §4.8."""
ViewReason = Literal["trusted", "untrusted", "out-of-scope", "conflict", "diverged", "revoked"]

_BUILDER = re.compile(r"[1-9][0-9]{0,19}")
_OWNER = re.compile(r"[a-z0-9][a-z0-9-]{0,38}")
_FLAKE = re.compile(r"[a-z0-9][a-z0-9-]{0,38}/[a-z0-9._-]{1,100}")
_PACKAGE = re.compile(r"[A-Za-z0-9+._?=-]{1,211}")  # a store-path name (Nix's alphabet)
_BUILDER_LANES = frozenset(("gh-actions", "owner"))


@dataclass(frozen=True, slots=True)
class TrustScope:
    """What part of a builder's output an edge accepts."""

    kind: ScopeKind
    """``all``, ``package``, ``flake`` or ``org``."""
    name: str | None = None
    """The package name, ``owner/repo`` (lowercase) or owner (lowercase); None for ``all``."""

    def __post_init__(self) -> None:
        if self.kind not in SCOPE_KINDS:
            raise FormatError(f"scope.kind: expected one of {', '.join(SCOPE_KINDS)}, got {self.kind!r}")
        if self.kind == "all":
            if self.name is not None:
                raise FormatError("scope: kind 'all' takes no name")
            return
        pattern = {"package": _PACKAGE, "flake": _FLAKE, "org": _OWNER}[self.kind]
        if not isinstance(self.name, str) or not pattern.fullmatch(self.name):
            raise FormatError(f"scope.name: not a valid {self.kind} name: {str(self.name)[:80]!r}")

    @classmethod
    def from_json(cls, obj: object) -> TrustScope:
        """Parse ``{"kind": ..., "name"?: ...}``.

        Raises:
            FormatError: not one of the four shapes.
        """
        o = expect_object(obj, "scope")
        kind, name = o.get("kind"), o.get("name")
        if not isinstance(kind, str) or kind not in SCOPE_KINDS:
            raise FormatError(f"scope.kind: expected one of {', '.join(SCOPE_KINDS)}")
        if name is not None and not isinstance(name, str):
            raise FormatError("scope.name: expected a string")
        if kind in ("flake", "org") and name is not None:
            name = name.lower()
        scope_kind: ScopeKind = kind  # narrowed by the membership check above
        return cls(scope_kind, name)

    def to_json(self) -> dict[str, object]:
        """The wire shape."""
        return {"kind": self.kind} if self.name is None else {"kind": self.kind, "name": self.name}

    def admits(self, record: AttestationRecord, store_name: str) -> bool:
        """Whether an attestation of a path named ``store_name`` falls within this scope."""
        if self.kind == "all":
            return True
        if self.kind == "package":
            return store_name == self.name
        # flake and org: verified CI provenance only; the tenant came from the verified token.
        if record.lane != "gh-actions" or record.tenant is None:
            return False
        tenant = record.tenant.lower()
        if self.kind == "flake":
            return tenant == self.name
        return tenant.split("/", 1)[0] == self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustEdge:
    """One edge of a consumer's trust graph (protocol.md §4.8)."""

    builder: str
    """The builder's numeric GitHub id, decimal string."""
    scope: TrustScope
    """What of the builder's output is accepted."""
    accept_unreproducible: bool = False
    """Serve bindings Vega's reproducer diverged from."""
    revoked_at_ms: int | None = None
    """When the edge was revoked (kept as history), or None while active."""

    def __post_init__(self) -> None:
        if not _BUILDER.fullmatch(self.builder):
            raise FormatError(f"builder: expected a numeric GitHub id, got {self.builder[:40]!r}")

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at_ms is None

    def to_json(self) -> dict[str, object]:
        """The wire shape of ``GET /api/trust``."""
        out: dict[str, object] = {"builder": self.builder, "scope": self.scope.to_json()}
        if self.accept_unreproducible:
            out["acceptUnreproducible"] = True
        if self.revoked_at_ms is not None:
            out["revokedAt"] = self.revoked_at_ms
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustRequest:
    """The body of ``POST /api/trust`` and ``POST /api/trust/revoke`` (protocol.md §4.8)."""

    builder: str
    """Numeric GitHub id of the builder."""
    scope: TrustScope
    """The edge's scope."""
    accept_unreproducible: bool = False
    """``acceptUnreproducible`` (``/api/trust`` only)."""

    @classmethod
    def from_json(cls, obj: object) -> TrustRequest:
        """Parse and check a request body.

        Raises:
            FormatError: a field is missing or malformed.
        """
        o = expect_object(obj)
        builder = o.get("builder")
        if not isinstance(builder, str) or not _BUILDER.fullmatch(builder):
            raise FormatError("builder: expected a numeric GitHub id as a decimal string")
        accept = o.get("acceptUnreproducible", False)
        if not isinstance(accept, bool):
            raise FormatError("acceptUnreproducible: expected a boolean")
        return cls(builder=builder, scope=TrustScope.from_json(o.get("scope")), accept_unreproducible=accept)

    def to_json(self) -> dict[str, object]:
        """The wire shape."""
        out: dict[str, object] = {"builder": self.builder, "scope": self.scope.to_json()}
        if self.accept_unreproducible:
            out["acceptUnreproducible"] = True
        return out


def edge_admits(edge: TrustEdge, record: AttestationRecord, store_name: str) -> bool:
    """Whether an active ``edge`` admits ``record`` (its builder, a builder lane, its scope)."""
    return (
        edge.active
        and record.lane in _BUILDER_LANES
        and record.owner_id == edge.builder
        and edge.scope.admits(record, store_name)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewResolution:
    """What a consumer's view serves for one store path outside the shared tier."""

    reason: ViewReason
    """``trusted`` when served; otherwise why not."""
    fingerprint: str | None = None
    """The served fingerprint (``trusted``) or None."""
    builders: tuple[str, ...] = ()
    """The trusted builders behind the served fingerprint, or those in conflict."""
    attester_id: str | None = None
    """An admitted attestation of the served fingerprint (whose narinfo the server re-signs)."""

    @property
    def served(self) -> bool:
        """Whether the view serves a binding."""
        return self.reason == "trusted"

    def explain(self) -> str:
        """One sentence for the view's 404 body (read by ``vega verify`` through a view)."""
        return {
            "trusted": "served as a social binding from builders you trust",
            "untrusted": "not in the shared tier, and no builder you trust attested it",
            "out-of-scope": "builders you trust attested it, but outside the scope of your trust edges",
            "conflict": "builders you trust disagree about this path ("
            + ", ".join(self.builders)
            + "), so your view serves none of them",
            "diverged": "Vega's reproduction diverged from what your trusted builder attested"
            " (trust with --accept-unreproducible to accept it)",
            "revoked": "this store path is revoked",
        }[self.reason]


def resolve_view(
    edges: Sequence[TrustEdge],
    attestations: Sequence[AttestationRecord],
    store_name: str,
    *,
    revoked: bool = False,
) -> ViewResolution:
    """Decide what a consumer's view serves for one store path (rules in the module docstring).

    Args:
        edges: the consumer's edges (revoked ones are ignored).
        attestations: every attestation of the store path.
        store_name: the store path's name (after ``<hash>-``).
        revoked: whether the store path is revoked.
    """
    if revoked:
        return ViewResolution(reason="revoked")
    active = [e for e in edges if e.active]
    trusted_ids = {e.builder for e in active}
    by_trusted = [r for r in attestations if r.lane in _BUILDER_LANES and r.owner_id in trusted_ids]
    if not by_trusted:
        return ViewResolution(reason="untrusted")
    admitted = [(r, e) for r in by_trusted for e in active if edge_admits(e, r, store_name)]
    if not admitted:
        return ViewResolution(reason="out-of-scope")
    fingerprints = {r.fingerprint for r in by_trusted}
    if len(fingerprints) > 1:
        return ViewResolution(
            reason="conflict", builders=tuple(sorted({r.owner_id or "" for r in by_trusted}))
        )
    fp = admitted[0][0].fingerprint
    repro = {r.fingerprint for r in attestations if r.lane == "vega-repro"}
    if repro - {fp} and not any(e.accept_unreproducible for _, e in admitted):
        return ViewResolution(reason="diverged", fingerprint=None)
    builders = tuple(sorted({r.owner_id or "" for r, _ in admitted}))
    first = min((r for r, _ in admitted), key=lambda r: (r.attested_at_ms, r.attester_id))
    return ViewResolution(reason="trusted", fingerprint=fp, builders=builders, attester_id=first.attester_id)


_SUBSTITUTER = re.compile(r"/u/[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewToken:
    """The answer of ``POST /api/view/token`` (protocol.md §4.7)."""

    token: str
    """The opaque token (a bearer secret: the capability of the view)."""
    substituter: str
    """``/u/<token>``, relative to the control plane."""
    public_key: str
    """The consumer's view key, ``vega-view-<consumer'>-1:<base64>``."""
    shared_key: str
    """The shared key, ``vega-cache-1:<base64>``."""

    def __repr__(self) -> str:
        return f"ViewToken(public_key={self.public_key!r})"  # never the token

    def to_json(self) -> dict[str, object]:
        """The wire shape."""
        return {
            "token": self.token,
            "substituter": self.substituter,
            "publicKey": self.public_key,
            "sharedKey": self.shared_key,
        }

    @classmethod
    def from_json(cls, obj: object) -> ViewToken:
        """Parse and check an answer the way the CLI must before printing config (§4.7).

        Raises:
            FormatError: with cli.md §16's texts.
        """
        o = expect_object(obj)
        substituter, public, shared = o.get("substituter"), o.get("publicKey"), o.get("sharedKey")
        if not isinstance(substituter, str) or not _SUBSTITUTER.fullmatch(substituter):
            raise FormatError("unexpected substituter path; refusing to print config")
        for key in (public, shared):
            if not isinstance(key, str) or not is_printable_key(key):
                raise FormatError("malformed public key; refusing to print config")
        token = o.get("token")
        return cls(
            token=token if isinstance(token, str) else substituter[3:],
            substituter=substituter,
            public_key=str(public),
            shared_key=str(shared),
        )
