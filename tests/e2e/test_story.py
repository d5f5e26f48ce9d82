"""Issue 5's acceptance test: the whole system end to end on one machine, then every piece tampered with.

The control plane is the real ``vega-server serve --dev`` (a subprocess on loopback, SQLite and a
local NAR directory in a temporary data directory, settling window 0, a configured reproducer
workflow). Against it, as a user and as CI would:

1. ``vega login`` (development mode approves without a browser), ``vega whoami``;
2. ``vega push`` of a test flake's closure (scripts/demo-flake, fresh seed: a real build);
3. the real ``nix copy --from <url>/tenant/owner:<id>`` with the key push printed, into a fresh store;
4. ``vega verify`` in the owner namespace: scoped, signature-only, and it says so;
5. the real CI agents (tokens from the server's dev OIDC issuer): ``vega-attest`` as two
   repository owners' jobs, then ``vega-reproduce --from-queue`` as the reproducer workflow,
   rebuilding in its own chroot store from the committed flake (a local git repository standing
   in for ``github:<owner>/<repo>``); the decisions go insufficient -> awaiting-repro ->
   agreement, and the build is promoted;
6. a full ``vega verify`` with the shared key passes every check (the whole closure too);
7. the real ``nix copy --from <url>`` (the shared root) with the shared key, into a fresh store.

Then the tamper half, each with exit code 1, "Verification failed. Do not trust this build." and its
own message: the narinfo, the NAR, a log entry and the checkpoint are rewritten in flight (the
``Recorder`` transport of tests/client/conftest.py, here over real HTTP), and the client that
remembered the log is shown a rolled-back log (the server restored from an older backup) and a
forked one (that backup grown with other entries): ``log fork or rollback detected``.

Spec: issue 5; cli.md §9 (push), §10 (verify), §10.5 (exit codes); protocol.md §4 (attest).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from tests.client.conftest import Recorder
from tests.conftest import NixRunner
from tests.e2e.agents import ServerProcess, app_repo_commit
from tests.e2e.test_agents import attest_in_process
from tests.e2e.test_verify import Result, squeeze
from vega.cli.agent import reproduce_main
from vega.cli.commands.verify import execute
from vega.cli.main import build_parser, main
from vega.client.http import HttpLimits
from vega.client.logstate import LogState, default_state_dir
from vega.client.verify import VerifyContext
from vega.core.signing import parse_public_key

pytestmark = [pytest.mark.nix, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent.parent
FLAKE = ROOT / "scripts" / "demo-flake"
FAILED = "Verification failed. Do not trust this build."


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[[Path], ServerProcess]]:
    started: list[ServerProcess] = []

    def start(data_dir: Path) -> ServerProcess:
        server = ServerProcess(data_dir, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    code = main(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def nix_copy(nix: NixRunner, tmp: Path, name: str, url: str, key: str, path: str) -> Path:
    """The real nix as a fresh client: its own store and its own (empty) narinfo cache."""
    store = tmp / f"store-{name}"
    env = dict(nix.env, XDG_CACHE_HOME=str(tmp / f"nix-cache-{name}"))
    done = subprocess.run(
        ["nix", "copy", "--from", url, "--to", str(store), "--option", "trusted-public-keys", key, path],
        env=env,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr.decode()
    return store / path.removeprefix("/")


class Buffered(httpx2.BaseTransport):
    """Real HTTP, each response read whole and its connection released (the Recorder rewrites bodies)."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        resp = self.inner.handle_request(request)
        try:
            content = resp.read()
        finally:
            resp.close()
        return httpx2.Response(resp.status_code, headers=resp.headers, content=content)

    def close(self) -> None:
        self.inner.close()


def tampered_verify(
    url: str, key: str, target: str, path_prefix: str, change: Callable[[bytes], bytes]
) -> Result:
    """``vega verify`` (the CLI's execute path) over real HTTP with one kind of response rewritten."""
    transport = Buffered()
    recorder = Recorder(transport)
    recorder.tamper[path_prefix] = change
    shared = parse_public_key(key)
    with httpx2.Client(transport=recorder) as client:
        ctx = VerifyContext(
            client=client,
            base_url=url,
            trusted_keys={shared.name: shared},
            state=LogState(default_state_dir(os.environ)),
            limits=HttpLimits(),
            sleep=lambda s: None,
        )
        args = build_parser().parse_args(["verify", target, "--url", url])
        out, err = io.StringIO(), io.StringIO()
        code = execute(args, ctx, {"NO_COLOR": "1"}, out, err)
    transport.close()
    assert recorder.paths, "nothing was fetched"
    return Result(code, out.getvalue(), err.getvalue())


def fails(res: Result, *messages: str) -> None:
    assert res.code == 1, res.out + res.err
    assert FAILED in res.err
    for message in messages:
        assert squeeze(message) in squeeze(res.out + res.err), res.out + res.err


def change_log_entry(body: bytes) -> bytes:
    obj = json.loads(body)
    for e in obj["entries"]:
        e["data"] = e["data"].replace('"at":', '"at":9')
    return json.dumps(obj).encode()


def change_checkpoint(body: bytes) -> bytes:
    obj = json.loads(body)
    obj["sth"]["rootHash"] = "0" * 64
    return json.dumps(obj).encode()


def test_issue_5_end_to_end_then_tampered(
    servers: Callable[[Path], ServerProcess],
    nix: NixRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    monkeypatch.setenv("NO_COLOR", "1")
    server = servers(tmp_path / "data")
    shared = server.shared_key
    assert shared.startswith("vega-cache-1:")

    # 1. login, whoami
    assert cli(capsys, "login", "--url", server.url).code == 0
    who = cli(capsys, "whoami", "--json")
    assert who.code == 0
    namespace = json.loads(who.out)["namespace"]
    assert namespace == "owner:1000001"

    # 2. push a fresh build of the demo flake's closure
    flake = tmp_path / "flake"
    shutil.copytree(FLAKE, flake)
    (flake / "seed.txt").write_text(f"e2e story {time.time_ns()}\n")
    installable = f"path:{flake}#default"
    pushed = cli(capsys, "push", "--json", "--no-skip-upstream", installable)
    assert pushed.code == 0, pushed.err
    events = [json.loads(line) for line in pushed.out.splitlines()]
    assert events[0]["novel"] == 2
    check = events[-1]
    assert (check["event"], check["substitutable"], check["namespace"]) == ("check", True, namespace)
    owner_url, owner_key = check["substituter"], check["publicKey"]
    assert owner_url == f"{server.url}/tenant/{namespace}"
    out_path = nix.text("nix", "path-info", installable)
    hash_part = out_path.removeprefix("/nix/store/")[:32]

    # 3. the real nix substitutes the closure from the owner namespace with the printed key
    copied = nix_copy(nix, tmp_path, "owner", owner_url, owner_key, out_path)
    assert (copied / "bin" / "hello").read_text().startswith("#!/bin/sh")

    # 4. scoped verify: signature-only, said plainly; not in the shared tier
    scoped = cli(capsys, "verify", out_path, "--url", owner_url, "--public-key", owner_key)
    assert scoped.code == 0, scoped.out + scoped.err
    assert "Signature (vega-owner-1000001-1): ok scoped" in squeeze(scoped.out)
    assert "signature-only: scoped builds are not in the global transparency log" in scoped.out
    assert "tenant scope is a self check, not third-party trust" in scoped.out
    status = httpx2.get(f"{server.url}/api/status/{hash_part}").json()
    assert (status["verdict"], status["inSharedCache"]) == ("uncorroborated", False)
    assert httpx2.get(f"{server.url}/{hash_part}.narinfo").status_code == 404

    # 5. the real agents: two repository owners' CI jobs attest (vega-attest), then the reproducer
    #    workflow rebuilds every candidate in its own chroot store (vega-reproduce --from-queue).
    system = nix.text("nix", "eval", "--impure", "--raw", "--expr", "builtins.currentSystem")
    attr = f"packages.{system}.default"
    (flake / "vega.yaml").write_text(f"builds: [packages.{system}.greeting, {attr}]\n")
    sha = app_repo_commit(flake)  # the committed flake stands in for github:<owner>/<repo> at sha

    def attest_as(at: ServerProcess, repository: str, workflow: str = ".github/workflows/vega.yml") -> str:
        env = dict(nix.env) | at.ci_env(repository, sha, workflow) | {"GITHUB_WORKSPACE": str(flake)}
        code, out, err = attest_in_process(env, flake)
        assert code == 0, out + err
        return out

    reasons = []
    for repository, workflow in (("alice/hello", ".github/workflows/vega.yml"), ("bob/hello", "ci.yml")):
        out = attest_as(server, repository, workflow)
        line = next(x for x in out.splitlines() if x.endswith(")") and f" {out_path} " in x)
        reasons.append(line.rsplit(": ", 1)[-1].rstrip(")"))
    candidates = httpx2.get(f"{server.url}/api/repro/queue").json()["candidates"]
    assert sorted(c["storePath"] for c in candidates) == sorted(
        nix.text("nix", "path-info", "-r", installable).split()
    )
    repro_env = (
        dict(nix.env)
        | server.reproducer_env(sha)
        | {
            "VEGA_NIX_STORE": str(tmp_path / "store-reproducer"),
            "VEGA_GITHUB_MIRRORS": f"alice/hello=git+file://{flake}",
        }
    )
    repro_out, repro_err = io.StringIO(), io.StringIO()
    assert reproduce_main(["--from-queue"], repro_env, repro_out, repro_err) == 0, repro_err.getvalue()
    assert f"[reproduced] {out_path}" in repro_out.getvalue()
    assert f"[shared] {out_path} (agreement)" in repro_out.getvalue()
    reasons.append("agreement")
    assert reasons == ["insufficient", "awaiting-repro", "agreement"]
    status = httpx2.get(f"{server.url}/api/status/{hash_part}").json()
    assert (status["verdict"], status["inSharedCache"]) == ("reproducible", True)

    # 6. full verify with the shared key: every check passes; the closure too
    full = cli(capsys, "verify", out_path, "--url", server.url, "--public-key", shared, "--json")
    assert full.code == 0, full.out + full.err
    report = json.loads(full.out)
    assert (report["verified"], report["exitOk"], report["signature"]["scope"]) == (True, True, "shared")
    assert [(c["name"], c["ok"], c["skipped"]) for c in report["checks"]] == [
        (name, True, False)
        for name in ("store-path", "signature", "checkpoint", "promotion", "revocation", "nar")
    ]
    # The key trusted the way Nix users do (trusted-public-keys, here through NIX_CONFIG).
    monkeypatch.setenv("NIX_CONFIG", f"{nix.env['NIX_CONFIG']}\ntrusted-public-keys = {shared}")
    text = cli(capsys, "verify", hash_part, "--url", server.url)
    assert text.code == 0, text.out + text.err
    assert "✦ Verified: signed, in the public log, and the bytes match." in text.out
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    closure = cli(capsys, "verify", hash_part, "--url", server.url, "--public-key", shared, "--recursive")
    assert closure.code == 0, closure.out + closure.err
    assert "✦ Verified 2 of 2 paths" in closure.out

    # 7. the real nix substitutes it from the shared root with the shared key
    copied = nix_copy(nix, tmp_path, "shared", server.url, shared, out_path)
    assert (copied / "bin" / "hello").stat().st_mode & 0o111

    # -- the tamper half --------------------------------------------------------------------------
    backup = server.snapshot(tmp_path / "backup")  # the log as the client has seen it so far
    url = server.url

    fails(
        tampered_verify(
            url, shared, hash_part, f"/{hash_part}.narinfo", lambda b: b.replace(b"NarSize: ", b"NarSize: 9")
        ),
        "Signature (vega-cache-1): FAIL",
    )
    fails(
        tampered_verify(url, shared, hash_part, "/nar/", lambda b: b[:-4]), "NAR bytes: FAIL NAR stream error"
    )
    fails(tampered_verify(url, shared, hash_part, "/log/lookup/", change_log_entry), "Inclusion proof: FAIL")
    fails(
        tampered_verify(url, shared, hash_part, "/log/lookup/", change_checkpoint),
        "checkpoint not trusted: neither the checkpoint note nor the STH",
    )

    # The log grows (another owner attests); the client verifies and remembers the larger log.
    attest_as(server, "carol/hello")
    grown = server.log_size()
    ok = cli(capsys, "verify", hash_part, "--url", url, "--public-key", shared)
    assert ok.code == 0, ok.out + ok.err
    assert f"size {grown}" in ok.out

    # Rolled back: the server restored from the older backup, on another address.
    server.stop()
    rolled = servers(shutil.copytree(backup, tmp_path / "rolled-back"))
    assert rolled.log_size() < grown
    res = cli(capsys, "verify", hash_part, "--url", rolled.url, "--public-key", shared)
    fails(res, "error: log fork or rollback detected: ", "older than the remembered size")
    rolled.stop()

    # Forked: the same backup grown past the remembered size with other entries.
    forked = servers(shutil.copytree(backup, tmp_path / "forked"))
    for repository in ("mallory/x", "mallory/y"):
        attest_as(forked, repository)
    assert forked.log_size() > grown
    res = cli(capsys, "verify", hash_part, "--url", forked.url, "--public-key", shared)
    fails(res, "error: log fork or rollback detected: ", "is not consistent with the remembered size")
