"""Wire types of namespace management: round trips, and every malformed field named."""

from __future__ import annotations

import pytest

from vega.core.cacheapi import MAX_DELETE, DeleteRequest, DeleteResult, NamespaceEntry, NamespaceListing
from vega.errors import FormatError

H1, H2 = "0" * 32, "1" * 32
ENTRY = NamespaceEntry(hash=H1, store_path=f"/nix/store/{H1}-x", nar_size=10, file_size=5, pushed_at_ms=7)


def test_round_trips() -> None:
    listing = NamespaceListing(namespace="owner:1", entries=(ENTRY,), next=H1)
    assert NamespaceListing.from_json(listing.to_json()) == listing
    end = NamespaceListing(namespace="owner:1", entries=(), next=None)
    assert NamespaceListing.from_json(end.to_json()) == end
    assert DeleteRequest.from_json({"hashes": [H1, H2, H1]}) == DeleteRequest((H1, H2))
    assert DeleteRequest.from_json(DeleteRequest((H1,)).to_json()) == DeleteRequest((H1,))
    result = DeleteResult((H1,), (H2,))
    assert DeleteResult.from_json(result.to_json()) == result


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "listing: expected a JSON object"),
        ({"namespace": "owner:1", "entries": {}, "next": None}, "listing.entries: expected an array"),
        ({"namespace": 1, "entries": [], "next": None}, "listing.namespace: expected a string"),
        ({"namespace": "o", "entries": [], "next": "x"}, "listing.next: expected a 32-character"),
        ({"namespace": "o", "entries": [1], "next": None}, r"listing.entries\[0\]: expected a JSON object"),
        (
            {"namespace": "o", "entries": [{**ENTRY.to_json(), "narSize": -1}], "next": None},
            r"listing.entries\[0\].narSize: expected a non-negative integer",
        ),
        (
            {"namespace": "o", "entries": [{**ENTRY.to_json(), "fileSize": True}], "next": None},
            r"listing.entries\[0\].fileSize",
        ),
        (
            {"namespace": "o", "entries": [{**ENTRY.to_json(), "storePath": "/etc/\x1b[2Jx"}], "next": None},
            r"listing.entries\[0\].storePath: not a store path",
        ),
        (
            {
                "namespace": "o",
                "entries": [{**ENTRY.to_json(), "storePath": f"/nix/store/{H2}-x"}],
                "next": None,
            },
            r"listing.entries\[0\].storePath: does not match listing.entries\[0\].hash",
        ),
    ],
)
def test_bad_listings_name_the_field(obj: object, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        NamespaceListing.from_json(obj)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ("x", "body: expected a JSON object"),
        ({}, "body.hashes: expected an array of 1 to 1000"),
        ({"hashes": []}, "body.hashes"),
        ({"hashes": [H1] * (MAX_DELETE + 1)}, "body.hashes"),
        ({"hashes": [H1, "E" * 32]}, r"body.hashes\[1\]: expected a 32-character store-path hash"),
        ({"hashes": [5]}, r"body.hashes\[0\]"),
    ],
)
def test_bad_delete_requests_name_the_field(obj: object, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        DeleteRequest.from_json(obj)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"deleted": [], "missing": "x"}, "result.missing: expected an array"),
        ({"deleted": ["x"], "missing": []}, r"result.deleted\[0\]"),
    ],
)
def test_bad_delete_results_name_the_field(obj: object, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        DeleteResult.from_json(obj)
