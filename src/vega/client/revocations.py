"""The original's signed revocation list on the client: fetch, authenticate with the PINNED key, decide.

:func:`fetch_revocation_status` asks ``GET <control-plane origin>/api/revocations`` and judges the
answer with :func:`vega.core.revocations.assess` under the user's pinned shared key only (never a
key the cache served): ``revoked``, ``clean``, or ``unknown`` (unreachable, malformed, unsigned,
badly signed, stale, truncated; never "clean").

:func:`revocation_check` turns that into the ``revocation`` :class:`~vega.client.transparency.Check`
of a verification, by route:

* shared key, our log (``/log/lookup``): the proven log check stands; the list is not asked;
* shared key, a control plane without our log lookup (``legacy``): a revocation found by the
  log scan stands; otherwise the list decides, and "unknown" fails the check;
* any other scope (tenant, scoped, upstream): a revoked path fails; "unknown" is reported,
  not failed (the build was never a shared-tier statement, and a plain Nix cache has no list);
  without a pinned shared key the list cannot be authenticated, so it can never show a build
  clean, but a revocation it claims is honoured (:func:`vega.core.revocations.claimed_revocation`;
  issue 12: a revoked tenant path fails for a user who pinned only the tenant key).

Used by ``vega verify`` (and meant for the MCP risk gate: pure inputs, one HTTP call).

Spec: changes-0.19.md ("Revocation list"); cli.md §10.4-§10.5; issue 14.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping

from vega.client.http import Http
from vega.client.transparency import Check
from vega.core.narinfo import NarInfo, fingerprint
from vega.core.revocations import RevocationStatus, assess, claimed_revocation
from vega.core.signing import SHARED_KEY_NAME, PublicKey
from vega.errors import ConfigError, FormatError, NetworkError

__all__ = ["fetch_revocation_status", "pinned_shared_key", "revocation_check"]

_FETCHING = threading.Lock()


def pinned_shared_key(public_key: PublicKey | None, trusted: Mapping[str, PublicKey]) -> PublicKey | None:
    """The user's own shared key: ``--public-key`` if it is ``vega-cache-1``, else the trusted one."""
    if public_key is not None and public_key.name == SHARED_KEY_NAME:
        return public_key
    return trusted.get(SHARED_KEY_NAME)


def fetch_revocation_status(
    http: Http,
    root_url: str,
    key: PublicKey | None,
    info: NarInfo,
    now_ms: int,
    fetched: MutableMapping[str, object] | None = None,
) -> RevocationStatus:
    """What the list at ``root_url`` says about ``info``'s build; never raises.

    Args:
        http: bounded HTTP.
        root_url: the control-plane origin (the list is global, not per tenant).
        key: the user's pinned shared key (:func:`pinned_shared_key`); None: the list is read
            only for a revocation it claims (never "clean").
        info: the build's narinfo.
        now_ms: the client's clock.
        fetched: answers already fetched in this run, by ``root_url`` (a closure asks once);
            the list is judged afresh for every build.
    """
    if fetched is None:
        body = _fetch(http, root_url)
    else:
        with _FETCHING:  # concurrent verifications of a closure wait for the one fetch
            body = fetched.get(root_url)
            if body is None:
                body = fetched[root_url] = _fetch(http, root_url)
    if isinstance(body, RevocationStatus):
        return body
    if key is None:
        claim = claimed_revocation(body, info.store_path.hash_part, fingerprint(info))
        if claim is not None:
            return RevocationStatus(
                status="revoked",
                detail=f"revoked: {claim.reason} (claimed by the cache's list; without a pinned "
                f"{SHARED_KEY_NAME} key its signature is not checked, and a revocation is honoured unsigned)",
                revocation=claim,
            )
        return RevocationStatus(
            status="unknown",
            detail=f"revocation list not checked: no pinned {SHARED_KEY_NAME} key to authenticate it",
        )
    return assess(body, key, now_ms, info.store_path.hash_part, fingerprint(info))


def _fetch(http: Http, root_url: str) -> object:
    """The parsed list, or the "unknown" status saying why there is none."""
    try:
        resp = http.get(f"{root_url}/api/revocations", {"accept": "application/json"})
    except (NetworkError, ConfigError) as e:
        return RevocationStatus(status="unknown", detail=f"revocation list unreachable: {e.message}")
    if resp.status in (404, 405, 501):
        return RevocationStatus(
            status="unknown",
            detail=f"no revocation list on this control plane (HTTP {resp.status})",
            offered=False,
        )
    if not resp.ok:
        return RevocationStatus(status="unknown", detail=f"revocation list unreachable (HTTP {resp.status})")
    try:
        return resp.json()
    except FormatError:
        return RevocationStatus(status="unknown", detail="revocation list is malformed: not JSON")


def revocation_check(status: RevocationStatus, *, shared_scope: bool, log_check: Check | None) -> Check:
    """The ``revocation`` check of a verification, from the list's ``status`` and the log's check.

    Args:
        status: what the list said.
        shared_scope: the build was verified under the shared key (its log checks ran, legacy).
        log_check: the legacy log scan's ``revocation`` check, if any.
    """
    if status.status == "revoked":
        return Check(name="revocation", ok=False, detail=f"{status.detail} (signed revocation list)")
    if log_check is not None and not log_check.ok:
        return log_check  # revoked in the log, or "not checked": never softened by the list
    if status.status == "clean":
        detail = status.detail if log_check is None else f"{log_check.detail}; {status.detail}"
        return Check(name="revocation", ok=True, detail=detail)
    if log_check is not None and not status.offered:
        # An original 0.18 control plane has no list; its whole log was scanned and proven against
        # its signed head, which rules a revocation out on its own. A list that is offered but
        # bad (stale, unsigned, truncated, unreachable) stays "cannot be ruled out".
        return Check(name="revocation", ok=True, detail=f"{log_check.detail}; {status.detail}")
    if shared_scope:
        return Check(name="revocation", ok=False, detail=f"{status.detail}; a revocation cannot be ruled out")
    return Check(name="revocation", ok=False, skipped=True, detail=status.detail)
