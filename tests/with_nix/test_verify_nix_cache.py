"""Differential: `vega verify` reads a binary cache written by the real `nix copy` (every compression).

The narinfo, its signature (by `nix store sign`) and the compressed NAR all come from Nix; the
verifier must parse the narinfo, check the signature under the user's key and re-hash the NAR.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.conftest import NixRunner
from vega.client.http import HttpLimits
from vega.client.logstate import LogState
from vega.client.verify import VerifyContext, VerifyOptions, verify_target
from vega.core.signing import parse_public_key


@pytest.mark.nix
@pytest.mark.parametrize("compression", ["xz", "zstd", "bzip2", "none"])
def test_verify_reads_what_nix_copy_writes(nix: NixRunner, tmp_path: Path, compression: str) -> None:
    src = tmp_path / "thing"
    src.mkdir()
    (src / "file").write_text("hello from a real store path\n" * 50)
    (src / "run").write_text("#!/bin/sh\n")
    (src / "run").chmod(0o755)
    path = nix.add(src)
    secret = tmp_path / "sk"
    secret.write_bytes(nix.run("nix", "key", "generate-secret", "--key-name", "nix-test-1"))
    public = nix.run("nix", "key", "convert-secret-to-public", input=secret.read_bytes()).decode().strip()
    nix.run("nix", "store", "sign", "-k", str(secret), path)
    cache = tmp_path / "cache"
    nix.run("nix", "copy", "--to", f"file://{cache}?compression={compression}", path)

    def serve(request: httpx2.Request) -> httpx2.Response:
        file = cache / request.url.path.lstrip("/")
        if not file.is_file():
            return httpx2.Response(404)
        return httpx2.Response(200, content=file.read_bytes())

    key = parse_public_key(public)
    ctx = VerifyContext(
        client=httpx2.Client(transport=httpx2.MockTransport(serve)),
        base_url="https://cache.test",
        trusted_keys={key.name: key},
        state=LogState(tmp_path / "state"),
        limits=HttpLimits(),
        sleep=lambda s: None,
    )
    report = verify_target(ctx, path, VerifyOptions(allow_signature_only=True))
    assert report.signature_ok, report.checks
    assert report.scope == "upstream"
    assert report.nar is not None
    assert report.nar.ok, report.nar.detail
    assert report.nar.detail == report.nar_hash
    assert report.exit_ok
