"""Test kit for the cache endpoints: an app over a real database, dev-mode identities, NAR uploads."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zstandard
from starlette.testclient import TestClient

from vega.core import nixbase32
from vega.core.nar import MAGIC, NODE_END, padding, regular_header
from vega.core.signing import generate_secret_key
from vega.server.app import create_app, identity_for
from vega.server.blobs import LocalBlobStore
from vega.server.db import Database
from vega.server.service import ServerKeys
from vega.server.settings import ServerSettings

PUBLIC_URL = "http://127.0.0.1:8321"
REPRO_WORKFLOW = "vega-org/vega/.github/workflows/reproduce.yml"
REPRO_WORKFLOW_REF = f"{REPRO_WORKFLOW}@refs/heads/main"
"""The reproducer workflow the harness trusts, pinned to a branch (issue 14)."""
T0 = 1_767_225_600_000


def nix32_sha256(data: bytes) -> str:
    """``sha256:<nix32>`` of ``data``."""
    return "sha256:" + nixbase32.encode(hashlib.sha256(data).digest())


def file_nar(contents: bytes) -> bytes:
    """The NAR of a store path that is one regular file holding ``contents``."""
    n = len(contents)
    return MAGIC + regular_header(False, n) + contents + padding(n) + NODE_END


def attest_body(store_path: str, nar: bytes, compressed: bytes, references: list[str]) -> dict[str, Any]:
    """The ``AttestBody`` (protocol.md §4.2) of a zstd-compressed NAR stored at ``nar/<fileHash>.nar.zst``."""
    file_hash = nix32_sha256(compressed)
    return {
        "storePath": store_path,
        "url": f"nar/{file_hash[7:]}.nar.zst",
        "compression": "zstd",
        "fileHash": file_hash,
        "fileSize": len(compressed),
        "narHash": nix32_sha256(nar),
        "narSize": len(nar),
        "references": references,
    }


def store_hash(seed: str) -> str:
    return nixbase32.encode(hashlib.sha256(seed.encode()).digest()[:20])


@dataclass
class Output:
    """One fake build output: NAR bytes, compressed bytes, the attest body."""

    name: str
    contents: bytes
    """The contents of the one regular file the output is."""
    references: list[str] = field(default_factory=list)
    level: int = 3

    @property
    def nar(self) -> bytes:
        """The output's NAR: a regular file holding ``contents`` (the server parses what it stores)."""
        return file_nar(self.contents)

    @property
    def hash_part(self) -> str:
        return store_hash(self.name)

    @property
    def base(self) -> str:
        return f"{self.hash_part}-{self.name}"

    @property
    def store_path(self) -> str:
        return f"/nix/store/{self.base}"

    @property
    def compressed(self) -> bytes:
        return zstandard.ZstdCompressor(level=self.level).compress(self.nar)

    @property
    def file_hash(self) -> str:
        return nix32_sha256(self.compressed)

    @property
    def nar_url(self) -> str:
        return f"nar/{self.file_hash[7:]}.nar.zst"

    def body(self, **over: Any) -> dict[str, Any]:
        b = attest_body(self.store_path, self.nar, self.compressed, self.references)
        b.update(over)
        return b


class Clock:
    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class Harness:
    """A control plane in process: TestClient, clock, keys, dev identities."""

    def __init__(self, db: Database, tmp: Path, **settings: Any) -> None:
        self.db = db
        self.clock = Clock()
        self.keys = ServerKeys(
            shared=generate_secret_key("vega-cache-1", b"\x01" * 32),
            log=generate_secret_key("vega-log-1", b"\x02" * 32),
        )
        defaults: dict[str, Any] = {
            "data_dir": tmp,
            "public_url": PUBLIC_URL,
            "dev": True,
            "quorum": 2,
            "min_reproductions": 1,
            "settling_s": 0,
            "reproducer_workflows": (REPRO_WORKFLOW_REF,),
        }
        defaults.update(settings)
        self.settings = ServerSettings(**defaults)
        self.blobs = LocalBlobStore(tmp / "nars")
        self.auth = identity_for(self.settings, self.keys, db, self.clock, dev_polls=0, dev_interval_s=0)
        self.app = create_app(
            self.settings, db, self.blobs, self.clock, keys=self.keys, authenticator=self.auth
        )
        self.client = TestClient(
            self.app, base_url=self.settings.resolved_public_url, raise_server_exceptions=False
        )

    # -- identities --------------------------------------------------------------------------

    def ci_token(
        self,
        repository: str = "alice/hello",
        *,
        sha: str = "a" * 40,
        run_id: str = "100",
        reproducer: bool = False,
        owner_id: str | None = None,
        audience: str | None = None,
        workflow: str | None = None,
        **job: str,
    ) -> str:
        """An OIDC token of a simulated job; ``reproducer`` runs the pinned reproducer workflow.

        ``workflow`` (a path or a full ``owner/repo/path@ref``) overrides it; other keyword
        arguments (``runner_environment``, ``job_workflow_sha``, ``repository_id``) go to the
        development issuer as they are.
        """
        dev = self.auth.dev
        assert dev is not None
        if workflow is None:
            workflow = REPRO_WORKFLOW_REF if reproducer else ".github/workflows/vega.yml"
        request_token = dev.mint_request_token(
            repository=repository,
            sha=sha,
            run_id=run_id,
            workflow=workflow,
            repository_owner_id=owner_id,
            **job,
        )
        return dev.mint_id_token(request_token, audience or self.settings.resolved_public_url)

    def owner_credential(self) -> str:
        c = self.client
        code = c.post("/login/device/code", json={"client_id": "vega-dev-client"}).json()["device_code"]
        grant = "urn:ietf:params:oauth:grant-type:device_code"
        token = c.post(
            "/login/oauth/access_token",
            json={"client_id": "vega-dev-client", "device_code": code, "grant_type": grant},
        ).json()["access_token"]
        r = c.post("/api/owner/enroll", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return str(r.json()["credential"])

    # -- uploads -------------------------------------------------------------------------------

    def upload_url(self, token: str, out: Output) -> str:
        r = self.client.post(
            "/api/cache/upload-url",
            headers={"authorization": f"Bearer {token}"},
            json={"narUrl": out.nar_url, "fileHash": out.file_hash},
        )
        assert r.status_code == 200, r.text
        return str(r.json()["url"])

    def put(self, url: str, data: bytes, checksum: bytes | None = None) -> Any:
        digest = checksum if checksum is not None else hashlib.sha256(data).digest()
        parts = urlsplit(url)
        return self.client.put(
            f"{parts.path}?{parts.query}",
            content=data,
            headers={"x-amz-checksum-sha256": base64.b64encode(digest).decode()},
        )

    def upload(self, token: str, out: Output) -> None:
        r = self.put(self.upload_url(token, out), out.compressed)
        assert r.status_code == 200, r.text

    def attest(self, token: str, body: dict[str, Any]) -> Any:
        return self.client.post("/api/cache/attest", headers={"authorization": f"Bearer {token}"}, json=body)

    def attest_as(self, out: Output, repository: str, run_id: str, *, reproducer: bool = False) -> None:
        """Upload ``out`` and attest it as a CI run (or the reproducer) of ``repository``."""
        token = self.ci_token(repository, run_id=run_id, reproducer=reproducer)
        self.upload(token, out)
        r = self.attest(token, out.body())
        assert r.status_code == 200, r.text

    def promote(self, out: Output) -> None:
        """A builder and an independent reproduction agree: ``out`` enters the shared tier."""
        self.attest_as(out, "alice/hello", "1")
        self.attest_as(out, "vega-org/vega", "2", reproducer=True)
        assert self.client.get(f"/{out.hash_part}.narinfo").status_code == 200

    def push(self, credential: str, body: dict[str, Any]) -> Any:
        return self.client.post(
            "/api/cache/push", headers={"authorization": f"Bearer {credential}"}, json=body
        )

    def log_entries(self) -> list[dict[str, Any]]:
        size = int(self.client.get("/log/sth").json()["size"])
        return [json.loads(self.client.get(f"/log/entry/{i}").json()["data"]) for i in range(size)]
