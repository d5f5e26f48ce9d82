"""Error contract of the cache endpoints: statuses, and internals never leaked (protocol.md §4.0)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from starlette.testclient import TestClient

from tests.server.cachekit import Harness, Output
from vega.errors import StorageError
from vega.server.app import create_app
from vega.server.blobs import LocalBlobStore
from vega.server.db import Database


class BrokenBlobs(LocalBlobStore):
    """A blob store whose disk has failed (a fake adapter, injected like the real one)."""

    def size(self, key: str) -> int | None:
        raise StorageError("cannot stat /srv/secret/nars/x: Input/output error")

    def open(self, key: str) -> BinaryIO | None:
        raise RuntimeError("unexpected: /srv/secret path")


@pytest.fixture
def h(database: Database, tmp_path: Path) -> Harness:
    return Harness(database, tmp_path)


def test_internal_errors_are_not_leaked(database: Database, tmp_path: Path) -> None:
    h = Harness(database, tmp_path)
    broken = create_app(
        h.settings, database, BrokenBlobs(tmp_path / "broken"), h.clock, keys=h.keys, authenticator=h.auth
    )
    client = TestClient(broken, base_url=h.settings.resolved_public_url, raise_server_exceptions=False)
    out = Output("hello", b"nar")
    assert client.head(f"/{out.nar_url}").status_code == 500
    for r in (
        client.get(f"/{out.nar_url}"),
        client.post(
            "/api/cache/attest", headers={"authorization": f"Bearer {h.ci_token()}"}, json=out.body()
        ),
    ):
        assert r.status_code == 500
        assert r.json() == {"error": "internal error"}
        assert "secret" not in r.text


def test_upload_request_errors(database: Database, tmp_path: Path) -> None:
    h = Harness(database, tmp_path, max_upload_bytes=100)
    small = Output("small", b"small nar")
    url = h.upload_url(h.ci_token(), small)
    path = url.split("127.0.0.1:8321", 1)[1]
    r = h.client.put(path, content=small.compressed)  # no x-amz-checksum-sha256
    assert r.status_code == 400
    assert r.json() == {"error": "x-amz-checksum-sha256 header is required"}

    def chunks() -> Iterator[bytes]:
        yield small.compressed

    checksum = base64.b64encode(hashlib.sha256(small.compressed).digest()).decode()
    r = h.client.put(path, content=chunks(), headers={"x-amz-checksum-sha256": checksum})
    assert r.status_code == 411
    big = Output("big", bytes(range(256)) * 50, level=1)
    assert len(big.compressed) > 100
    r = h.put(h.upload_url(h.ci_token(), big), big.compressed)
    assert r.status_code == 413
    assert h.client.put("/api/cache/upload/nar/x.nar.zst", content=b"x").status_code == 404
    assert h.client.put(path.split("?")[0], content=b"x").status_code == 403  # no signature at all


class ObjectStorage(LocalBlobStore):
    """A blob store that presigns its own PUT URLs (as S3 would)."""

    def presign_put(self, key: str, sha256: bytes, ttl_s: int) -> str | None:
        return f"https://objects.example/{key}?X-Amz-Expires={ttl_s}&sha={sha256.hex()}"


def test_upload_url_comes_from_object_storage_when_it_presigns(database: Database, tmp_path: Path) -> None:
    h = Harness(database, tmp_path)
    app = create_app(
        h.settings, database, ObjectStorage(tmp_path / "s3"), h.clock, keys=h.keys, authenticator=h.auth
    )
    client = TestClient(app, base_url=h.settings.resolved_public_url)
    out = Output("hello", b"nar")
    r = client.post(
        "/api/cache/upload-url",
        headers={"authorization": f"Bearer {h.ci_token()}"},
        json={"narUrl": out.nar_url, "fileHash": out.file_hash},
    )
    digest = hashlib.sha256(out.compressed).hexdigest()
    assert r.json() == {"url": f"https://objects.example/{out.nar_url}?X-Amz-Expires=21600&sha={digest}"}


def test_status_table() -> None:
    from vega.errors import ApiError, AuthError, FormatError, NetworkError, VerificationError
    from vega.server.errors import ServiceError, status_of

    assert status_of(ServiceError("gone", status=404)) == (404, "gone")
    assert status_of(AuthError("no", status=401)) == (401, "no")
    assert status_of(ApiError("x", status=409)) == (409, "x")
    assert status_of(FormatError("bad")) == (400, "bad")
    assert status_of(VerificationError("lie")) == (422, "lie")
    assert status_of(NetworkError("jwks at https://internal:8443 down"))[0] == 503
    assert "internal" not in status_of(NetworkError("jwks at https://internal:8443 down"))[1]
    assert status_of(StorageError("disk /srv/x")) == (500, "internal error")
    assert status_of(KeyError("x")) == (500, "internal error")


def test_transient_errors_say_when_to_retry() -> None:
    from vega.errors import NetworkError
    from vega.server.errors import error_response

    r = error_response(NetworkError("down"))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert "retry-after" not in error_response(StorageError("x")).headers


def test_unrouted_requests_get_the_error_shape(h: Harness) -> None:
    r = h.client.post("/nix-cache-info")
    assert r.status_code == 405
    assert r.json() == {"error": "method not allowed"}
    assert h.client.delete("/api/cache/attest").json() == {"error": "method not allowed"}
