"""The namespace client: paging, batching, and the errors of an original or refusing server."""

from __future__ import annotations

import json

import httpx2
import pytest

from vega.client.credentials import Credential
from vega.client.http import Http
from vega.client.namespace import delete_paths, list_namespace
from vega.errors import ConfigError, FormatError, NetworkError

URL = "https://vega.test"
CRED = Credential(credential="v1.c.s", login="me", user_id="7", expires_at_ms=None, url=URL)
H = [f"{i:0>32}" for i in range(3)]


def entry(h: str) -> dict[str, object]:
    return {"hash": h, "storePath": f"/nix/store/{h}-x", "narSize": 1, "fileSize": 1, "pushedAt": 0}


def http(handler: object) -> Http:
    return Http(httpx2.Client(transport=httpx2.MockTransport(handler)), sleep=lambda _s: None)  # type: ignore[arg-type]


def test_pages_until_next_is_null() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        assert request.headers["authorization"] == "Bearer v1.c.s"
        after = request.url.params.get("after", "")
        if not after:
            return httpx2.Response(200, json={"namespace": "owner:7", "entries": [entry(H[0])], "next": H[0]})
        return httpx2.Response(200, json={"namespace": "owner:7", "entries": [entry(H[1])], "next": None})

    assert [e.hash for e in list_namespace(http(handler), CRED)] == H[:2]
    assert seen == [f"{URL}/api/cache/namespace", f"{URL}/api/cache/namespace?after={H[0]}"]


def test_a_next_that_does_not_move_forward_is_refused() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"namespace": "owner:7", "entries": [], "next": "0" * 32})

    with pytest.raises(FormatError, match="does not move forward"):
        list(list_namespace(http(handler), CRED))


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (404, ConfigError, "does not offer namespace management"),
        (401, ConfigError, "refused the credential"),
        (400, NetworkError, "failed"),
    ],
)
def test_errors(status: int, error: type[Exception], message: str) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json={"error": "nope"})

    with pytest.raises(error, match=message):
        list(list_namespace(http(handler), CRED))
    with pytest.raises(error, match=message):
        delete_paths(http(handler), CRED, H[:1])


def test_delete_batches_of_at_most_1000() -> None:
    bodies: list[list[str]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        hashes = json.loads(request.content)["hashes"]
        bodies.append(hashes)
        return httpx2.Response(200, json={"deleted": hashes[:1], "missing": hashes[1:]})

    many = [f"{i:0>32}" for i in range(1500)]
    result = delete_paths(http(handler), CRED, [*many, many[0]])
    assert [len(b) for b in bodies] == [1000, 500]
    assert result.deleted == (many[0], many[1000])
    assert len(result.missing) == 1498
