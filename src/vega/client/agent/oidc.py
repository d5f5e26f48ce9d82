"""The OIDC token provider: minted in memory from the captured request variables, refreshed.

``get(False)`` returns the cached JWT while ``now + 60 s < exp``; otherwise it mints one (the
``exp`` is read from the unverified payload; unreadable means ``now + 240 s``). ``get(True)``
always mints: the control-plane client's single 401 recovery. The JWT and the request token
live only in this object (never in an environment, a file or a log line).

Spec: agent.md §7.6, §11; protocol.md §10.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable

from vega.client.agent.settings import OidcRequest
from vega.client.github import request_actions_token
from vega.client.http import Http
from vega.errors import ConfigError

__all__ = ["TokenProvider", "jwt_exp"]


def jwt_exp(token: str) -> float | None:
    """The numeric ``exp`` of a JWT's payload, read without verification; None when unreadable."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


class TokenProvider:
    """Mints and caches the job's OIDC JWT for one audience.

    Args:
        http: the client for the token service (60 s deadline).
        request: the captured token-service URL and request token.
        audience: the JWT's audience (the control-plane URL by default).
        now_s: the wall clock, epoch seconds.
    """

    def __init__(self, http: Http, request: OidcRequest, audience: str, now_s: Callable[[], float]) -> None:
        if request.url is None or request.token is None:
            raise ConfigError(
                "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set:"
                " the job cannot mint an OIDC token",
                next_steps=["grant the job `permissions: id-token: write` (and contents: read)"],
            )
        self._http = http
        self._url = request.url
        self._token = request.token
        self._audience = audience
        self._now_s = now_s
        self._lock = threading.Lock()
        self._jwt: str | None = None
        self._exp = 0.0
        self.mints = 0
        """Tokens minted so far (tests read it)."""

    def get(self, force: bool = False) -> str:
        """The JWT; a fresh one when ``force`` or when the cached one expires within 60 s."""
        with self._lock:
            now = self._now_s()
            if not force and self._jwt is not None and now + 60 < self._exp:
                return self._jwt
            jwt = request_actions_token(self._http, self._url, self._token, self._audience)
            self.mints += 1
            exp = jwt_exp(jwt)
            self._jwt = jwt
            self._exp = exp if exp is not None else now + 240
            return jwt

    def secrets(self) -> tuple[str, ...]:
        """The values a log excerpt must never show (request token, current JWT)."""
        return tuple(s for s in (self._token, self._jwt) if s)

    def __call__(self, force: bool) -> str:
        """The :data:`vega.client.upload.Bearer` interface."""
        return self.get(force)
