"""Vega's log records: the original's signed tree head, and leaf events with exact bytes.

Signed tree head (protocol.md §2.7, §5.1)::

    {"size":1234,"rootHash":"<64 hex>","timestamp":1767225600000,"signature":"vega-cache-1:<B64>"}

signed over ``vega-sth:v1:<size>:<rootHash>:<timestamp>``, the numbers rendered as
JavaScript's ``String(number)`` renders them (``1234.0`` → ``1234``).

Leaf events are JSON objects; their bytes are the leaf data that is hashed,
so :func:`encode_leaf` is canonical: keys in the order shown, no spaces,
non-ASCII characters kept as UTF-8 (JavaScript ``JSON.stringify``)::

    {"v":1,"event":"promotion","storePath":...,"fingerprint":...,"narHash":...,"agreedSince":1000,"at":2000}
    {"v":1,"event":"revocation","storePath":...,"reason":...,"at":2}
    {"v":1,"event":"attestation","storePath":...,"fingerprint":...,"narHash":...,"tenant":...,
     "lane":...,"attesterId":...,"provenance":{"flakeRef":...,"attr":...,"rev":...,"dir":...},"at":...}
    {"v":1,"event":"key-added","keyName":...,"publicKey":"<name>:<B64>","at":...}
    {"v":1,"event":"key-retired","keyName":...,"publicKey":"<name>:<B64>","at":...}

``agreedSince`` (promotion), ``provenance`` and ``dir`` (attestation) are
omitted when absent; ``tenant`` is ``null`` for the pool lane.

A leaf must fit one C2SP entry (at most :data:`MAX_LEAF_BYTES`), but a fingerprint lists every
reference, so a build with about 1,300 references or more does not. Such a promotion or
attestation leaf carries ``"fingerprintSha256": "<64 hex>"`` (SHA-256 of the fingerprint's UTF-8
bytes) in place of ``"fingerprint"``, at the same position; every leaf that fits keeps the
original's shape byte for byte (ADR 0012, docs/log-api.md).

Spec: protocol.md §2.7 (STH message), §5.1 (STH), §5.2 (leaves, "binds"), §7.1 (attestation).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, cast, get_args

from vega.core import signing
from vega.errors import FormatError, VerificationError

__all__ = [
    "MAX_LEAF_BYTES",
    "AttestationLeaf",
    "BuildProvenance",
    "KeyAddedLeaf",
    "KeyRetiredLeaf",
    "Lane",
    "LeafEvent",
    "PromotionLeaf",
    "RevocationLeaf",
    "SignedTreeHead",
    "encode_leaf",
    "events_message",
    "fingerprint_sha256",
    "js_number",
    "leaf_binds_narinfo",
    "parse_leaf",
    "parse_sth",
    "sign_sth",
    "sth_message",
    "verify_sth",
]

Lane = Literal["gh-actions", "owner", "pool", "vega-repro"]
_LANES: tuple[str, ...] = get_args(Lane)
_MAX_JSON_BYTES = 1 << 20
MAX_LEAF_BYTES = 0xFFFF
"""The largest leaf: one C2SP entry-bundle entry (a 16-bit length)."""
_MAX_SAFE = 2**53 - 1

# --- signed tree head -------------------------------------------------------------------------


def js_number(x: int | float) -> str:
    """Render a number as JavaScript's ``String(number)`` does (ECMA-262 Number::toString).

    Integers are first rounded to the nearest double, as ``JSON.parse`` would.

    Raises:
        FormatError: ``x`` is not finite.
    """
    value = float(x)
    if not math.isfinite(value):
        raise FormatError(f"number is not finite: {x!r}")
    if value == 0:
        return "0"
    if value < 0:
        return "-" + js_number(-value)
    # repr() gives the shortest round-tripping digits, which is what ECMA-262 asks for.
    _sign, digits_t, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0")
    k = len(digits)
    n = int(exponent) + len(digits_t)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def sth_message(size: int | float, root_hex: str, timestamp: int | float) -> bytes:
    """Return ``vega-sth:v1:<size>:<rootHash>:<timestamp>`` as UTF-8 (protocol.md §2.7).

    Raises:
        FormatError: a number is not finite.
    """
    return f"vega-sth:v1:{js_number(size)}:{root_hex}:{js_number(timestamp)}".encode()


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    """The original's signed tree head, with its numbers and root text exactly as sent."""

    size: int | float
    """The JSON ``size`` as sent (servers should send integers)."""
    root_hex: str
    """The JSON ``rootHash`` exactly as sent (64 hex digits; the signed text)."""
    timestamp: int | float
    """The JSON ``timestamp`` as sent (milliseconds)."""
    signature: str | None = None
    """``<keyname>:<B64>``, or None for an unsigned (unverified) head."""

    @property
    def tree_size(self) -> int:
        """The size a client uses: ``floor(size)`` when positive, else 0 (protocol.md §5.1)."""
        return math.floor(self.size) if self.size > 0 else 0

    @property
    def root_hash(self) -> bytes:
        """The root hash as 32 bytes."""
        return bytes.fromhex(self.root_hex)

    @property
    def message(self) -> bytes:
        """The signed message (protocol.md §2.7)."""
        return sth_message(self.size, self.root_hex, self.timestamp)

    def to_json(self) -> dict[str, object]:
        """Return the ``GET /log/sth`` body (protocol.md §5.1)."""
        body: dict[str, object] = {"size": self.size, "rootHash": self.root_hex, "timestamp": self.timestamp}
        if self.signature is not None:
            body["signature"] = self.signature
        return body

    @classmethod
    def from_json(cls, obj: object) -> SignedTreeHead:
        """Narrow an already-decoded JSON value.

        Raises:
            FormatError: missing or mistyped fields, non-finite numbers, or a root
                hash that is not 64 hex digits.
        """
        if not isinstance(obj, dict):
            raise FormatError("tree head: expected a JSON object")
        size = _number(obj, "size", "tree head")
        timestamp = _number(obj, "timestamp", "tree head")
        root = obj.get("rootHash")
        if not isinstance(root, str) or len(root) != 64 or not _is_hex(root):
            raise FormatError("tree head: rootHash must be 64 hex digits")
        sig = obj.get("signature")
        if sig is not None and not isinstance(sig, str):
            raise FormatError("tree head: signature must be a string")
        return cls(size, root, timestamp, sig)


def parse_sth(data: bytes | str) -> SignedTreeHead:
    """Parse a ``GET /log/sth`` body.

    Raises:
        FormatError: not JSON, or not a tree head (see :meth:`SignedTreeHead.from_json`).
    """
    return SignedTreeHead.from_json(_loads(data, "tree head"))


def sign_sth(size: int, root: bytes, timestamp_ms: int, key: signing.SecretKey) -> SignedTreeHead:
    """Make a signed tree head (the server's side; integers, lowercase hex)."""
    root_hex = root.hex()
    return SignedTreeHead(
        size, root_hex, timestamp_ms, signing.sign(key, sth_message(size, root_hex, timestamp_ms))
    )


def verify_sth(sth: SignedTreeHead, public_key: signing.PublicKey) -> None:
    """Check the tree head's signature against the log's public key.

    Raises:
        VerificationError: unsigned, or the signature does not verify.
    """
    if sth.signature is None:
        raise VerificationError("tree head is not signed")
    if not signing.is_valid_signature(public_key, sth.message, sth.signature):
        raise VerificationError(
            f"tree head signature does not verify with key {public_key.name!r} "
            f"(size {js_number(sth.size)}, root {sth.root_hex[:64]})"
        )


def events_message(store_hash: str, size: int, root: bytes, indexes: Sequence[int]) -> bytes:
    """Return the message of a lookup's signed event statement (docs/log-api.md, ADR 0012).

    ``vega-events:v1:<store-path hash>:<size>:<root hex>:<i1>,<i2>,...``: "in the tree of
    ``size`` leaves with this root, the promotion and revocation entries of this build are
    exactly these indexes". Signed with the STH key, so an omission is signed evidence against
    the log. The prefix keeps it apart from STH messages and narinfo fingerprints (``1;...``).
    """
    listed = ",".join(str(i) for i in indexes)
    return f"vega-events:v1:{store_hash}:{size}:{root.hex()}:{listed}".encode()


# --- leaf events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionLeaf:
    """A store path promoted to the shared tier (the original's shape, protocol.md §5.2)."""

    store_path: str
    """Absolute store path."""
    fingerprint: str
    """The §2.5 fingerprint of the promoted narinfo ("" when parsed from a compact leaf)."""
    nar_hash: str
    """``sha256:<52 nix32>``."""
    at: int
    """When (ms)."""
    agreed_since: int | None = None
    """When the quorum was first met (ms), if known."""
    fingerprint_sha256: str | None = None
    """Set only when parsed from a compact leaf: the fingerprint's SHA-256, 64 hex."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationLeaf:
    """A promotion withdrawn (protocol.md §5.2)."""

    store_path: str
    """Absolute store path."""
    reason: str
    """Why, for people."""
    at: int
    """When (ms)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildProvenance:
    """Where a build came from (protocol.md §7.1)."""

    flake_ref: str
    """The flake reference built."""
    attr: str
    """The attribute built."""
    rev: str
    """The source revision."""
    dir: str | None = None
    """The flake's subdirectory, if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationLeaf:
    """One attestation, as logged (every attestation is logged, not only promotions)."""

    store_path: str
    """Absolute store path."""
    fingerprint: str
    """The §2.5 fingerprint the attester claims ("" when parsed from a compact leaf)."""
    nar_hash: str
    """``sha256:<52 nix32>``."""
    tenant: str | None
    """``owner/repo``, an owner id, or None (pool)."""
    lane: Lane
    """The attestation lane."""
    attester_id: str
    """Unique per attestation source."""
    at: int
    """When (ms)."""
    provenance: BuildProvenance | None = None
    """Build provenance, when the attester gave it."""
    fingerprint_sha256: str | None = None
    """Set only when parsed from a compact leaf: the fingerprint's SHA-256, 64 hex."""

    def __post_init__(self) -> None:
        if self.lane not in _LANES:
            raise FormatError(f"attestation leaf: unknown lane {self.lane!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyAddedLeaf:
    """A signing key put into service."""

    key_name: str
    """The key's name."""
    public_key: str
    """The key in Nix form, ``<name>:<B64>``."""
    at: int
    """When (ms)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRetiredLeaf:
    """A signing key taken out of service."""

    key_name: str
    """The key's name."""
    public_key: str
    """The key in Nix form, ``<name>:<B64>``."""
    at: int
    """When (ms)."""


LeafEvent = PromotionLeaf | RevocationLeaf | AttestationLeaf | KeyAddedLeaf | KeyRetiredLeaf
"""Every leaf event Vega writes."""


def fingerprint_sha256(fingerprint: str) -> str:
    """The ``fingerprintSha256`` of a compact leaf: SHA-256 of the fingerprint's UTF-8, 64 hex."""
    return hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).hexdigest()


def encode_leaf(event: LeafEvent) -> bytes:
    """Return the canonical leaf bytes of an event (see the module docstring).

    A promotion or attestation whose leaf would exceed :data:`MAX_LEAF_BYTES` is written in
    the compact form (``fingerprintSha256`` in place of ``fingerprint``).

    Raises:
        FormatError: a string is not encodable as UTF-8 (a lone surrogate).
    """
    data = _encode_leaf(event, compact=False)
    if len(data) > MAX_LEAF_BYTES and isinstance(event, PromotionLeaf | AttestationLeaf):
        return _encode_leaf(event, compact=True)
    return data


def _encode_leaf(event: LeafEvent, *, compact: bool) -> bytes:
    obj: dict[str, object] = {"v": 1}
    match event:
        case PromotionLeaf():
            obj |= {"event": "promotion", "storePath": event.store_path, **_fingerprint(event, compact)}
            obj["narHash"] = event.nar_hash
            if event.agreed_since is not None:
                obj["agreedSince"] = event.agreed_since
        case RevocationLeaf():
            obj |= {"event": "revocation", "storePath": event.store_path, "reason": event.reason}
        case AttestationLeaf():
            obj |= {"event": "attestation", "storePath": event.store_path, **_fingerprint(event, compact)}
            obj |= {
                "narHash": event.nar_hash,
                "tenant": event.tenant,
                "lane": event.lane,
                "attesterId": event.attester_id,
            }
            if event.provenance is not None:
                p = event.provenance
                prov: dict[str, object] = {"flakeRef": p.flake_ref, "attr": p.attr, "rev": p.rev}
                if p.dir is not None:
                    prov["dir"] = p.dir
                obj["provenance"] = prov
        case _:  # KeyAddedLeaf | KeyRetiredLeaf
            kind = "key-added" if isinstance(event, KeyAddedLeaf) else "key-retired"
            obj |= {"event": kind, "keyName": event.key_name, "publicKey": event.public_key}
    obj["at"] = event.at
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except UnicodeEncodeError as e:
        raise FormatError("leaf: a string is not valid Unicode (lone surrogate)") from e


def parse_leaf(data: bytes | str) -> LeafEvent:
    """Parse leaf bytes into an event: strict about keys and types, lenient about layout.

    Raises:
        FormatError: not JSON, not version 1, an unknown event, or missing,
            extra or mistyped fields.
    """
    obj = _loads(data, "leaf")
    if not isinstance(obj, dict):
        raise FormatError("leaf: expected a JSON object")
    if obj.get("v") != 1 or isinstance(obj.get("v"), bool | float):
        raise FormatError(f"leaf: unsupported version {obj.get('v')!r}")
    event = obj.get("event")
    f = _Fields(obj, f"{str(event)[:40]} leaf")
    match event:
        case "promotion":
            store_path = f.text("storePath")
            fp, fp_sha = f.fingerprint()
            leaf: LeafEvent = PromotionLeaf(
                store_path=store_path,
                fingerprint=fp,
                nar_hash=f.text("narHash"),
                agreed_since=f.optional_int("agreedSince"),
                at=f.integer("at"),
                fingerprint_sha256=fp_sha,
            )
        case "revocation":
            leaf = RevocationLeaf(store_path=f.text("storePath"), reason=f.text("reason"), at=f.integer("at"))
        case "attestation":
            f.seen.add("tenant")
            store_path = f.text("storePath")
            fp, fp_sha = f.fingerprint()
            tenant = None if "tenant" in obj and obj["tenant"] is None else f.text("tenant")
            leaf = AttestationLeaf(
                store_path=store_path,
                fingerprint=fp,
                fingerprint_sha256=fp_sha,
                nar_hash=f.text("narHash"),
                tenant=tenant,
                lane=_lane(f.text("lane")),
                attester_id=f.text("attesterId"),
                provenance=_provenance(obj) if "provenance" in obj else None,
                at=f.integer("at"),
            )
            f.seen.add("provenance")
        case "key-added" | "key-retired":
            cls = KeyAddedLeaf if event == "key-added" else KeyRetiredLeaf
            leaf = cls(key_name=f.text("keyName"), public_key=f.text("publicKey"), at=f.integer("at"))
        case _:
            raise FormatError(f"leaf: unknown event {str(event)[:40]!r}")
    f.no_extra()
    return leaf


def leaf_binds_narinfo(
    leaf: bytes | str | LeafEvent, store_path: str, nar_hash: str, fingerprint: str
) -> bool:
    """Whether a leaf is a promotion of exactly this narinfo (protocol.md §5.2); never raises.

    True iff the leaf's ``event`` is ``"promotion"`` and its ``storePath``,
    ``narHash`` and ``fingerprint`` equal the narinfo's store path, NAR hash and
    recomputed fingerprint (for a compact leaf: ``fingerprintSha256`` equals its
    SHA-256). Raw leaves that are not JSON objects with string fields are not
    bindings (the original client ignores them).
    """
    if isinstance(leaf, PromotionLeaf):
        digest = leaf.fingerprint_sha256
        fields: tuple[object, ...] = (leaf.store_path, leaf.nar_hash, leaf.fingerprint)
    elif isinstance(leaf, bytes | str):
        try:
            obj = json.loads(leaf)
        except (ValueError, RecursionError):
            return False
        if not isinstance(obj, dict) or obj.get("event") != "promotion":
            return False
        digest = obj.get("fingerprintSha256") if "fingerprint" not in obj else None
        fields = (obj.get("storePath"), obj.get("narHash"), obj.get("fingerprint"))
    else:
        return False
    if digest is not None:  # a compact leaf (a fingerprint too long for one entry)
        return fields[:2] == (store_path, nar_hash) and digest == fingerprint_sha256(fingerprint)
    return fields == (store_path, nar_hash, fingerprint)


# --- helpers ----------------------------------------------------------------------------------


def _fingerprint(event: PromotionLeaf | AttestationLeaf, compact: bool) -> dict[str, object]:
    if compact:
        return {"fingerprintSha256": fingerprint_sha256(event.fingerprint)}
    return {"fingerprint": event.fingerprint}


def _loads(data: bytes | str, what: str) -> object:
    if len(data) > _MAX_JSON_BYTES:
        raise FormatError(f"{what}: {len(data)} bytes exceeds the limit of {_MAX_JSON_BYTES}")
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{what}: not valid JSON") from e


def _reject_constant(name: str) -> object:
    raise ValueError(f"not a JSON number: {name}")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _number(obj: Mapping[str, object], key: str, what: str) -> int | float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FormatError(f"{what}: {key} must be a number")
    if not math.isfinite(value):
        raise FormatError(f"{what}: {key} must be finite")
    return value


class _Fields:
    """Typed access to a JSON object's fields, remembering which were read."""

    def __init__(self, obj: Mapping[str, object], what: str) -> None:
        self.obj = obj
        self.what = what
        self.seen = {"v", "event"}

    def text(self, key: str) -> str:
        self.seen.add(key)
        value = self.obj.get(key)
        if not isinstance(value, str):
            raise FormatError(f"{self.what}: {key} must be a string")
        return value

    def integer(self, key: str) -> int:
        self.seen.add(key)
        value = self.obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SAFE:
            raise FormatError(f"{self.what}: {key} must be an integer from 0 to 2**53 - 1")
        return value

    def fingerprint(self) -> tuple[str, str | None]:
        """``fingerprint``, or a compact leaf's ``fingerprintSha256`` (then the fingerprint is "")."""
        if "fingerprint" in self.obj or "fingerprintSha256" not in self.obj:
            return self.text("fingerprint"), None
        digest = self.text("fingerprintSha256")
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise FormatError(f"{self.what}: fingerprintSha256 must be 64 lowercase hex digits")
        return "", digest

    def optional_int(self, key: str) -> int | None:
        return self.integer(key) if key in self.obj else None

    def no_extra(self) -> None:
        extra = sorted(set(self.obj) - self.seen)
        if extra:
            raise FormatError(f"{self.what}: unexpected field {extra[0][:40]!r}")


def _lane(value: str) -> Lane:
    if value not in _LANES:
        raise FormatError(f"attestation leaf: unknown lane {value[:40]!r}")
    return cast(Lane, value)  # checked against the Literal's values just above


def _provenance(obj: Mapping[str, object]) -> BuildProvenance:
    value = obj["provenance"]
    if not isinstance(value, dict):
        raise FormatError("attestation leaf: provenance must be an object")
    f = _Fields(value, "attestation leaf provenance")
    f.seen.clear()
    prov = BuildProvenance(
        flake_ref=f.text("flakeRef"),
        attr=f.text("attr"),
        rev=f.text("rev"),
        dir=f.text("dir") if "dir" in value else None,
    )
    f.no_extra()
    return prov
