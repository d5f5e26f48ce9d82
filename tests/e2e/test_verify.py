"""Issue 5 end to end: ``vega verify`` (the CLI's execute path) against the real control plane in process.

The story: a CI build attested by one tenant is verifiable only as a tenant (scoped, signature-only,
said plainly); after a reproduction promotes it, a full verify passes every check in at most 5
requests; then each piece is tampered with (narinfo, NAR, log entry, checkpoint), the log is rolled
back and forked, and the build is revoked — each fails with its own message and exit code 1
(cli.md §10.5, §18).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.client.conftest import Recorder
from tests.e2e.conftest import loopback_socket, serving
from tests.server.cachekit import PUBLIC_URL, Harness, Output
from vega.cli.commands.verify import execute
from vega.cli.main import build_parser, main
from vega.client.http import HttpLimits
from vega.client.logstate import LogState
from vega.client.verify import VerifyContext
from vega.core.signing import PublicKey, format_public_key
from vega.server.db import open_database

ENV: dict[str, str] = {"NO_COLOR": "1"}


@dataclass
class Result:
    code: int
    out: str
    err: str


def squeeze(text: str) -> str:
    """Runs of spaces as one (key/value rows are padded)."""
    return re.sub(" +", " ", text)


class World:
    """One control plane, one client state directory, and the CLI."""

    def __init__(self, tmp: Path, name: str = "cp") -> None:
        self.tmp = tmp
        self.h = Harness(open_database(f"sqlite:///{tmp}/{name}.db"), tmp / name)
        self.recorder = Recorder(self.h.client._transport)
        self.client = httpx2.Client(transport=self.recorder, base_url=PUBLIC_URL)
        self.state = LogState(tmp / "state")
        self.shared: PublicKey = self.h.keys.shared.public

    def switch_to(self, other: World) -> None:
        """Point the client at another control plane (same keys), keeping its memory."""
        self.recorder.inner = other.h.client._transport

    def verify(
        self, *argv: str, trusted: tuple[PublicKey, ...] | None = None, url: str = PUBLIC_URL
    ) -> Result:
        args = build_parser().parse_args(["verify", *argv, "--url", url])
        keys = (self.shared,) if trusted is None else trusted
        ctx = VerifyContext(
            client=self.client,
            base_url=url,
            trusted_keys={k.name: k for k in keys},
            state=self.state,
            limits=HttpLimits(),
            sleep=lambda s: None,
        )
        out, err = io.StringIO(), io.StringIO()
        self.recorder.reset()
        code = execute(args, ctx, ENV, out, err)
        return Result(code, out.getvalue(), err.getvalue())

    def attest(self, out: Output, repository: str, run_id: str, *, reproducer: bool = False) -> None:
        self.h.attest_as(out, repository, run_id, reproducer=reproducer)

    def promote(self, out: Output) -> None:
        self.h.promote(out)


HELLO = Output("hello", b"nix-archive-1 hello world " * 200)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    with w.h.client:
        yield w


def test_tenant_build_is_scoped_and_said_plainly(world: World) -> None:
    world.attest(HELLO, "alice/hello", "1")
    res = world.verify(HELLO.hash_part, "--trust-fetched-key", trusted=())
    assert res.code == 0, res.out + res.err
    assert (
        "not in the shared cache; verifying the tenant build at http://127.0.0.1:8321/tenant/alice/hello"
        in res.out
    )
    assert "warning: using vega-alice-hello-1 fetched, not pinned" in res.err
    assert "Verified in your tenant tier" in res.out
    assert "tenant scope is a self check, not third-party trust" in res.out
    assert "signature-only: scoped builds are not in the global transparency log" in res.out
    no_nar = world.verify(HELLO.hash_part, "--no-nar", "--trust-fetched-key", trusted=())
    assert no_nar.code == 1
    assert "signature-only" in no_nar.err
    assert "--allow-signature-only" in no_nar.out
    assert (
        world.verify(
            HELLO.hash_part, "--no-nar", "--allow-signature-only", "--trust-fetched-key", trusted=()
        ).code
        == 0
    )


def test_promoted_build_passes_every_check_within_five_requests(world: World) -> None:
    world.promote(HELLO)
    res = world.verify(HELLO.store_path)
    assert res.code == 0, res.out + res.err
    assert res.out.startswith(f"✦ Verifying {HELLO.store_path}\n")
    for line in (
        "Signature (vega-cache-1): ok shared",
        "Signed tree head:",
        "In transparency log: ok entry #",
        "(one lookup: ",
        "Inclusion proof:",
        "NAR bytes:",
        "✦ Verified: signed, in the public log, and the bytes match.",
    ):
        assert line in squeeze(res.out)
    assert len(world.recorder.paths) <= 5
    assert world.recorder.paths[1] == f"/log/lookup/{HELLO.hash_part}"
    again = world.verify(HELLO.hash_part, "--json")
    obj = json.loads(again.out)
    assert obj["verified"] is True
    assert obj["exitOk"] is True
    assert obj["transparency"]["found"] is True
    assert [c["name"] for c in obj["checks"]] == [
        "store-path",
        "signature",
        "checkpoint",
        "promotion",
        "revocation",
        "nar",
    ]
    assert len(world.recorder.paths) <= 5


def _fails(res: Result, message: str) -> None:
    assert res.code == 1
    assert "Verification failed. Do not trust this build." in res.err
    assert squeeze(message) in squeeze(res.out + res.err)


def test_tampered_narinfo(world: World) -> None:
    world.promote(HELLO)
    world.recorder.tamper[f"/{HELLO.hash_part}.narinfo"] = lambda b: b.replace(b"NarSize: ", b"NarSize: 9")
    _fails(world.verify(HELLO.hash_part), "Signature (vega-cache-1): FAIL")


def test_tampered_nar(world: World) -> None:
    world.promote(HELLO)
    world.recorder.tamper["/nar/"] = lambda b: b[:-4]
    _fails(world.verify(HELLO.hash_part), "NAR bytes:         FAIL  NAR stream error")


def test_tampered_log_entry(world: World) -> None:
    world.promote(HELLO)

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        for e in obj["entries"]:
            e["data"] = e["data"].replace('"at":', '"at":9')
        return json.dumps(obj).encode()

    world.recorder.tamper["/log/lookup/"] = change
    _fails(world.verify(HELLO.hash_part), "Inclusion proof:   FAIL")


def test_tampered_checkpoint(world: World) -> None:
    world.promote(HELLO)

    def change(body: bytes) -> bytes:
        obj = json.loads(body)
        obj["sth"]["rootHash"] = "0" * 64
        return json.dumps(obj).encode()

    world.recorder.tamper["/log/lookup/"] = change
    _fails(world.verify(HELLO.hash_part), "checkpoint not trusted: neither the checkpoint note nor the STH")


def test_rolled_back_log(world: World, tmp_path: Path) -> None:
    world.promote(HELLO)
    world.attest(Output("other", b"x" * 300), "alice/hello", "9")
    assert world.verify(HELLO.hash_part).code == 0
    older = World(tmp_path, "older")
    with older.h.client:
        older.promote(HELLO)
        world.switch_to(older)
        res = world.verify(HELLO.hash_part)
    _fails(res, "error: log fork or rollback detected: ")
    assert "older than the remembered size" in res.err


def test_forked_log(world: World, tmp_path: Path) -> None:
    world.promote(HELLO)
    assert world.verify(HELLO.hash_part).code == 0
    fork = World(tmp_path, "fork")
    with fork.h.client:
        fork.attest(Output("sneaky", b"y" * 300), "mallory/x", "7")
        fork.promote(HELLO)
        world.switch_to(fork)
        res = world.verify(HELLO.hash_part)
    _fails(res, "error: log fork or rollback detected: ")
    assert "is not consistent with the remembered size" in res.err


def test_revoked_build_served_from_a_stale_mirror(world: World) -> None:
    world.promote(HELLO)
    stale = world.h.client.get(f"/{HELLO.hash_part}.narinfo").content
    assert world.h.app.state.service.revoke(HELLO.hash_part, "compromised builder") is True
    world.recorder.serve[f"/{HELLO.hash_part}.narinfo"] = (200, stale)
    res = world.verify(HELLO.hash_part)
    _fails(res, "Not revoked:")
    assert "revoked in the log" in res.out


def test_closure_of_several_targets(world: World) -> None:
    dep = Output("dep", b"dep bytes " * 50)
    top = Output("top", b"top bytes " * 50, references=[dep.base])
    world.promote(dep)
    world.promote(top)
    res = world.verify(top.hash_part, "--recursive")
    assert res.code == 0, res.out + res.err
    assert f"ok    {dep.store_path}" in res.out
    assert "✦ Verified 2 of 2 paths" in res.out
    bad = world.verify(top.hash_part, "1" * 32)
    assert bad.code == 1
    assert f"FAIL  {'1' * 32}  no build found for {'1' * 32} (HTTP 404)" in bad.out


def test_real_cli_over_a_socket(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """`vega verify` as a user runs it: real httpx2 client, uvicorn on loopback, state in XDG_STATE_HOME."""
    world.promote(HELLO)
    sock, url = loopback_socket()
    with serving(world.h.app, sock) as paths:
        key = format_public_key(world.shared)
        assert main(["verify", HELLO.store_path, "--url", url + "/", "--public-key", key]) == 0
        out = capsys.readouterr().out
        assert "✦ Verified: signed, in the public log, and the bytes match." in out
        assert len(paths) <= 5
        state = Path(os.environ["XDG_STATE_HOME"]) / "vega" / "logs"
        assert len(list(state.glob("*.json"))) == 1
        assert main(["verify", HELLO.hash_part, "--url", url, "--public-key", key, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["verified"] is True


def test_shared_key_on_a_tenant_only_build_says_it_is_not_promoted(world: World) -> None:
    world.attest(HELLO, "alice/hello", "1")
    res = world.verify(HELLO.hash_part, "--public-key", format_public_key(world.shared), trusted=())
    assert res.code == 1, res.out + res.err
    assert "Signature (vega-cache-1): FAIL shared" in squeeze(res.out)
    assert "not promoted to the shared tier: only a tenant signature exists" in res.out
    assert "log lookup failed" not in res.out + res.err
    assert "Verification failed. Do not trust this build." in res.err
    assert not any(p.startswith("/tenant/") and "/log/" in p for p in world.recorder.paths)


def test_a_shared_key_fetched_from_api_info_only_with_the_flag(world: World) -> None:
    """Issue 12 over loopback: the control plane's /api/info key is never trusted unasked; asked,
    it is used and said to be fetched, not pinned, once for a whole closure (text and JSON)."""
    dep = Output("api-dep", b"dep bytes " * 50)
    top = Output("api-top", b"top bytes " * 50, references=[dep.base])
    world.promote(dep)
    world.promote(top)
    sock, url = loopback_socket()
    with serving(world.h.app, sock) as paths, httpx2.Client() as client:

        def verify(*argv: str) -> Result:
            args = build_parser().parse_args(["verify", *argv, "--url", url])
            ctx = VerifyContext(client=client, base_url=url, trusted_keys={}, state=world.state)
            out, err = io.StringIO(), io.StringIO()
            return Result(execute(args, ctx, ENV, out, err), out.getvalue(), err.getvalue())

        unasked = verify(top.hash_part)
        assert unasked.code == 1
        assert f"{url} publishes its shared key at {url}/api/info" in unasked.err
        assert "GET /api/info" not in paths
        one = verify(top.hash_part, "--trust-fetched-key")
        assert one.code == 0, one.out + one.err
        assert one.err.count("fetched, not pinned") == 1
        assert f"served by {url}/api/info" in one.err
        paths.clear()
        closure = verify(top.hash_part, "--trust-fetched-key", "--recursive", "--json")
        assert closure.code == 0, closure.err
        assert [json.loads(x)["signature"]["keySource"] for x in closure.out.splitlines()] == [
            "fetched, not pinned"
        ] * 2
        assert closure.err.count("fetched, not pinned") == 1
        assert paths.count("GET /api/info") == 1
