"""``vega cache list`` and ``vega cache delete``: an owner's own namespace on the control plane.

Pages through ``GET /api/cache/namespace`` and sends ``POST /api/cache/delete`` in batches of at
most 1000 hashes, with the owner credential of that control plane. A control plane without these
endpoints (the original) answers 404, which becomes a plain error saying so.

Spec: docs/server-api.md ("Namespace management"); issue 12.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from vega.client.credentials import Credential
from vega.client.http import Http, safe_error
from vega.core.cacheapi import MAX_DELETE, DeleteRequest, DeleteResult, NamespaceEntry, NamespaceListing
from vega.errors import ConfigError, FormatError, NetworkError

__all__ = ["delete_paths", "list_namespace"]


def _headers(cred: Credential) -> dict[str, str]:
    return {"authorization": f"Bearer {cred.credential}", "accept": "application/json"}


def _check(status: int, body: bytes, url: str, what: str) -> None:
    if status == 404:
        raise ConfigError(
            f"{url} does not offer namespace management ({what} answered 404)",
            next_steps=["its namespace is still served at /tenant/owner:<id>; ask its operator"],
        )
    if status == 401:
        raise ConfigError(
            f"{url} refused the credential ({safe_error(status, body)})",
            next_steps=[f"vega login --url {url}"],
        )
    raise NetworkError(f"{what} failed ({safe_error(status, body)})")


def list_namespace(http: Http, cred: Credential) -> Iterator[NamespaceEntry]:
    """Every entry of the credential's namespace on its control plane, by hash.

    Raises:
        ConfigError: no such endpoint, or the credential was refused.
        NetworkError: the control plane failed or could not be reached.
        FormatError: an answer is malformed.
    """
    after = ""
    while True:
        query = f"?after={after}" if after else ""
        resp = http.get(f"{cred.url}/api/cache/namespace{query}", _headers(cred))
        if not resp.ok:
            _check(resp.status, resp.body, cred.url, "GET /api/cache/namespace")
        page = NamespaceListing.from_json(resp.json())
        yield from page.entries
        if page.next is None:
            return
        if page.next <= after:
            raise FormatError("listing.next does not move forward")
        after = page.next


def delete_paths(http: Http, cred: Credential, hashes: Sequence[str]) -> DeleteResult:
    """Stop serving ``hashes`` from the credential's namespace (idempotent, retried).

    Raises:
        ConfigError: no such endpoint, or the credential was refused.
        NetworkError: the control plane failed or could not be reached.
        FormatError: an answer is malformed.
    """
    deleted: list[str] = []
    missing: list[str] = []
    unique = list(dict.fromkeys(hashes))
    for start in range(0, len(unique), MAX_DELETE):
        body = DeleteRequest(tuple(unique[start : start + MAX_DELETE])).to_json()
        resp = http.post_json(f"{cred.url}/api/cache/delete", body, _headers(cred), idempotent=True)
        if not resp.ok:
            _check(resp.status, resp.body, cred.url, "POST /api/cache/delete")
        result = DeleteResult.from_json(resp.json())
        deleted += result.deleted
        missing += result.missing
    return DeleteResult(tuple(deleted), tuple(missing))
