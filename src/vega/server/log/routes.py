"""HTTP routes of the transparency log, to be mounted by the control plane.

``GET`` only, unauthenticated, synchronous handlers (run in Starlette's thread pool)::

    /log/sth                                  original STH JSON (protocol.md §5.1)
    /log/checkpoint                           C2SP signed checkpoint note, text/plain
    /log/entry/<i>                            {"index", "data"} (§5.2)
    /log/proof/inclusion/<i>[?size=N]         {"index", "size", "leafHashHex", "rootHex", "proofHex"} (§5.3)
    /log/proof/consistency?first=M&second=N   {"first", "second", "proofHex"} (§5.4)
    /log/tile/<L>/<N>[.p/<W>]                 C2SP hash tile, application/octet-stream
    /log/tile/entries/<N>[.p/<W>]             C2SP entry bundle, application/octet-stream
    /log/lookup/<store-path-hash>             the entries of a build, proven at one checkpoint, with
                                              a signed list of its promotions and revocations

Errors are ``{"error": "..."}`` with 400 (malformed or out-of-range parameter)
or 404 (not in the log yet). Numbers in paths and queries are plain decimal,
at most 18 digits. Documented for clients in docs/log-api.md.

Spec: protocol.md §5; C2SP tlog-checkpoint, tlog-tiles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vega.core import tiles
from vega.core.logapi import ConsistencyAnswer, EntryAnswer, InclusionAnswer, LookupAnswer
from vega.errors import FormatError
from vega.server.log.log import TransparencyLog

__all__ = ["log_routes"]

IMMUTABLE = "public, max-age=31536000, immutable"
"""Cache-Control of what can never change: full tiles, entries, proofs at an explicit size."""
SHORT = "public, max-age=60"
"""Cache-Control of partial tiles (a full tile replaces them)."""
NO_CACHE = "no-cache"
"""Cache-Control of answers that follow the latest checkpoint."""

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,17}")


class _NotFoundError(Exception):
    pass


def log_routes(log: TransparencyLog) -> list[BaseRoute]:
    """Return the routes of every log endpoint, served from ``log``."""

    def sth(request: Request) -> Response:
        return Response(log.latest().sth, media_type="application/json", headers={"Cache-Control": NO_CACHE})

    def checkpoint(request: Request) -> Response:
        return Response(
            log.latest().note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": NO_CACHE}
        )

    def entry(request: Request) -> Response:
        index = _number(request.path_params["index"], "index")
        data = log.entry(index)
        if data is None:
            raise _NotFoundError(f"entry {index} is not in the log")
        return _json(EntryAnswer(index=index, data=data).to_json(), IMMUTABLE)

    def inclusion(request: Request) -> Response:
        index = _number(request.path_params["index"], "index")
        size_text = request.query_params.get("size")
        size = None if size_text is None else _number(size_text, "size")
        proof = log.inclusion_proof(index, size)
        if proof is None:
            raise _NotFoundError(f"entry {index} is not in the tree of the requested size")
        body = InclusionAnswer(
            index=proof.index,
            size=proof.size,
            leaf_hash_hex=proof.leaf_hash.hex(),
            root_hex=proof.root.hex(),
            proof=proof.proof,
        )
        return _json(body.to_json(), NO_CACHE if size is None else IMMUTABLE)

    def consistency(request: Request) -> Response:
        first = _number(_query(request, "first"), "first")
        second = _number(_query(request, "second"), "second")
        proof = log.consistency_proof(first, second)
        return _json(ConsistencyAnswer(first=first, second=second, proof=proof.proof).to_json(), IMMUTABLE)

    def tile(request: Request) -> Response:
        path = "tile/" + request.path_params["path"]
        if path.startswith("tile/entries/"):
            bundle = tiles.parse_entry_bundle_path(path)
            width = bundle.width
            body = log.entries_tile(bundle.index, width)
        else:
            tile = tiles.parse_tile_path(path)
            width = tile.width
            body = log.tile(tile.level, tile.index, width)
        if body is None:
            raise _NotFoundError(f"{path} is not in the log yet")
        cache = IMMUTABLE if width == tiles.TILE_WIDTH else SHORT
        return Response(body, media_type="application/octet-stream", headers={"Cache-Control": cache})

    def lookup(request: Request) -> Response:
        found = log.lookup(request.path_params["store_hash"])
        body = LookupAnswer(
            checkpoint_note=found.checkpoint.note,
            sth=json.loads(found.checkpoint.sth),
            entries=found.entries,
            truncated=found.truncated,
            events=found.events,
        )
        return _json(body.to_json(), NO_CACHE)

    return [
        Route("/log/sth", _guarded(sth), methods=["GET"]),
        Route("/log/checkpoint", _guarded(checkpoint), methods=["GET"]),
        Route("/log/entry/{index}", _guarded(entry), methods=["GET"]),
        Route("/log/proof/inclusion/{index}", _guarded(inclusion), methods=["GET"]),
        Route("/log/proof/consistency", _guarded(consistency), methods=["GET"]),
        Route("/log/tile/{path:path}", _guarded(tile), methods=["GET"]),
        Route("/log/lookup/{store_hash}", _guarded(lookup), methods=["GET"]),
    ]


def _guarded(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """Turn FormatError into 400 and _NotFoundError into 404, with the spec's error body."""

    def endpoint(request: Request) -> Response:
        try:
            return handler(request)
        except FormatError as e:
            return _error(400, e.message)
        except _NotFoundError as e:
            return _error(404, str(e))

    endpoint.__name__ = handler.__name__
    return endpoint


def _json(body: object, cache: str) -> Response:
    return JSONResponse(body, headers={"Cache-Control": cache})


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


def _query(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if value is None:
        raise FormatError(f"missing query parameter {name!r}")
    return value


def _number(text: str, name: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise FormatError(f"{name} must be a decimal number of at most 18 digits, got {text[:40]!r}")
    return int(text)
