"""The log read API client: narrowing of untrusted answers (protocol.md §5; issue 3)."""

from __future__ import annotations

import contextlib
import json

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vega.client.http import Http, HttpLimits
from vega.client.logclient import LogClient
from vega.errors import ApiError, FormatError, VegaError

H = "ab" * 32


def client_for(status: int, body: bytes | object) -> LogClient:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=content)

    http = Http(httpx2.Client(transport=httpx2.MockTransport(handler)), HttpLimits(tries=1))
    return LogClient(http, "https://cp.test/")


def test_lookup_missing_endpoint_means_an_original_server() -> None:
    assert client_for(404, b"Not Found").lookup("h") is None
    assert client_for(405, b"").lookup("h") is None
    # issue 14: the original's unknown routes are JSON 404s (protocol.md §4.0); still missing
    assert client_for(404, {"error": "not found"}).lookup("h") is None
    assert client_for(501, {"error": "not implemented"}).lookup("h") is None
    with pytest.raises(ApiError, match=r"log lookup failed \(400\)"):
        client_for(400, b"<html>").lookup("h")


def test_lookup_parses() -> None:
    body = {"checkpoint": "c\n", "sth": {"size": 1}, "entries": [{"index": 3, "data": "x", "proofHex": [H]}]}
    got = client_for(200, body).lookup("h")
    assert got is not None
    assert got.entries[0].index == 3
    assert got.entries[0].data == b"x"
    assert got.entries[0].proof == (bytes.fromhex(H),)
    assert got.truncated is False


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ([], "expected a JSON object"),
        ({"entries": []}, "checkpoint: expected a string"),
        ({"checkpoint": "c", "entries": {}}, "entries: expected an array"),
        ({"checkpoint": "c", "entries": [1]}, r"entries\[0\]: expected a JSON object"),
        ({"checkpoint": "c", "entries": [{"index": -1, "data": "", "proofHex": []}]}, r"entries\[0\]\.index"),
        ({"checkpoint": "c", "entries": [{"index": True, "data": "", "proofHex": []}]}, r"\.index"),
        ({"checkpoint": "c", "entries": [{"index": 0, "data": 1, "proofHex": []}]}, r"\.data"),
        ({"checkpoint": "c", "entries": [{"index": 0, "data": "\ud800", "proofHex": []}]}, "UTF-8"),
        (
            {"checkpoint": "c", "entries": [{"index": 0, "data": "", "proofHex": "x"}]},
            r"proofHex: expected an array",
        ),
        (
            {"checkpoint": "c", "entries": [{"index": 0, "data": "", "proofHex": ["AB" * 32]}]},
            r"proofHex\[0\]",
        ),
        (
            {"checkpoint": "c", "entries": [{"index": 0, "data": "", "proofHex": [H] * 65}]},
            "more than any tree",
        ),
        ({"checkpoint": "c", "entries": [], "truncated": "yes"}, "truncated"),
    ],
)
def test_lookup_refuses_malformed(body: object, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        client_for(200, body).lookup("h")


def test_consistency() -> None:
    got = client_for(200, {"first": 2, "second": 5, "proofHex": [H, H]}).consistency(2, 5)
    assert got.proof == (bytes.fromhex(H),) * 2
    with pytest.raises(FormatError, match=r"asked for 2\.\.5, got 1\.\.5"):
        client_for(200, {"first": 1, "second": 5, "proofHex": []}).consistency(2, 5)
    with pytest.raises(ApiError, match=r"consistency proof failed \(404\)"):
        client_for(404, b"Not Found").consistency(2, 5)


def test_checkpoint_sth_entry_inclusion() -> None:
    assert client_for(200, b"note\n").checkpoint() == "note\n"
    with pytest.raises(ApiError):
        client_for(500, b"").checkpoint()
    assert client_for(200, {"size": 1}).sth() == {"size": 1}
    assert client_for(200, {"index": 4, "data": "d"}).entry(4).data == b"d"
    with pytest.raises(FormatError, match="the server sent entry 5"):
        client_for(200, {"index": 5, "data": "d"}).entry(4)
    proof = client_for(200, {"index": 4, "size": 9, "leafHashHex": H, "proofHex": [H]}).inclusion(4, 9)
    assert (proof.index, proof.size, proof.leaf_hash_hex) == (4, 9, H)
    with pytest.raises(FormatError, match="leafHashHex"):
        client_for(200, {"index": 4, "size": 9, "proofHex": []}).inclusion(4, 9)


@settings(max_examples=100)
@given(st.binary(max_size=400), st.sampled_from([200, 404, 500]))
def test_arbitrary_bytes_raise_only_vega_errors(body: bytes, status: int) -> None:
    """Parsers of untrusted bytes raise only our errors (house-style §4.10)."""
    c = client_for(status, body)
    for call in (lambda: c.lookup("h"), lambda: c.consistency(1, 2), c.sth, lambda: c.entry(0), c.checkpoint):
        with contextlib.suppress(VegaError):
            call()


@settings(max_examples=100)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=12,
    )
)
def test_arbitrary_json_raises_only_format_errors(obj: object) -> None:
    c = client_for(200, obj)
    for call in (
        lambda: c.lookup("h"),
        lambda: c.consistency(1, 2),
        lambda: c.entry(0),
        lambda: c.inclusion(0, 1),
    ):
        with contextlib.suppress(FormatError):
            call()
