"""The original's signed revocation list (0.19.0): its signed bytes, and what a client may conclude.

``GET /api/revocations`` at the control-plane origin answers::

    {"v":2,"revocations":[{"hash","storePath","fingerprint"?,"reason","at"},...],
     "total":N,"at":MS,"signature":"<base64>"}

The signature is Ed25519 by the shared key (``vega-cache-1``) over the UTF-8 bytes of
``vega-revocations:v2:<at>:<total>:<JSON of the revocations array re-serialised exactly as
received, key order kept, no spaces>`` (:func:`signing_message`). The re-serialisation is
JavaScript's ``JSON.stringify`` of the parsed array, which Python's ``json.dumps`` with compact
separators and ``ensure_ascii=False`` reproduces for every string, integer, boolean, null,
array and object (:func:`canonical_array`); a non-integral number may format differently, and
then the list is "unknown", never clean.

A client learns one of three things about a build (:func:`assess`): ``revoked`` (a verified,
fresh, complete list names it), ``clean`` (such a list does not), or ``unknown`` (the list is
malformed, unsigned, badly signed, older than :data:`MAX_AGE_MS` by the client's clock, or its
``total`` differs from the array's length; the caller adds "unreachable"). Only the caller's
pinned shared key authenticates a list, never a key the cache served.

Spec: changes-0.19.md ("Revocation list"); issue 14.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from vega.core.signing import PublicKey, SecretKey, is_valid_signature, sign

__all__ = [
    "MAX_AGE_MS",
    "REVOCATIONS_VERSION",
    "Revocation",
    "RevocationStatus",
    "assess",
    "canonical_array",
    "claimed_revocation",
    "sign_revocation_list",
    "signing_message",
]

REVOCATIONS_VERSION = 2
"""The ``v`` of the list and the ``v2`` of its signed message."""

MAX_AGE_MS = 6 * 60 * 60 * 1000
"""A list older than this (by the client's clock) proves nothing: 6 hours."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Revocation:
    """One entry of the list."""

    hash: str
    """The store-path hash."""
    store_path: str
    """The absolute store path."""
    reason: str
    """Why it was revoked."""
    at: int
    """When, epoch milliseconds."""
    fingerprint: str | None = None
    """The narinfo fingerprint revoked (a binding); None revokes the path whatever its content."""

    def to_json(self) -> dict[str, object]:
        """The entry as the original writes it: ``hash, storePath, fingerprint?, reason, at``."""
        out: dict[str, object] = {"hash": self.hash, "storePath": self.store_path}
        if self.fingerprint is not None:
            out["fingerprint"] = self.fingerprint
        out.update(reason=self.reason, at=self.at)
        return out


def canonical_array(revocations: Sequence[object]) -> str:
    """The array as ``JSON.stringify`` writes it: no spaces, key order kept, non-ASCII unescaped."""
    return json.dumps(list(revocations), separators=(",", ":"), ensure_ascii=False)


def signing_message(at: int, total: int, revocations_json: str) -> bytes:
    """``vega-revocations:v2:<at>:<total>:<revocations JSON>`` as UTF-8."""
    return f"vega-revocations:v{REVOCATIONS_VERSION}:{at}:{total}:{revocations_json}".encode()


def sign_revocation_list(secret: SecretKey, revocations: Sequence[Revocation], at: int) -> dict[str, object]:
    """The whole ``/api/revocations`` body, signed by ``secret`` (the shared key) at ``at`` ms."""
    array = [r.to_json() for r in revocations]
    message = signing_message(at, len(array), canonical_array(array))
    signature = sign(secret, message).partition(":")[2]
    return {
        "v": REVOCATIONS_VERSION,
        "revocations": array,
        "total": len(array),
        "at": at,
        "signature": signature,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationStatus:
    """What the list says about one build."""

    status: Literal["revoked", "clean", "unknown"]
    """``revoked``/``clean`` only from a verified, fresh, complete list."""
    detail: str
    """Why (the spec's wording for each unknown case; the revocation's reason when revoked)."""
    revocation: Revocation | None = None
    """The entry naming the build, when revoked."""
    offered: bool = True
    """False when the control plane has no list at all (an original 0.18: 404, 405 or 501)."""


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _unknown(why: str) -> RevocationStatus:
    return RevocationStatus(status="unknown", detail=f"revocation list {why}")


def assess(
    body: object,
    key: PublicKey,
    now_ms: int,
    hash_part: str,
    fingerprint: str | None = None,
) -> RevocationStatus:
    """Whether the list ``body`` (parsed JSON) revokes the build ``hash_part``.

    Args:
        body: the parsed ``/api/revocations`` answer.
        key: the user's pinned shared key (never one the cache served).
        now_ms: the client's clock, epoch milliseconds.
        hash_part: the build's store-path hash.
        fingerprint: the narinfo's fingerprint; an entry naming another fingerprint is another
            binding. None matches every entry for the path.
    """
    if not isinstance(body, Mapping):
        return _unknown("is malformed: not a JSON object")
    array, total, at, signature = (body.get(k) for k in ("revocations", "total", "at", "signature"))
    if _int(body.get("v")) != REVOCATIONS_VERSION:
        return _unknown(f"is malformed: version is not {REVOCATIONS_VERSION}")
    if not isinstance(array, list) or not all(isinstance(e, Mapping) for e in array):
        return _unknown("is malformed: revocations is not an array of objects")
    total_n, at_ms = _int(total), _int(at)
    if total_n is None or at_ms is None:
        return _unknown("is malformed: total and at must be integers")
    if not isinstance(signature, str) or not signature:
        return _unknown("is unsigned")
    try:
        message = signing_message(at_ms, total_n, canonical_array(array))
    except UnicodeEncodeError:
        return _unknown("is malformed: not UTF-8")
    if not is_valid_signature(key, message, f"{key.name}:{signature}"):
        return _unknown(f"signature does not verify under {key.name}")
    if total_n != len(array):
        return _unknown(f"is truncated: total {total_n}, {len(array)} entries served")
    if now_ms - at_ms > MAX_AGE_MS:
        hours = (now_ms - at_ms) / 3_600_000
        return _unknown(f"is stale: signed {hours:.1f} hours ago (more than 6)")
    for entry in array:
        if _names(entry, hash_part, fingerprint):
            revocation = _revocation(entry, hash_part)
            return RevocationStatus(
                status="revoked", detail=f"revoked: {revocation.reason}", revocation=revocation
            )
    detail = f"not in the signed revocation list ({len(array)} entries)"
    return RevocationStatus(status="clean", detail=detail)


def claimed_revocation(body: object, hash_part: str, fingerprint: str | None = None) -> Revocation | None:
    """The entry of the list ``body`` naming the build, WITHOUT checking the list's signature.

    For a caller with no pinned shared key (issue 12): an unauthenticated list can never prove a
    build clean, but its claim that the build is revoked is honoured, since failing closed on
    the cache's own word costs nothing a lying cache could not already take away. None when the
    body is not a list of objects or names nothing.
    """
    array = body.get("revocations") if isinstance(body, Mapping) else None
    if not isinstance(array, list):
        return None
    for entry in array:
        if isinstance(entry, Mapping) and _names(entry, hash_part, fingerprint):
            return _revocation(entry, hash_part)
    return None


def _names(entry: Mapping[str, object], hash_part: str, fingerprint: str | None) -> bool:
    """Lenient on purpose: any entry naming the path (by ``hash`` or ``storePath``) counts."""
    path = entry.get("storePath")
    named = entry.get("hash") == hash_part or (
        isinstance(path, str) and path.rsplit("/", 1)[-1].split("-", 1)[0] == hash_part
    )
    bound = entry.get("fingerprint")
    other_binding = fingerprint is not None and isinstance(bound, str) and bound != fingerprint
    return named and not other_binding


def _revocation(entry: Mapping[str, object], hash_part: str) -> Revocation:
    path, reason, fp = entry.get("storePath"), entry.get("reason"), entry.get("fingerprint")
    return Revocation(
        hash=hash_part,
        store_path=path if isinstance(path, str) else f"/nix/store/{hash_part}",
        reason=reason if isinstance(reason, str) and reason else "no reason given",
        at=_int(entry.get("at")) or 0,
        fingerprint=fp if isinstance(fp, str) else None,
    )
