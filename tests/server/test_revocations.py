"""``GET /api/revocations`` on both storage backends: the server's records, signed as changes-0.19.md says.

The signature is checked over bytes written out by hand from the spec text, with ``cryptography``
directly (not through vega.core), so a drift in the format on both sides cannot go unnoticed.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.server.cachekit import Harness, Output
from vega.server.db import Database


@pytest.fixture
def h(database: Database, tmp_path: Path) -> Harness:
    return Harness(database, tmp_path)


def shared_verifier(h: Harness) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(h.keys.shared.public.key)


def test_an_empty_list_is_signed_too(h: Harness) -> None:
    r = h.client.get("/api/revocations")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert list(body) == ["v", "revocations", "total", "at", "signature"]
    assert body["v"] == 2
    assert body["revocations"] == []
    assert body["total"] == 0
    message = f"vega-revocations:v2:{body['at']}:0:[]".encode()
    shared_verifier(h).verify(base64.b64decode(body["signature"]), message)


def test_revoked_paths_are_listed_and_signed_by_the_shared_key(h: Harness) -> None:
    out = Output("hello", b"nar bytes " * 100)
    alice = h.ci_token("alice/hello", run_id="1")
    h.upload(alice, out)
    assert h.attest(alice, out.body()).is_success
    service = h.app.state.service
    unknown = "0" * 32
    assert service.revoke(out.hash_part, 'bad "builder" é') is True
    h.clock.ms += 1000
    assert service.revoke(unknown, "never attested") is True
    h.clock.ms += 1000
    body = h.client.get("/api/revocations").json()
    entries = body["revocations"]
    assert [e["hash"] for e in entries] == [out.hash_part, unknown]  # oldest first
    first, second = entries
    assert list(first) == ["hash", "storePath", "reason", "at"]
    assert first["storePath"] == out.store_path
    assert first["reason"] == 'bad "builder" é'
    assert second["storePath"] == f"/nix/store/{unknown}"
    assert body["total"] == 2
    assert body["at"] == h.clock.ms  # signed at request time
    array = (
        f'[{{"hash":"{out.hash_part}","storePath":"{out.store_path}",'
        f'"reason":"bad \\"builder\\" é","at":{first["at"]}}},'
        f'{{"hash":"{unknown}","storePath":"/nix/store/{unknown}",'
        f'"reason":"never attested","at":{second["at"]}}}]'
    )
    message = f"vega-revocations:v2:{body['at']}:2:{array}".encode()
    shared_verifier(h).verify(base64.b64decode(body["signature"]), message)
