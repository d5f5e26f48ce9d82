"""GitHub's OAuth device flow, as ``vega login`` runs it.

1. ``POST <github>/login/device/code`` with ``{"client_id"}`` (JSON, ``accept: application/json``);
   a non-2xx answer fails with ``device code request failed: <status>``.
2. Until ``expires_in`` seconds have passed: sleep ``interval`` seconds **first**, then
   ``POST <github>/login/oauth/access_token``. The JSON body decides (HTTP status is not checked):
   a non-empty ``access_token`` is success; ``authorization_pending`` keeps polling;
   ``slow_down`` raises the interval by 5 seconds (RFC 8628 §3.5) -- or to the ``interval`` the
   answer carries, if that is larger (GitHub sends the new value); ``expired_token`` and the
   deadline passing fail with ``device code expired before authorization.``; any other error
   (``access_denied``, ...) or none fails with ``authorization failed: <error or "unknown">``.

The access token is returned to the caller and never logged or written.

Also here: :func:`request_actions_token`, the GitHub Actions OIDC token request of protocol.md
§10 (``GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=...`` with the request token as bearer,
answering ``{"value": "<JWT>"}``), which the CI agent's token provider calls to mint.

Spec: protocol.md §9, §10; RFC 8628 §3.2-§3.5; cli.md §3 (failure texts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from vega.client.http import Http, safe_error
from vega.core.safetext import is_safe_text, safe_text
from vega.errors import FormatError, VegaError

__all__ = [
    "DEVICE_GRANT",
    "DeviceCode",
    "GitHubEndpoint",
    "parse_device_code",
    "poll_for_token",
    "request_actions_token",
    "request_device_code",
]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
"""The RFC 8628 grant type."""

_HEADERS = {"accept": "application/json"}
_EXPIRED = "device code expired before authorization."
_SLOW_DOWN_S = 5
_DEFAULT_INTERVAL_S = 5
_DEFAULT_EXPIRES_S = 900


@dataclass(frozen=True, slots=True)
class GitHubEndpoint:
    """Which GitHub to run the device flow against."""

    url: str
    """Web base URL, e.g. ``https://github.com`` (no trailing slash)."""
    client_id: str
    """The OAuth app's public client id."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceCode:
    """GitHub's answer to the device-code request."""

    device_code: str = field(repr=False)
    """Secret code the poll sends."""
    user_code: str
    """Code the user types at the verification URI."""
    verification_uri: str
    """Where the user approves."""
    expires_in_s: int
    """Seconds until the device code expires."""
    interval_s: int
    """Seconds to wait between polls."""


def parse_device_code(obj: object) -> DeviceCode:
    """Parse the device-code JSON.

    Raises:
        FormatError: a required field is missing or has the wrong type.
    """
    if not isinstance(obj, dict):
        raise FormatError("device code response: expected a JSON object")
    strings = {k: obj.get(k) for k in ("device_code", "user_code", "verification_uri")}
    for key, value in strings.items():
        if not isinstance(value, str) or not value or not is_safe_text(value) or len(value) > 2048:
            raise FormatError(f"device code response: {key} must be a non-empty string")
    numbers: dict[str, int] = {}
    for key, default in (("expires_in", _DEFAULT_EXPIRES_S), ("interval", _DEFAULT_INTERVAL_S)):
        value = obj.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FormatError(f"device code response: {key} must be a non-negative integer")
        numbers[key] = value
    return DeviceCode(
        device_code=str(strings["device_code"]),
        user_code=str(strings["user_code"]),
        verification_uri=str(strings["verification_uri"]),
        expires_in_s=numbers["expires_in"],
        interval_s=numbers["interval"],
    )


def request_device_code(http: Http, github: GitHubEndpoint) -> DeviceCode:
    """Step 1: ask GitHub for a device code.

    Raises:
        VegaError: ``device code request failed: <status>`` (or an unusable answer).
        NetworkError: GitHub could not be reached.
    """
    resp = http.post_json(f"{github.url}/login/device/code", {"client_id": github.client_id}, _HEADERS)
    if not resp.ok:
        raise VegaError(f"device code request failed: {resp.status}")
    try:
        return parse_device_code(resp.json())
    except FormatError as e:
        raise VegaError(f"device code request failed: {e.message}") from e


def poll_for_token(
    http: Http,
    github: GitHubEndpoint,
    code: DeviceCode,
    *,
    sleep: Callable[[float], None],
    monotonic: Callable[[], float],
) -> str:
    """Step 2: poll until the user approves; return the access token.

    Raises:
        VegaError: expired, denied or otherwise refused (texts in the module docstring).
        NetworkError: GitHub could not be reached.
    """
    deadline = monotonic() + code.expires_in_s
    interval = code.interval_s
    body = {"client_id": github.client_id, "device_code": code.device_code, "grant_type": DEVICE_GRANT}
    while monotonic() < deadline:
        sleep(interval)
        resp = http.post_json(f"{github.url}/login/oauth/access_token", body, _HEADERS)
        try:
            answer = resp.json()
        except FormatError:
            answer = None
        obj = answer if isinstance(answer, dict) else {}
        token = obj.get("access_token")
        if isinstance(token, str) and token:
            return token
        error = obj.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            offered = obj.get("interval")
            bigger = offered if isinstance(offered, int) and not isinstance(offered, bool) else 0
            interval = max(interval + _SLOW_DOWN_S, bigger)
            continue
        if error == "expired_token":
            raise VegaError(_EXPIRED, next_steps=["vega login"])
        shown = safe_text(error, 100) if isinstance(error, str) and error else "unknown"
        raise VegaError(f"authorization failed: {shown}", next_steps=["vega login"])
    raise VegaError(_EXPIRED, next_steps=["vega login"])


def request_actions_token(http: Http, request_url: str, request_token: str, audience: str) -> str:
    """Mint a GitHub Actions OIDC JWT for ``audience`` (protocol.md §10).

    ``audience`` replaces any ``audience`` query parameter of ``request_url``. The request token
    is sent only as the bearer of this one request.

    Raises:
        VegaError: ``OIDC token request failed (<safe error>)`` for a non-2xx answer, or
            ``OIDC token response has no value`` when ``value`` is missing or empty.
        NetworkError: the token service could not be reached.
    """
    parts = urlsplit(request_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "audience"]
    url = urlunsplit(parts._replace(query=urlencode([*query, ("audience", audience)])))
    resp = http.get(url, {"authorization": f"Bearer {request_token}", "accept": "application/json"})
    if not resp.ok:
        raise VegaError(f"OIDC token request failed ({safe_error(resp.status, resp.body)})")
    try:
        obj = resp.json()
    except FormatError:
        obj = None
    value = obj.get("value") if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value:
        raise VegaError("OIDC token response has no value")
    return value
