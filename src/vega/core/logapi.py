"""Messages of the transparency-log read API: the server renders them, the client parses them.

One definition for both sides (house-style.md §4.1 rule 6)::

    GET /log/entry/<i>                      {"index", "data"}
    GET /log/proof/inclusion/<i>[?size=N]   {"index", "size", "leafHashHex", "rootHex", "proofHex"}
    GET /log/proof/consistency?first&second {"first", "second", "proofHex"}
    GET /log/lookup/<hash>                  {"checkpoint", "sth", "entries": [{"index", "data",
                                             "proofHex"}], "truncated", "events": {"indexes",
                                             "signature"}}

``data`` is the leaf's bytes as a string: its UTF-8 encoding is exactly what
was hashed (§5.2). Hashes travel as 64 lowercase hex characters; no proof for
a tree of at most 2**64 leaves needs more than 64 of them. ``rootHex`` of an
inclusion proof is informative only: clients check against a signed root.

Spec: protocol.md §5; docs/log-api.md (lookup, consistency).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from vega.core.jsonfields import expect_bool, expect_list, expect_object, expect_size, expect_str
from vega.errors import FormatError

__all__ = [
    "MAX_PROOF_HASHES",
    "ConsistencyAnswer",
    "EntryAnswer",
    "EventStatement",
    "InclusionAnswer",
    "LookupAnswer",
    "LookupEntry",
]

MAX_PROOF_HASHES = 64
"""More hashes than any proof of a tree of at most 2**64 leaves needs."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _hashes(proof: tuple[bytes, ...]) -> list[str]:
    return [h.hex() for h in proof]


def _proof(obj: Mapping[str, object], key: str, path: str) -> tuple[bytes, ...]:
    items = expect_list(obj, key, path=path)
    if len(items) > MAX_PROOF_HASHES:
        raise FormatError(f"{path}{key}: {len(items)} hashes is more than any tree needs")
    out = []
    for k, h in enumerate(items):
        if not isinstance(h, str) or not _HEX64.fullmatch(h):
            raise FormatError(f"{path}{key}[{k}]: expected 64 lowercase hex characters")
        out.append(bytes.fromhex(h))
    return tuple(out)


def _data(obj: Mapping[str, object], key: str, path: str) -> bytes:
    value = expect_str(obj, key, path=path)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate from a \ud800 escape
        raise FormatError(f"{path}{key}: not encodable as UTF-8") from e


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryAnswer:
    """One entry, as ``/log/entry/<i>`` serves it."""

    index: int
    """The entry's 0-based index."""
    data: bytes
    """The exact leaf bytes."""

    def to_json(self) -> dict[str, object]:
        """The wire form (``data`` must be UTF-8, as every leaf is)."""
        return {"index": self.index, "data": self.data.decode("utf-8")}

    @classmethod
    def from_json(cls, obj: object, path: str = "") -> EntryAnswer:
        """Narrow untrusted JSON; FormatError names the bad field after ``path``."""
        o = expect_object(obj, path.rstrip(": ") or "body")
        return cls(index=expect_size(o, "index", path=path), data=_data(o, "data", path))


@dataclass(frozen=True, slots=True, kw_only=True)
class InclusionAnswer:
    """An inclusion proof, as ``/log/proof/inclusion/<i>`` serves it."""

    index: int
    """The entry's index."""
    size: int
    """The tree size the proof is for."""
    leaf_hash_hex: str
    """The server's leaf hash as sent (the client checks it against the entry's data)."""
    proof: tuple[bytes, ...]
    """The audit path, deepest sibling first."""
    root_hex: str = ""
    """The root the server computed (informative; clients use a signed root)."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {
            "index": self.index,
            "size": self.size,
            "leafHashHex": self.leaf_hash_hex,
            "rootHex": self.root_hex,
            "proofHex": _hashes(self.proof),
        }

    @classmethod
    def from_json(cls, obj: object, path: str = "") -> InclusionAnswer:
        """Narrow untrusted JSON; ``rootHex`` is kept only when it is a string."""
        o = expect_object(obj, path.rstrip(": ") or "body")
        root = o.get("rootHex")
        return cls(
            index=expect_size(o, "index", path=path),
            size=expect_size(o, "size", path=path),
            leaf_hash_hex=expect_str(o, "leafHashHex", path=path),
            proof=_proof(o, "proofHex", path),
            root_hex=root if isinstance(root, str) else "",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsistencyAnswer:
    """A consistency proof, as ``/log/proof/consistency`` serves it."""

    first: int
    """The smaller tree size."""
    second: int
    """The larger tree size."""
    proof: tuple[bytes, ...]
    """RFC 9162 ``SUBPROOF(first, D[second], true)``."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"first": self.first, "second": self.second, "proofHex": _hashes(self.proof)}

    @classmethod
    def from_json(cls, obj: object, path: str = "") -> ConsistencyAnswer:
        """Narrow untrusted JSON; FormatError names the bad field after ``path``."""
        o = expect_object(obj, path.rstrip(": ") or "body")
        return cls(
            first=expect_size(o, "first", path=path),
            second=expect_size(o, "second", path=path),
            proof=_proof(o, "proofHex", path),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupEntry:
    """One entry of a build, with its inclusion proof at the lookup's checkpoint."""

    index: int
    """The entry's 0-based index."""
    data: bytes
    """The exact leaf bytes."""
    proof: tuple[bytes, ...]
    """The audit path, deepest sibling first."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"index": self.index, "data": self.data.decode("utf-8"), "proofHex": _hashes(self.proof)}

    @classmethod
    def from_json(cls, obj: object, path: str = "") -> LookupEntry:
        """Narrow untrusted JSON; FormatError names the bad field after ``path``."""
        o = expect_object(obj, path.rstrip(".") or "body")
        return cls(
            index=expect_size(o, "index", path=path),
            data=_data(o, "data", path),
            proof=_proof(o, "proofHex", path),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EventStatement:
    """The lookup's signed claim: these are every promotion and revocation of the build (ADR 0012).

    Signed over :func:`vega.core.tlog.events_message` at the lookup's checkpoint.
    """

    indexes: tuple[int, ...]
    """The indexes of every promotion and revocation entry of the build, ascending."""
    signature: str
    """``<key name>:<B64>`` by the STH key."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"indexes": list(self.indexes), "signature": self.signature}

    @classmethod
    def from_json(cls, obj: object, path: str = "") -> EventStatement:
        """Narrow untrusted JSON; FormatError names the bad field after ``path``."""
        o = expect_object(obj, path.rstrip(".") or "body")
        items = expect_list(o, "indexes", path=path)
        indexes = []
        for k, i in enumerate(items):
            if isinstance(i, bool) or not isinstance(i, int) or i < 0:
                raise FormatError(f"{path}indexes[{k}]: expected a non-negative integer")
            indexes.append(i)
        return cls(indexes=tuple(indexes), signature=expect_str(o, "signature", path=path))


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupAnswer:
    """Every entry of one build with proofs at one checkpoint, as ``/log/lookup/<hash>`` serves it."""

    checkpoint_note: str
    """The signed checkpoint note text."""
    sth: object
    """The original STH JSON object at the same size (parsed by ``vega.core.tlog``)."""
    entries: tuple[LookupEntry, ...]
    """The build's entries, oldest first."""
    truncated: bool = False
    """The server had more entries than it returned."""
    events: EventStatement | None = None
    """The signed list of every promotion and revocation (all of them are in ``entries``)."""

    def to_json(self) -> dict[str, object]:
        """The wire form (``events`` only when there is a statement)."""
        out: dict[str, object] = {
            "checkpoint": self.checkpoint_note,
            "sth": self.sth,
            "entries": [e.to_json() for e in self.entries],
            "truncated": self.truncated,
        }
        if self.events is not None:
            out["events"] = self.events.to_json()
        return out

    @classmethod
    def from_json(cls, obj: object, path: str = "") -> LookupAnswer:
        """Narrow untrusted JSON; an absent ``truncated`` means false (older servers)."""
        o = expect_object(obj, path.rstrip(": ") or "body")
        note = expect_str(o, "checkpoint", path=path)
        items = expect_list(o, "entries", path=path)
        entries = tuple(LookupEntry.from_json(item, f"{path}entries[{k}].") for k, item in enumerate(items))
        truncated = expect_bool(o, "truncated", path=path) if "truncated" in o else False
        events = EventStatement.from_json(o["events"], f"{path}events.") if "events" in o else None
        return cls(
            checkpoint_note=note, sth=o.get("sth"), entries=entries, truncated=truncated, events=events
        )
