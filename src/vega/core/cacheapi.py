"""Wire types of an owner's namespace management: ``GET /api/cache/namespace``, ``POST /api/cache/delete``.

New in Vega (not in the original protocol); advertised as the ``namespace-admin`` capability in
``/api/info``. Both need an owner credential and act only on that owner's namespace
(``owner:<id>``); the namespace comes from the credential, never from the request.

Spec: docs/server-api.md ("Namespace management"); issue 12.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from vega.core import nixbase32
from vega.core.storepath import parse_store_path
from vega.errors import FormatError

__all__ = ["DeleteRequest", "DeleteResult", "NamespaceEntry", "NamespaceListing"]

MAX_DELETE = 1000
"""Most hashes one delete request may name."""


def _object(obj: object, what: str) -> Mapping[str, object]:
    if not isinstance(obj, dict):
        raise FormatError(f"{what}: expected a JSON object")
    return cast(Mapping[str, object], obj)


def _hash(value: object, what: str) -> str:
    if not (isinstance(value, str) and len(value) == 32 and all(c in nixbase32.ALPHABET for c in value)):
        raise FormatError(f"{what}: expected a 32-character store-path hash")
    return value


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f"{what}: expected a non-negative integer")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"{what}: expected a string")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceEntry:
    """One store path served in the namespace."""

    hash: str
    """The store-path hash."""
    store_path: str
    """The full store path."""
    nar_size: int
    """Uncompressed NAR bytes."""
    file_size: int
    """Stored (compressed) bytes."""
    pushed_at_ms: int
    """When the narinfo was last published, epoch milliseconds."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {
            "hash": self.hash,
            "storePath": self.store_path,
            "narSize": self.nar_size,
            "fileSize": self.file_size,
            "pushedAt": self.pushed_at_ms,
        }

    @classmethod
    def from_json(cls, obj: object, what: str = "entry") -> NamespaceEntry:
        """Parse one entry.

        Raises:
            FormatError: a field is missing or of the wrong type (named).
        """
        o = _object(obj, what)
        hash_part = _hash(o.get("hash"), f"{what}.hash")
        store_path = _text(o.get("storePath"), f"{what}.storePath")
        try:
            parsed = parse_store_path(store_path)
        except FormatError:
            raise FormatError(f"{what}.storePath: not a store path") from None
        if parsed.hash_part != hash_part:
            raise FormatError(f"{what}.storePath: does not match {what}.hash")
        return cls(
            hash=hash_part,
            store_path=parsed.absolute,
            nar_size=_count(o.get("narSize"), f"{what}.narSize"),
            file_size=_count(o.get("fileSize"), f"{what}.fileSize"),
            pushed_at_ms=_count(o.get("pushedAt"), f"{what}.pushedAt"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceListing:
    """One page of a namespace, ordered by hash; ``next`` continues after the last one."""

    namespace: str
    """``owner:<id>``."""
    entries: tuple[NamespaceEntry, ...]
    """The page."""
    next: str | None
    """The ``after`` of the next page, or None at the end."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {
            "namespace": self.namespace,
            "entries": [e.to_json() for e in self.entries],
            "next": self.next,
        }

    @classmethod
    def from_json(cls, obj: object) -> NamespaceListing:
        """Parse a page.

        Raises:
            FormatError: a field is missing or of the wrong type (named).
        """
        o = _object(obj, "listing")
        entries = o.get("entries")
        if not isinstance(entries, list):
            raise FormatError("listing.entries: expected an array")
        nxt = o.get("next")
        return cls(
            namespace=_text(o.get("namespace"), "listing.namespace"),
            entries=tuple(
                NamespaceEntry.from_json(e, f"listing.entries[{i}]") for i, e in enumerate(entries)
            ),
            next=None if nxt is None else _hash(nxt, "listing.next"),
        )


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    """``POST /api/cache/delete``: the hashes to stop serving from the caller's namespace."""

    hashes: tuple[str, ...]
    """Distinct store-path hashes, at most :data:`MAX_DELETE`."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"hashes": list(self.hashes)}

    @classmethod
    def from_json(cls, obj: object) -> DeleteRequest:
        """Parse a request.

        Raises:
            FormatError: not a list of 1 to 1000 hashes.
        """
        hashes = _object(obj, "body").get("hashes")
        if not isinstance(hashes, list) or not 1 <= len(hashes) <= MAX_DELETE:
            raise FormatError(f"body.hashes: expected an array of 1 to {MAX_DELETE} hashes")
        return cls(tuple(dict.fromkeys(_hash(h, f"body.hashes[{i}]") for i, h in enumerate(hashes))))


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """Which of the requested hashes were removed, and which the namespace did not hold."""

    deleted: tuple[str, ...]
    """Removed now."""
    missing: tuple[str, ...]
    """Not in the namespace."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"deleted": list(self.deleted), "missing": list(self.missing)}

    @classmethod
    def from_json(cls, obj: object) -> DeleteResult:
        """Parse a result.

        Raises:
            FormatError: a field is missing or of the wrong type (named).
        """
        o = _object(obj, "result")
        out: list[tuple[str, ...]] = []
        for name in ("deleted", "missing"):
            items = o.get(name)
            if not isinstance(items, list):
                raise FormatError(f"result.{name}: expected an array")
            out.append(tuple(_hash(h, f"result.{name}[{i}]") for i, h in enumerate(items)))
        return cls(out[0], out[1])
