"""The NAR check moved into the PUT (ADR 0010): recorded per object, compared on attest/push.

Over both database backends. The number of objects read back and decompressed is observed
through the ``vega_object_nar_reads`` metric, never through timing.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from pathlib import Path

import pytest
import zstandard

from tests.server.cachekit import Harness, Output, nix32_sha256
from vega.core import nixbase32
from vega.errors import VerificationError
from vega.server.blobs import LocalBlobStore
from vega.server.db import Database
from vega.server.store import Store
from vega.server.upload import ObjectDigest, UploadIngest


@pytest.fixture
def h(database: Database, tmp_path: Path) -> Harness:
    return Harness(database, tmp_path)


def nar_reads(h: Harness) -> int:
    m = re.search(r"^vega_object_nar_reads (\d+)$", h.client.get("/metrics").text, re.MULTILINE)
    assert m is not None
    return int(m.group(1))


def stored(h: Harness, out: Output) -> bool:
    return h.client.head(f"/{out.nar_url}").status_code == 200


def test_put_records_what_the_server_computed(h: Harness, database: Database) -> None:
    out = Output("hello", b"nar bytes " * 1000)
    token = h.ci_token()
    h.upload(token, out)
    store = Store(database)
    with store.read() as tx:
        obj = store.get_object(tx, out.nar_url)
    assert obj is not None
    assert (obj.file_hash, obj.size) == (out.file_hash, len(out.compressed))
    assert (obj.nar_hash, obj.nar_size) == (nix32_sha256(out.nar), len(out.nar))
    assert obj.nar_source == "upload"
    for _ in range(2):
        assert h.attest(token, out.body()).status_code == 200
    assert nar_reads(h) == 0  # the PUT checked it: attest neither re-reads nor decompresses


def test_attest_compares_with_the_record_and_refuses_a_mismatch(h: Harness, database: Database) -> None:
    out = Output("hello", b"nar bytes " * 100)
    token = h.ci_token()
    h.upload(token, out)
    lie = Output("hello", b"other nar")
    r = h.attest(token, out.body(narHash=lie.body()["narHash"]))
    assert r.status_code == 422
    assert r.json() == {"error": "narHash/narSize do not match the uploaded NAR"}
    assert h.attest(token, out.body(narSize=len(out.nar) + 1)).status_code == 422
    assert h.attest(token, out.body(fileSize=len(out.compressed) - 1)).status_code == 422
    # The record is what counts: change it and the (true) claim no longer matches.
    store = Store(database)
    with store.write() as tx:
        store.set_object_nar(tx, out.nar_url, lie.body()["narHash"], len(out.nar), source="upload")
    r = h.attest(token, out.body())
    assert r.status_code == 422
    with store.write() as tx:
        store.set_object_nar(
            tx, out.nar_url, nix32_sha256(out.nar), len(out.nar), file_hash=lie.file_hash, source="upload"
        )
    r = h.push(h.owner_credential(), out.body())
    assert r.status_code == 422
    assert r.json() == {"error": "fileHash does not match the stored object"}
    assert nar_reads(h) == 0
    assert h.client.get(f"/tenant/alice/hello/{out.hash_part}.narinfo").status_code == 404
    assert h.log_entries() == []


@pytest.mark.parametrize(
    "body",
    [
        b"plain NAR bytes, not compressed",
        b"\x28\xb5\x2f\xfd not really zstd",
        zstandard.ZstdCompressor().compress(b"nar bytes " * 100)[:-3],  # truncated
        zstandard.ZstdCompressor().compress(b"x" * 5000),  # decompresses past the cap
    ],
    ids=["not-zstd", "corrupt", "truncated", "over-cap"],
)
def test_a_put_that_is_not_a_zstd_nar_is_refused_and_leaves_nothing(
    database: Database, tmp_path: Path, body: bytes
) -> None:
    h = Harness(database, tmp_path, max_nar_bytes=4096)
    out = Output("hello", b"")
    file_hash = nix32_sha256(body)
    out_url = f"nar/{file_hash[7:]}.nar.zst"
    r = h.client.post(
        "/api/cache/upload-url",
        headers={"authorization": f"Bearer {h.ci_token()}"},
        json={"narUrl": out_url, "fileHash": file_hash},
    )
    r = h.put(str(r.json()["url"]), body)  # the checksum is right: the bytes match the key
    assert r.status_code == 422, r.text
    assert "zstd" in r.json()["error"]
    assert h.client.head(f"/{out_url}").status_code == 404
    assert list((h.blobs.root / "tmp").iterdir()) == []
    assert list((h.blobs.root / "nar").iterdir()) == []
    store = Store(database)
    with store.read() as tx:
        assert store.get_object(tx, out_url) is None
    assert h.client.get("/metrics").text.count("vega_uploads_total") == 0
    assert not stored(h, out)


def test_an_unrecorded_object_is_read_once_then_recorded(h: Harness, database: Database) -> None:
    out = Output("hello", b"nar bytes " * 1000)
    h.blobs.put(out.nar_url, out.compressed)  # as object storage or an older server would leave it
    token = h.ci_token()
    assert h.attest(token, out.body(narSize=5)).status_code == 422  # a short claim: not recorded
    assert nar_reads(h) == 1
    r = h.attest(token, out.body())
    assert r.status_code == 200, r.text
    assert nar_reads(h) == 2
    store = Store(database)
    with store.read() as tx:
        obj = store.get_object(tx, out.nar_url)
    assert obj is not None
    assert (obj.nar_hash, obj.nar_size, obj.nar_source) == (nix32_sha256(out.nar), len(out.nar), "read")
    # Second attest (another run), a push, a lie: all answered from the record.
    assert h.attest(h.ci_token(run_id="101"), out.body()).status_code == 200
    assert h.push(h.owner_credential(), out.body()).status_code == 200
    assert h.attest(token, out.body(narSize=5)).status_code == 422
    assert nar_reads(h) == 2


def test_a_legacy_row_without_nar_metadata_is_verified_by_reading(h: Harness, database: Database) -> None:
    out = Output("hello", b"nar bytes " * 100)
    h.blobs.put(out.nar_url, out.compressed)
    store = Store(database)
    with store.write() as tx:  # what cache migration 1's upload recorded: the size alone
        store.put_object(tx, out.nar_url, len(out.compressed), 1)
    token = h.ci_token()
    for _ in range(2):
        assert h.attest(token, out.body()).status_code == 200
    assert nar_reads(h) == 1
    with store.read() as tx:
        obj = store.get_object(tx, out.nar_url)
    assert obj is not None
    assert obj.nar_source == "read"


def test_a_large_put_streams_in_batches(h: Harness, database: Database) -> None:
    nar = random.Random(0).randbytes(3 << 20) + b"\0" * (2 << 20)
    out = Output("big", nar, level=1)
    assert len(out.compressed) > 3 << 20  # more than one 1 MiB batch
    token = h.ci_token()
    h.upload(token, out)
    assert h.client.get(f"/{out.nar_url}").content == out.compressed
    assert h.attest(token, out.body()).status_code == 200
    assert nar_reads(h) == 0
    # Bytes that are not zstd, over a batch long, with a right checksum: refused, nothing kept.
    junk = random.Random(1).randbytes(3 << 20)
    file_hash = nix32_sha256(junk)
    url = h.client.post(
        "/api/cache/upload-url",
        headers={"authorization": f"Bearer {token}"},
        json={"narUrl": f"nar/{file_hash[7:]}.nar.zst", "fileHash": file_hash},
    ).json()["url"]
    assert h.put(url, junk).status_code == 422
    assert list((h.blobs.root / "tmp").iterdir()) == []
    assert [p.name for p in (h.blobs.root / "nar").iterdir()] == [out.nar_url[4:]]


def upload_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("vega-upload", "vega-nar"))]


def ingest_for(tmp_path: Path, data: bytes, max_nar_bytes: int = 1 << 30) -> tuple[UploadIngest, Path]:
    blobs = LocalBlobStore(tmp_path / "blobs")
    digest = hashlib.sha256(data).digest()
    key = f"nar/{nixbase32.encode(digest)}.nar.zst"
    return UploadIngest(blobs.writer(key, digest, len(data)), digest, max_nar_bytes), blobs.root


def test_ingest_in_batches_computes_the_object_digest(tmp_path: Path) -> None:
    out = Output("big", random.Random(3).randbytes(1 << 20) * 3, level=1)
    data = out.compressed
    ingest, root = ingest_for(tmp_path, data)
    for i in range(0, len(data), 100_000):
        ingest.feed(data[i : i + 100_000])
    obj = ingest.commit()
    assert obj == ObjectDigest(out.file_hash, len(data), nix32_sha256(out.nar), len(out.nar))
    assert (root / out.nar_url).read_bytes() == data
    ingest.abort()  # after commit: nothing to drop, the object stays
    assert (root / out.nar_url).exists()
    assert upload_threads() == []


@pytest.mark.parametrize("cut", [False, True])
def test_ingest_refuses_or_drops_and_leaves_nothing(tmp_path: Path, *, cut: bool) -> None:
    junk = random.Random(4).randbytes(3 << 20)
    ingest, root = ingest_for(tmp_path, junk)
    ingest.feed(junk[: 1 << 20])
    if not cut:
        ingest.feed(junk[1 << 20 :])
        with pytest.raises(VerificationError, match="not a valid zstd stream"):
            ingest.commit()
    ingest.abort()  # a cut-off body, or after the refusal (the handler always aborts)
    assert list((root / "tmp").iterdir()) == []
    assert list((root / "nar").iterdir()) == []
    assert upload_threads() == []
