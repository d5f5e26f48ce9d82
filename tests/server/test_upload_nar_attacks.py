"""Attacks on the PUT-time check (issue 14): bytes that are zstd but not a canonical NAR.

The server parses what it stores with the strict NAR reader in the same pass as it hashes it:
a zstd stream of HTML, a NAR whose entry names would escape or confuse a directory (``..``,
``.``, ``/``, absolute, empty, unordered), a truncated NAR or one with bytes after its end is
refused with 422 and nothing is kept (no object, no temporary file, no record). Over both
database backends.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard

from tests.server.cachekit import Harness, file_nar, nix32_sha256
from vega.core.nar import DIRECTORY_HEADER, MAGIC, NODE_END, entry_header, padding, regular_header
from vega.server.db import Database
from vega.server.store import Store


def file_node(contents: bytes) -> bytes:
    n = len(contents)
    return regular_header(False, n) + contents + padding(n) + NODE_END


def directory_nar(*names: bytes) -> bytes:
    """A NAR of a directory whose entries (in the given order, unchecked) are small files."""
    entries = b"".join(entry_header(name) + file_node(b"x") + NODE_END for name in names)
    return MAGIC + DIRECTORY_HEADER + entries + NODE_END


HTML = b"<!doctype html><html><body>" + b"<p>not a nar</p>" * 200 + b"</body></html>"

ATTACKS = {
    "html": HTML,
    "dotdot": directory_nar(b".."),
    "dot": directory_nar(b"."),
    "slash": directory_nar(b"a/b"),
    "absolute": directory_nar(b"/etc"),
    "empty-name": directory_nar(b""),
    "nul": directory_nar(b"a\0b"),
    "unordered": directory_nar(b"b", b"a"),
    "duplicate": directory_nar(b"a", b"a"),
    "truncated": file_nar(b"hello world")[:-8],
    "trailing": file_nar(b"hello world") + b"\0" * 8,
    "late-html": file_nar(b"y" * (3 << 20)) + HTML,  # a whole NAR, then garbage over a batch later
}


@pytest.mark.parametrize("payload", list(ATTACKS.values()), ids=list(ATTACKS))
def test_a_zstd_body_that_is_not_a_canonical_nar_is_refused_and_leaves_nothing(
    database: Database, tmp_path: Path, payload: bytes
) -> None:
    h = Harness(database, tmp_path)
    body = zstandard.ZstdCompressor(level=1).compress(payload)
    file_hash = nix32_sha256(body)
    key = f"nar/{file_hash[7:]}.nar.zst"
    r = h.client.post(
        "/api/cache/upload-url",
        headers={"authorization": f"Bearer {h.ci_token()}"},
        json={"narUrl": key, "fileHash": file_hash},
    )
    r = h.put(str(r.json()["url"]), body)  # checksum right, zstd valid: only the NAR is wrong
    assert r.status_code == 422, r.text
    assert "not a valid NAR" in r.json()["error"]
    assert h.client.head(f"/{key}").status_code == 404
    assert list((h.blobs.root / "tmp").iterdir()) == []
    assert list((h.blobs.root / "nar").iterdir()) == []
    store = Store(database)
    with store.read() as tx:
        assert store.get_object(tx, key) is None
    assert "vega_uploads_total" not in h.client.get("/metrics").text


def test_a_canonical_directory_nar_is_stored(database: Database, tmp_path: Path) -> None:
    h = Harness(database, tmp_path)
    body = zstandard.ZstdCompressor().compress(directory_nar(b".hidden", b"a", b"b..c"))
    file_hash = nix32_sha256(body)
    key = f"nar/{file_hash[7:]}.nar.zst"
    r = h.client.post(
        "/api/cache/upload-url",
        headers={"authorization": f"Bearer {h.ci_token()}"},
        json={"narUrl": key, "fileHash": file_hash},
    )
    assert h.put(str(r.json()["url"]), body).status_code == 200
    assert h.client.get(f"/{key}").content == body
