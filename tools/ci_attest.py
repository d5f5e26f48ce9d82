"""A simulated CI attester: build a flake output, upload its closure, attest it (protocol.md §4).

The real CI agent (``vega-attest``) is not implemented yet; this small driver does what it will do
so the whole system can run end to end on one machine (``scripts/demo``,
``tests/e2e/test_story.py``). It is honest: it really builds (``nix build``; with ``--rebuild``
Nix re-runs the builder of every derivation in the closure whose ``.drv`` is on this machine and
fails unless the bytes match what the store holds, which is what a reproducer checks), really
serialises and compresses every NAR in the closure (:func:`vega.client.push.pack_nar`:
:mod:`vega.client.narfs` and zstd from :mod:`vega.core.compression`), really uploads it through
the presigned URL and attests it with a GitHub Actions OIDC token minted from the job's token
service (:func:`vega.client.github.request_actions_token`). References and deriver come from
``nix path-info --json``.

It reads the job's environment exactly as a GitHub Actions step would see it; with a
``vega-server serve --dev`` control plane, ``vega-server dev-ci-token`` prints it::

    eval "$(vega-server dev-ci-token --url http://127.0.0.1:8080 --repo alice/hello --sha <40 hex>)"
    python -m tools.ci_attest path:./flake#default --attr packages.x86_64-linux.default

``ACTIONS_ID_TOKEN_REQUEST_URL``, ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` (the token service),
``VEGA_URL`` (the control plane, also the token's audience) and ``GITHUB_REPOSITORY`` (for the
output only: the server takes the tenant from the token). One line per attested path on stdout
(``--json``: one JSON object per path with the server's promotion decision).

Run from the repository root: ``python -m tools.ci_attest --help``.

Spec: protocol.md §4.1-§4.3 (upload-url, PUT, attest body), §10 (OIDC); agent.md §6.2.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

import httpx2

from vega.client.github import request_actions_token
from vega.client.http import Http, HttpLimits
from vega.client.nix import Nix, PathInfo, SubprocessRunner
from vega.client.push import pack_nar
from vega.client.upload import UploadClient
from vega.core.api import AttestBody, AttestResult
from vega.core.storepath import StorePath
from vega.errors import VegaError

__all__ = ["attest_installable", "main"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _order(closure: Sequence[PathInfo]) -> list[PathInfo]:
    """Dependencies before the paths that refer to them (a builder uploads leaves first)."""
    by_path = {info.path.absolute: info for info in closure}
    done: dict[str, PathInfo] = {}

    def visit(info: PathInfo, seen: frozenset[str]) -> None:
        key = info.path.absolute
        if key in done or key in seen:
            return
        for ref in info.references:
            dep = by_path.get(ref.absolute)
            if dep is not None and dep is not info:
                visit(dep, seen | {key})
        done[key] = info

    for info in sorted(closure, key=lambda i: i.path.absolute):
        visit(info, frozenset())
    return list(done.values())


def attest_installable(
    installable: str,
    environ: Mapping[str, str],
    *,
    attr: str | None = None,
    rebuild: bool = False,
    nix_env: Mapping[str, str] | None = None,
) -> list[tuple[StorePath, AttestResult]]:
    """Build ``installable``, upload every path of its closure and attest it as the job in ``environ``.

    Args:
        installable: a flake installable, e.g. ``path:/src/flake#default``.
        environ: the CI job's environment (token service, ``VEGA_URL``).
        attr: the flake attribute sent with the top-level outputs (provenance, protocol.md §4.2).
        rebuild: rebuild the closure's derivations with ``--rebuild`` (the reproducer's check that a
            rebuild gives the same bytes; sources without a deriver are only re-hashed).
        nix_env: the environment nix runs in (``None``: inherit).

    Returns:
        ``(store path, the server's answer)`` per attested path, dependencies first.

    Raises:
        VegaError: the build, the token, an upload or an attestation failed.
    """
    for name in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "VEGA_URL"):
        if not environ.get(name):
            raise VegaError(
                f"{name} is not set: not inside a (simulated) CI job",
                next_steps=['eval "$(vega-server dev-ci-token --url URL --repo OWNER/REPO --sha SHA)"'],
            )
    url = environ["VEGA_URL"].rstrip("/")

    def forward(line: str) -> None:
        sys.stderr.write(line + "\n")

    runner = SubprocessRunner(forward, env=nix_env)
    builder = Nix(runner, options=("--rebuild",) if rebuild else ())
    outputs = builder.build(installable)
    closure = _order(Nix(runner).closure(outputs))
    top = {p.absolute for p in outputs}
    if rebuild:  # the dependencies too: every path whose derivation this machine has
        for info in closure:
            drv = info.deriver
            if info.path.absolute not in top and drv is not None and Path(drv.absolute).exists():
                rebuilt = {p.absolute for p in builder.build(drv.absolute)}
                if info.path.absolute not in rebuilt:
                    raise VegaError(f"rebuilding {drv.absolute} did not give {info.path.absolute}")
    results: list[tuple[StorePath, AttestResult]] = []
    with httpx2.Client(timeout=120.0) as client:
        http = Http(client, HttpLimits())
        minted: list[str] = []

        def bearer(force: bool) -> str:
            if force or not minted:
                minted[:] = [
                    request_actions_token(
                        http,
                        environ["ACTIONS_ID_TOKEN_REQUEST_URL"],
                        environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"],
                        url,
                    )
                ]
            return minted[0]

        upload = UploadClient(client, url, bearer, now_ms=_now_ms)
        with tempfile.TemporaryDirectory(prefix="vega-ci-attest-") as spool:
            for info in closure:
                packed = pack_nar(info.path.absolute, Path(spool))
                try:
                    if packed.nar_hash != info.nar_hash or packed.nar_size != info.nar_size:
                        raise VegaError(f"{info.path.absolute}: the NAR read back differs from nix's NarHash")
                    upload.upload(packed.file_hash, packed.body)
                    body = AttestBody(
                        store_path=info.path,
                        file_hash=packed.file_hash,
                        file_size=packed.file_size,
                        nar_hash=packed.nar_hash,
                        nar_size=packed.nar_size,
                        references=info.references,
                        deriver=info.deriver,
                        attr=attr if info.path.absolute in top else None,
                    )
                    results.append((info.path, upload.attest(body)))
                finally:
                    packed.discard()
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.ci_attest",
        description="Simulated CI attester: build, upload the closure, attest with the job's OIDC token.",
    )
    p.add_argument("installable", help="flake installable, e.g. path:./flake#default")
    p.add_argument("--attr", help="flake attribute sent with the top-level outputs")
    p.add_argument("--rebuild", action="store_true", help="rebuild and compare (a reproducer's check)")
    p.add_argument("--json", action="store_true", help="one JSON object per attested path")
    return p


def main(argv: Sequence[str], environ: Mapping[str, str], out: TextIO = sys.stdout) -> int:
    """Run the driver; return the exit code (0 when every attestation was accepted)."""
    args = _parser().parse_args(list(argv))
    try:
        results = attest_installable(args.installable, environ, attr=args.attr, rebuild=args.rebuild)
    except VegaError as e:
        sys.stderr.write(f"error: {e.message}\n")
        for step in e.next_steps:
            sys.stderr.write(f"  {step}\n")
        return 1
    who = environ.get("GITHUB_REPOSITORY", "?")
    for path, result in results:
        d = result.decision.shared
        if args.json:
            out.write(json.dumps({"storePath": path.absolute, "attester": who, **result.to_json()}) + "\n")
            continue
        shared = "promoted to the shared tier" if result.published_shared else "not promoted"
        out.write(
            f"  {who}: attested {path.absolute}\n"
            f"      decision: {d.reason} ({d.distinct_tenants} tenant(s) agree, "
            f"{d.vega_reproductions} reproduction(s)); {shared}\n"
        )
    return 0


if __name__ == "__main__":
    import os

    raise SystemExit(main(sys.argv[1:], dict(os.environ)))
