"""The transparency log's read API, as a client: typed responses, bounded requests.

New endpoints (one request each)::

    GET /log/lookup/<hash>                                  checkpoint note, STH and every entry of a
                                                            build with its inclusion proof
    GET /log/proof/consistency?first=M&second=N             {"first","second","proofHex"}
    GET /log/checkpoint                                     the signed checkpoint note

The original endpoints (protocol.md §5) are used only when a server lacks ``/log/lookup``
(it answers 404, 405 or 501): ``/log/sth``, ``/log/entry/<i>`` (a newest-first linear scan, as
the original client did) and ``/log/proof/inclusion/<i>?size=N``. Every response is narrowed by
hand into a frozen value; anything malformed is a :class:`~vega.errors.FormatError` naming the
JSON path, and a non-2xx status an :class:`~vega.errors.ApiError` (safe-error text only).

Edge: the log's HTTP API (through :class:`vega.client.http.Http`).
Spec: protocol.md §5; issue 3 (lookup, consistency, checkpoint; fallback); docs/log-api.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vega.client.http import Http, Response, safe_error
from vega.errors import ApiError, FormatError

__all__ = [
    "ConsistencyAnswer",
    "EntryAnswer",
    "InclusionAnswer",
    "LogClient",
    "LookupAnswer",
    "LookupEntry",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_MISSING_ENDPOINT = frozenset({404, 405, 501})
_MAX_PROOF = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupEntry:
    """One entry of a build, with its inclusion proof at the lookup's checkpoint."""

    index: int
    """The entry's 0-based index."""
    data: bytes
    """The exact leaf bytes (UTF-8 of the served ``data`` string)."""
    proof: tuple[bytes, ...]
    """The audit path, deepest sibling first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupAnswer:
    """What ``/log/lookup/<hash>`` said."""

    checkpoint_note: str
    """The signed checkpoint note text, as served."""
    sth: object
    """The STH JSON object at the same size, as served (parsed by ``vega.core.tlog``)."""
    entries: tuple[LookupEntry, ...]
    """The build's entries, oldest first."""
    truncated: bool
    """The server had more entries than it returned."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsistencyAnswer:
    """A consistency proof between two tree sizes."""

    first: int
    """The smaller size."""
    second: int
    """The larger size."""
    proof: tuple[bytes, ...]
    """RFC 9162 ``SUBPROOF(first, D[second], true)``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryAnswer:
    """One entry from ``/log/entry/<i>``."""

    index: int
    """The entry's index."""
    data: bytes
    """The exact leaf bytes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InclusionAnswer:
    """An inclusion proof from ``/log/proof/inclusion/<i>``."""

    index: int
    """The entry's index."""
    size: int
    """The tree size the proof is for."""
    leaf_hash_hex: str
    """The server's leaf hash, hex (checked by the caller against the entry's data)."""
    proof: tuple[bytes, ...]
    """The audit path."""


class LogClient:
    """The log read API under one base URL (the control-plane root).

    Args:
        http: the bounded HTTP edge.
        base_url: the base the ``/log/...`` paths are relative to, without a trailing ``/``.
    """

    def __init__(self, http: Http, base_url: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _object(self, resp: Response, what: str) -> dict[str, object]:
        if not resp.ok:
            raise ApiError(
                f"{what} failed ({safe_error(resp.status, resp.body)})", status=resp.status, error=None
            )
        obj = resp.json()
        if not isinstance(obj, dict):
            raise FormatError(f"{what}: expected a JSON object")
        return obj

    def lookup(self, hash_part: str) -> LookupAnswer | None:
        """``GET /log/lookup/<hash>``; None when the server has no such endpoint (an original server).

        Raises:
            ApiError: another non-2xx status.
            FormatError: a malformed answer.
            NetworkError: transport failure after retries, or an oversized body.
        """
        resp = self.http.get(self._url(f"/log/lookup/{hash_part}"))
        if resp.status in _MISSING_ENDPOINT and _error_body(resp) is None:
            return None
        obj = self._object(resp, "log lookup")
        note = obj.get("checkpoint")
        if not isinstance(note, str):
            raise FormatError("log lookup: checkpoint: expected a string")
        entries_obj = obj.get("entries")
        if not isinstance(entries_obj, list):
            raise FormatError("log lookup: entries: expected an array")
        entries = []
        for k, item in enumerate(entries_obj):
            where = f"log lookup: entries[{k}]"
            if not isinstance(item, dict):
                raise FormatError(f"{where}: expected an object")
            entries.append(
                LookupEntry(
                    index=_count(item.get("index"), f"{where}.index"),
                    data=_data(item.get("data"), f"{where}.data"),
                    proof=_proof(item.get("proofHex"), f"{where}.proofHex"),
                )
            )
        truncated = obj.get("truncated", False)
        if not isinstance(truncated, bool):
            raise FormatError("log lookup: truncated: expected a boolean")
        return LookupAnswer(
            checkpoint_note=note, sth=obj.get("sth"), entries=tuple(entries), truncated=truncated
        )

    def consistency(self, first: int, second: int) -> ConsistencyAnswer:
        """``GET /log/proof/consistency?first=M&second=N``.

        Raises:
            ApiError: non-2xx (including an original server that lacks the endpoint).
            FormatError: a malformed answer, or one for other sizes than asked.
            NetworkError: as for :meth:`lookup`.
        """
        obj = self._object(
            self.http.get(self._url(f"/log/proof/consistency?first={first}&second={second}")),
            "log consistency proof",
        )
        got = (_count(obj.get("first"), "first"), _count(obj.get("second"), "second"))
        if got != (first, second):
            raise FormatError(f"log consistency proof: asked for {first}..{second}, got {got[0]}..{got[1]}")
        return ConsistencyAnswer(first=first, second=second, proof=_proof(obj.get("proofHex"), "proofHex"))

    def checkpoint(self) -> str:
        """``GET /log/checkpoint``: the latest signed checkpoint note text.

        Raises:
            ApiError: non-2xx.
            FormatError: not UTF-8.
            NetworkError: as for :meth:`lookup`.
        """
        resp = self.http.get(self._url("/log/checkpoint"))
        if not resp.ok:
            raise ApiError(
                f"log checkpoint failed ({safe_error(resp.status, resp.body)})", status=resp.status
            )
        return resp.text()

    def sth(self) -> object:
        """``GET /log/sth`` (original endpoint): the STH JSON object, unparsed.

        Raises:
            ApiError: non-2xx.
            FormatError: not a JSON object.
            NetworkError: as for :meth:`lookup`.
        """
        return self._object(self.http.get(self._url("/log/sth")), "log sth")

    def entry(self, index: int) -> EntryAnswer:
        """``GET /log/entry/<i>`` (original endpoint).

        Raises:
            ApiError: non-2xx.
            FormatError: malformed, or for another index.
            NetworkError: as for :meth:`lookup`.
        """
        obj = self._object(self.http.get(self._url(f"/log/entry/{index}")), f"log entry {index}")
        got = _count(obj.get("index"), "index")
        if got != index:
            raise FormatError(f"log entry {index}: the server sent entry {got}")
        return EntryAnswer(index=index, data=_data(obj.get("data"), f"log entry {index}: data"))

    def inclusion(self, index: int, size: int) -> InclusionAnswer:
        """``GET /log/proof/inclusion/<i>?size=N`` (an original server ignores ``size``).

        Raises:
            ApiError: non-2xx.
            FormatError: malformed.
            NetworkError: as for :meth:`lookup`.
        """
        what = f"log inclusion proof {index}"
        obj = self._object(self.http.get(self._url(f"/log/proof/inclusion/{index}?size={size}")), what)
        leaf = obj.get("leafHashHex")
        if not isinstance(leaf, str):
            raise FormatError(f"{what}: leafHashHex: expected a string")
        return InclusionAnswer(
            index=_count(obj.get("index"), f"{what}: index"),
            size=_count(obj.get("size"), f"{what}: size"),
            leaf_hash_hex=leaf,
            proof=_proof(obj.get("proofHex"), f"{what}: proofHex"),
        )


def _error_body(resp: Response) -> str | None:
    """The ``error`` string of a JSON body: our server's 404s carry one, a missing route does not."""
    try:
        obj = resp.json()
    except FormatError:
        return None
    err = obj.get("error") if isinstance(obj, dict) else None
    return err if isinstance(err, str) else None


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f"{where}: expected a non-negative integer")
    return value


def _data(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"{where}: expected a string")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate from a \\ud800 escape
        raise FormatError(f"{where}: not encodable as UTF-8") from e


def _proof(value: object, where: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise FormatError(f"{where}: expected an array")
    if len(value) > _MAX_PROOF:
        raise FormatError(f"{where}: {len(value)} hashes is more than any tree needs")
    out = []
    for k, h in enumerate(value):
        if not isinstance(h, str) or not _HEX64.fullmatch(h):
            raise FormatError(f"{where}[{k}]: expected 64 lowercase hex characters")
        out.append(bytes.fromhex(h))
    return tuple(out)
