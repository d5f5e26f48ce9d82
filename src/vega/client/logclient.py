"""The transparency log's read API, as a client: typed responses, bounded requests.

New endpoints (one request each)::

    GET /log/lookup/<hash>                                  checkpoint note, STH and every entry of a
                                                            build with its inclusion proof
    GET /log/proof/consistency?first=M&second=N             {"first","second","proofHex"}
    GET /log/checkpoint                                     the signed checkpoint note

The original endpoints (protocol.md §5) are used only when a server lacks ``/log/lookup``
(it answers 404, 405 or 501, with or without a JSON error body): ``/log/sth``,
``/log/entry/<i>`` (a newest-first linear scan, as the original client did) and
``/log/proof/inclusion/<i>?size=N``. Every response is narrowed
into the frozen messages of :mod:`vega.core.logapi` (the server renders the same types); anything
malformed is a :class:`~vega.errors.FormatError` naming the JSON path, and a non-2xx status an
:class:`~vega.errors.ApiError` (safe-error text only).

Edge: the log's HTTP API (through :class:`vega.client.http.Http`).
Spec: protocol.md §5; issue 3 (lookup, consistency, checkpoint; fallback); docs/log-api.md.
"""

from __future__ import annotations

from vega.client.http import Http, Response, safe_error
from vega.core.logapi import ConsistencyAnswer, EntryAnswer, InclusionAnswer, LookupAnswer, LookupEntry
from vega.errors import ApiError, FormatError

__all__ = [
    "ConsistencyAnswer",
    "EntryAnswer",
    "InclusionAnswer",
    "LogClient",
    "LookupAnswer",
    "LookupEntry",
]

_MISSING_ENDPOINT = frozenset({404, 405, 501})


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
        # NOTE: support is decided by the answer's shape, never by the absence of an error body:
        # the original answers every unknown route 404 with {"error": ...} (protocol.md §4.0),
        # and a Vega log never answers a well-formed lookup with 404, 405 or 501 (an unknown
        # build is 200 with no entries). A forced fallback only costs the original's linear scan,
        # which checks the same signed tree head and remembered checkpoint (ADR 0007, 0012).
        if resp.status in _MISSING_ENDPOINT:
            return None
        return LookupAnswer.from_json(self._object(resp, "log lookup"), "log lookup: ")

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
        answer = ConsistencyAnswer.from_json(obj, "log consistency proof: ")
        if (answer.first, answer.second) != (first, second):
            raise FormatError(
                f"log consistency proof: asked for {first}..{second}, got {answer.first}..{answer.second}"
            )
        return answer

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
        answer = EntryAnswer.from_json(obj, f"log entry {index}: ")
        if answer.index != index:
            raise FormatError(f"log entry {index}: the server sent entry {answer.index}")
        return answer

    def inclusion(self, index: int, size: int) -> InclusionAnswer:
        """``GET /log/proof/inclusion/<i>?size=N`` (an original server ignores ``size``).

        Raises:
            ApiError: non-2xx.
            FormatError: malformed.
            NetworkError: as for :meth:`lookup`.
        """
        what = f"log inclusion proof {index}"
        obj = self._object(self.http.get(self._url(f"/log/proof/inclusion/{index}?size={size}")), what)
        return InclusionAnswer.from_json(obj, f"{what}: ")
