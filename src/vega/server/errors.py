"""Errors to HTTP: one table from error kind to status, and the spec's ``{"error": ...}`` body.

Clients see a message only for errors about their request (bad input, failed
authentication, evidence that does not check out, a missing object).
Database, storage, configuration and unexpected errors become a generic 500
whose detail is logged server-side only, never sent.

Spec: protocol.md §4.0; house-style.md §4.6 ("Server side").
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from vega.errors import ApiError, FormatError, NetworkError, VegaError, VerificationError

__all__ = ["ServiceError", "error_response", "status_of"]

log = logging.getLogger(__name__)

INTERNAL = "internal error"


class ServiceError(VegaError):
    """A request the rules refuse, with the HTTP status that says why."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status."""


def status_of(exc: BaseException) -> tuple[int, str]:
    """The status and public message for an exception (internals sanitised)."""
    if isinstance(exc, ServiceError | ApiError):
        return exc.status, exc.message
    if isinstance(exc, FormatError):
        return 400, exc.message
    if isinstance(exc, VerificationError):
        return 422, exc.message
    if isinstance(exc, NetworkError):  # e.g. an issuer's JWKS unreachable: transient, clients retry
        return 503, "an identity provider could not be reached; try again"
    return 500, INTERNAL


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error response for ``exc``; 5xx details go to the server log only."""
    status, message = status_of(exc)
    if status >= 500:
        log.error("request failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
    if status == 503:
        headers = {**(headers or {}), "Retry-After": "1"}
    retry_after = getattr(exc, "retry_after_s", None)  # ratelimit.RateLimitedError (429)
    if isinstance(retry_after, int):
        headers = {**(headers or {}), "Retry-After": str(retry_after)}
    return JSONResponse({"error": message}, status_code=status, headers=headers)
