"""``vega verify`` and the original's signed revocation list (changes-0.19.md, issue 14).

Against a control plane without our log lookup (``legacy``) the list decides the revocation check
of a shared build, authenticated only by the pinned shared key; "unknown" (unreachable,
malformed, unsigned, badly signed, stale, truncated) never passes. With our log the proven check
stands and the list is not asked. A revoked path fails in every scope, tenant included; the exit
code and the JSON (``verified``, ``exitOk``) agree.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import Response

from tests.client.conftest import BASE, SHARED, TENANT, UPSTREAM, Build, CacheServer
from vega.cli.commands.verify import execute
from vega.cli.main import build_parser
from vega.client.verify import VerifyOptions, VerifyReport, verify_target
from vega.core.narinfo import fingerprint
from vega.core.revocations import (
    MAX_AGE_MS,
    Revocation,
    canonical_array,
    sign_revocation_list,
    signing_message,
)
from vega.core.signing import format_public_key, generate_secret_key, sign

ENV = {"NO_COLOR": "1"}
IMPOSTOR = generate_secret_key("vega-cache-1", b"\x0e" * 32)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CacheServer]:
    s = CacheServer(tmp=tmp_path)
    with s.test_client:
        yield s


def promoted(server: CacheServer, name: str = "hello") -> Build:
    build = server.add(name)
    server.filler(5)
    server.promote(build)
    server.filler(2, start=5)
    return build


def revocation(build: Build, **over: Any) -> Revocation:
    fields: dict[str, Any] = {
        "hash": build.hash,
        "store_path": build.path.absolute,
        "reason": "compromised builder",
        "at": 1,
    }
    return Revocation(**(fields | over))


def check(report: VerifyReport, name: str = "revocation") -> tuple[bool, str]:
    c = next(c for c in report.checks if c.name == name)
    return c.ok, c.detail


def cli(server: CacheServer, *argv: str, trusted: tuple[Any, ...] = (SHARED.public,)) -> tuple[int, str, str]:
    args = build_parser().parse_args(["verify", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = execute(args, server.context(trusted=trusted), ENV, out, err)
    return code, out.getvalue(), err.getvalue()


def cli_json(server: CacheServer, *argv: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli(server, *argv, "--json", **kw)
    obj = json.loads(out)
    assert code == (0 if obj["exitOk"] else 1)  # the exit code and the JSON agree
    return code, obj


# -- legacy control plane: the list decides ---------------------------------------------------------


def test_legacy_clean_list_verifies(server: CacheServer) -> None:
    build = promoted(server)
    server.legacy = True
    report = verify_target(server.context(), build.hash)
    assert report.exit_ok
    ok, detail = check(report)
    assert ok
    assert "not in the signed revocation list (0 entries)" in detail
    assert "/api/revocations" in server.recorder.paths


def test_legacy_revoked_by_the_list_fails_with_the_revocation_shown(server: CacheServer) -> None:
    build = promoted(server)
    server.legacy = True
    server.revoked_list.append(revocation(build))
    report = verify_target(server.context(), build.hash)
    assert check(report) == (False, "revoked: compromised builder (signed revocation list)")
    assert not report.verified
    assert not report.exit_ok
    code, obj = cli_json(server, build.hash)
    assert code == 1
    assert obj["verified"] is False
    assert obj["exitOk"] is False
    assert obj["revocation"] == {"status": "revoked", "detail": "revoked: compromised builder"}
    assert obj["transparency"]["revoked"] is True
    code, out, err = cli(server, build.hash)
    assert code == 1
    assert "Not revoked:" in out
    assert "FAIL  revoked: compromised builder (signed revocation list)" in out
    assert "Verification failed" in err


def _tamper(server: CacheServer, kind: str, build: Build) -> None:
    fresh = server.clock.ms
    entries = [revocation(build, hash="x" * 32, store_path="/nix/store/" + "x" * 32 + "-other")]
    good = sign_revocation_list(SHARED, entries, fresh)
    bodies: dict[str, Callable[[], object]] = {
        "stale": lambda: sign_revocation_list(SHARED, entries, fresh - MAX_AGE_MS - 60_000),
        "truncated": lambda: {**good, "total": 2, "signature": _signed(good, total=2)},
        "unsigned": lambda: {k: v for k, v in good.items() if k != "signature"},
        "badly signed": lambda: {
            **good,
            "signature": sign_revocation_list(IMPOSTOR, entries, fresh)["signature"],
        },
        "signed by the cache's tenant key": lambda: sign_revocation_list(TENANT, entries, fresh),
        "malformed": lambda: {**good, "revocations": "none"},
    }
    if kind == "unreachable":
        server.revocations_body = lambda: Response("down", status_code=500)  # type: ignore[method-assign]
    else:
        server.revocations_body = bodies[kind]  # type: ignore[method-assign]


def _signed(body: dict[str, object], *, total: int) -> str:
    """A valid shared-key signature over ``body``'s array with another ``total`` (a signing server's lie)."""
    message = signing_message(int(body["at"]), total, canonical_array(body["revocations"]))  # type: ignore[call-overload, arg-type]
    return sign(SHARED, message).partition(":")[2]


WHY = {
    "stale": "revocation list is stale",
    "truncated": "revocation list is truncated: total 2, 1 entries served",
    "unsigned": "revocation list is unsigned",
    "badly signed": "revocation list signature does not verify under vega-cache-1",
    "signed by the cache's tenant key": "revocation list signature does not verify under vega-cache-1",
    "malformed": "revocation list is malformed",
    "unreachable": "revocation list unreachable (HTTP 500)",
}


@pytest.mark.parametrize("kind", sorted(WHY))
def test_legacy_unknown_list_is_never_clean(server: CacheServer, kind: str) -> None:
    build = promoted(server)
    server.legacy = True
    _tamper(server, kind, build)
    report = verify_target(server.context(), build.hash)
    ok, detail = check(report)
    assert not ok
    assert WHY[kind] in detail
    assert detail.endswith("a revocation cannot be ruled out")
    assert not report.verified
    assert not report.exit_ok
    assert report.revocation is not None
    assert report.revocation.status == "unknown"
    code, obj = cli_json(server, build.hash)
    assert (code, obj["verified"], obj["exitOk"]) == (1, False, False)


def test_legacy_list_is_authenticated_only_by_the_pinned_key(server: CacheServer) -> None:
    """A list signed by the key the user pinned verifies; the same list under another pin does not."""
    build = promoted(server)
    server.legacy = True
    server.revocations_body = lambda: sign_revocation_list(IMPOSTOR, [], server.clock.ms)  # type: ignore[method-assign]
    report = verify_target(server.context(trusted=(SHARED.public,)), build.hash)
    assert not report.exit_ok
    assert "does not verify under vega-cache-1" in check(report)[1]


def test_a_log_revocation_is_not_softened_by_a_clean_list(server: CacheServer) -> None:
    build = promoted(server)
    server.revoke(build)
    server.legacy = True
    report = verify_target(server.context(), build.hash)
    ok, detail = check(report)
    assert not ok
    assert detail.startswith("revoked in the log")


# -- our log: the proven check stands ----------------------------------------------------------------


def test_with_our_log_the_list_is_not_asked(server: CacheServer) -> None:
    build = promoted(server)
    report = verify_target(server.context(), build.hash)
    assert report.exit_ok
    ok, detail = check(report)
    assert ok
    assert detail.startswith("no revocation in the log")  # (the signed event list, ADR 0012)
    assert "/api/revocations" not in server.recorder.paths
    assert report.revocation is None


# -- every other scope: a revoked path fails ---------------------------------------------------------


def test_a_revoked_tenant_build_fails(server: CacheServer) -> None:
    build = server.add("tenant-thing", key=TENANT, tenant=True)
    trusted = (SHARED.public, TENANT.public)
    assert verify_target(server.context(trusted=trusted), build.hash).tenant_ok
    server.revoked_list.append(revocation(build, fingerprint=fingerprint(build.info)))
    report = verify_target(server.context(trusted=trusted), build.hash)
    assert report.scope == "scoped"
    assert report.tenant_scope
    assert not report.tenant_ok
    assert not report.exit_ok
    assert check(report) == (False, "revoked: compromised builder (signed revocation list)")
    code, obj = cli_json(server, build.hash, trusted=trusted)
    assert code == 1
    assert obj["exitOk"] is False
    code, out, _ = cli(server, build.hash, trusted=trusted)
    assert code == 1
    assert "FAIL  revoked: compromised builder" in out


def test_a_revocation_of_another_binding_does_not_fail_a_tenant_build(server: CacheServer) -> None:
    build = server.add("tenant-thing", key=TENANT, tenant=True)
    server.revoked_list.append(revocation(build, fingerprint="1;/nix/store/other"))
    report = verify_target(server.context(trusted=(SHARED.public, TENANT.public)), build.hash)
    assert report.tenant_ok
    assert check(report)[0]


def test_a_revoked_upstream_path_fails_even_signature_only(server: CacheServer) -> None:
    build = server.add("mirrored", key=UPSTREAM)
    allow = VerifyOptions(allow_signature_only=True)
    ctx = server.context(trusted=(SHARED.public, UPSTREAM.public))
    assert verify_target(ctx, build.hash, allow).exit_ok
    server.revoked_list.append(revocation(build))
    ctx = server.context(trusted=(SHARED.public, UPSTREAM.public))  # a new run fetches the list again
    report = verify_target(ctx, build.hash, allow)
    assert not report.signature_only_ok
    assert not report.exit_ok
    code, obj = cli_json(
        server, build.hash, "--allow-signature-only", trusted=(SHARED.public, UPSTREAM.public)
    )
    assert (code, obj["exitOk"]) == (1, False)


def test_an_unknown_list_is_shown_but_does_not_fail_a_tenant_build(server: CacheServer) -> None:
    build = server.add("tenant-thing", key=TENANT, tenant=True)
    server.revocations_body = lambda: {"v": 2}  # type: ignore[method-assign]
    report = verify_target(server.context(trusted=(SHARED.public, TENANT.public)), build.hash)
    assert report.tenant_ok
    c = next(c for c in report.checks if c.name == "revocation")
    assert (c.ok, c.skipped) == (False, True)
    assert report.to_json()["revocation"]["status"] == "unknown"  # type: ignore[index]


def test_without_a_pinned_shared_key_a_claimed_revocation_still_fails(server: CacheServer) -> None:
    """Issue 12: a user who pinned only the tenant key still sees the tenant path revoked."""
    build = server.add("tenant-thing", key=TENANT, tenant=True)
    other = server.add("tenant-other", b"other", key=TENANT, tenant=True)
    server.revoked_list.append(revocation(build))
    report = verify_target(server.context(trusted=(TENANT.public,)), build.hash)
    assert "/api/revocations" in server.recorder.paths
    assert report.revocation is not None
    assert report.revocation.status == "revoked"
    assert "no pinned vega-cache-1 key" not in report.revocation.detail
    assert "signature is not checked" in report.revocation.detail
    assert not report.exit_ok
    assert not verify_target(
        server.context(trusted=(TENANT.public,)), build.hash, VerifyOptions(allow_signature_only=True)
    ).exit_ok
    clean = verify_target(server.context(trusted=(TENANT.public,)), other.hash)
    assert clean.revocation is not None
    assert clean.revocation.status == "unknown"  # an unauthenticated list never proves a build clean
    assert "no pinned vega-cache-1 key" in clean.revocation.detail
    assert clean.exit_ok


def test_public_key_flag_pins_the_shared_key(server: CacheServer) -> None:
    build = promoted(server)
    server.legacy = True
    server.revoked_list.append(revocation(build))
    code, out, _ = cli(server, build.hash, "--public-key", format_public_key(SHARED.public), trusted=())
    assert code == 1
    assert "revoked: compromised builder" in out


def test_the_list_is_fetched_once_per_run_and_judged_per_build(server: CacheServer) -> None:
    from vega.client.verify import verify_many

    builds = [server.add(f"t{n}", str(n).encode(), key=TENANT, tenant=True) for n in range(3)]
    server.revoked_list.append(revocation(builds[1]))
    ctx = server.context(trusted=(SHARED.public, TENANT.public), base=f"{BASE}/tenant/alice/hello")
    reports = verify_many(ctx, [b.hash for b in builds])
    assert [r.exit_ok for r in reports] == [True, False, True]
    assert server.recorder.paths.count("/api/revocations") == 1


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (None, "revocation list unreachable: GET http://cp.test/api/revocations failed"),
        (b"<html>", "revocation list is malformed: not JSON"),
    ],
)
def test_fetch_without_a_run_cache_and_its_failures(
    server: CacheServer, answer: bytes | None, why: str
) -> None:
    import httpx2

    from vega.client.http import Http, HttpLimits
    from vega.client.revocations import fetch_revocation_status

    def handler(request: httpx2.Request) -> httpx2.Response:
        if answer is None:
            raise httpx2.ConnectError("refused", request=request)
        return httpx2.Response(200, content=answer)

    build = server.add("x")
    http = Http(httpx2.Client(transport=httpx2.MockTransport(handler)), HttpLimits(tries=1))
    got = fetch_revocation_status(http, "http://cp.test", SHARED.public, build.info, 0)
    assert got.status == "unknown"
    assert got.detail.startswith(why)


@pytest.mark.parametrize("status", [404, 405, 501])
def test_an_original_control_plane_without_a_list_relies_on_its_proven_log_scan(
    server: CacheServer, status: int
) -> None:
    """A 0.18 original has no list at all: its complete, proven log scan rules a revocation out."""
    build = promoted(server)
    server.legacy = True
    server.revocations_body = lambda: Response("not found", status_code=status)  # type: ignore[method-assign]
    report = verify_target(server.context(), build.hash)
    ok, detail = check(report)
    assert ok, detail
    assert detail.endswith(f"no revocation list on this control plane (HTTP {status})")
    assert report.exit_ok
    assert report.revocation is not None
    assert report.revocation.status == "unknown"  # reported as unknown, never as clean
    assert not report.revocation.offered
