"""The agents end to end: vega-attest as CI builder A, vega-reproduce as independent builder B.

The real ``vega-server serve --dev`` (a process on loopback, SQLite), the real nix, the real
console scripts. The example app (examples/agent-flake) is committed in a local git repository
that stands in for ``github:example-org/app`` (``VEGA_GITHUB_MIRRORS``, docs/agents.md). Builder
B builds in its own chroot store (``VEGA_NIX_STORE``), so it really builds everything again.
Every nix process either agent starts goes through a wrapper that records its environment.

Spec: issue 13 acceptance; agent.md §4, §10, §11.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import NixRunner
from tests.e2e.agents import (
    APP_REPOSITORY,
    ServerProcess,
    app_repo,
    app_repo_commit,
    ci_env,
    nix_wrapper,
    recorded,
    run_agent,
)
from tests.e2e.conftest import Server
from tests.e2e.faultproxy import fault_proxy
from vega.errors import VegaError

pytestmark = [pytest.mark.nix, pytest.mark.slow]

OIDC_VARS = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server", tmp_path / "server.log")
    try:
        yield proc
    finally:
        proc.stop()


def system(nix: NixRunner) -> str:
    return nix.text("nix", "eval", "--impure", "--raw", "--expr", "builtins.currentSystem")


def lines_with(text: str, tag: str) -> list[str]:
    return sorted(line.split()[1] for line in text.splitlines() if line.startswith(tag))


def test_builder_a_attests_builder_b_reproduces_and_only_reproducible_outputs_are_promoted(
    server: ServerProcess, nix: NixRunner, tmp_path: Path
) -> None:
    if system(nix) != "x86_64-linux":
        pytest.skip("the example app's vega.yaml names x86_64-linux outputs")
    repo, sha = app_repo(tmp_path / "app", f"agents e2e {time.time_ns()}")
    calls = tmp_path / "nix-calls.jsonl"
    path = f"{nix_wrapper(tmp_path / 'bin', calls)}:{os.environ['PATH']}"
    base = dict(nix.env, PATH=path, HOME=str(tmp_path / "home"), NO_COLOR="1")

    # Builder A: the repository's own CI job (vega.yaml declares lib, app, docs, stamp).
    job_a = server.ci_env(APP_REPOSITORY, sha)
    a = run_agent("vega-attest", [], base | job_a | {"GITHUB_WORKSPACE": str(repo)}, repo)
    assert a.returncode == 0, a.stdout + a.stderr
    assert "vega.yaml: building 4 declared output(s)." in a.stdout
    tenant = lines_with(a.stdout, "[tenant]")
    assert len(tenant) == 5  # lib twice (its own build, and app's closure) plus app, docs, stamp
    assert "Done. 0/5 published to the shared cache." in a.stdout
    assert f"extra-substituters = {server.url}/tenant/{APP_REPOSITORY}" in a.stdout
    calls_a = len(recorded(calls))
    assert calls_a >= 8  # 4 builds and 4 closures, at least

    queue = httpx2.get(f"{server.url}/api/repro/queue").json()["candidates"]
    by_name = {c["storePath"].split("-", 1)[1]: c for c in queue}
    assert sorted(by_name) == ["example-app", "example-app-docs", "example-app-lib", "example-app-stamp"]
    assert {c["flakeRef"] for c in queue} == {f"github:{APP_REPOSITORY}"}
    assert {c["rev"] for c in queue} == {sha}

    # Builder B: the reproducer's own identity, its own chroot store, the repo as github:example-org/app.
    # Its nix.conf names the control plane as a substituter: the rebuild must not use it.
    store_b = tmp_path / "store-b"
    empty_cache = tmp_path / "empty-cache"
    empty_cache.mkdir()
    (empty_cache / "nix-cache-info").write_text("StoreDir: /nix/store\n")
    nix_conf_b = f"{nix.env['NIX_CONFIG']}\nextra-substituters = {server.url} file://{empty_cache}"
    job_b = server.reproducer_env(sha)
    b = run_agent(
        "vega-reproduce",
        ["--from-queue", "--max", "10"],
        base
        | job_b
        | {
            "NIX_CONFIG": nix_conf_b,
            "VEGA_NIX_STORE": str(store_b),
            "VEGA_GITHUB_MIRRORS": f"{APP_REPOSITORY}=git+file://{repo}",
        },
        tmp_path,
    )
    assert b.returncode == 2, b.stdout + b.stderr  # one output diverged
    out = b.stdout
    stamp = by_name["example-app-stamp"]["storePath"]
    assert lines_with(out, "[reproduced]") == sorted(
        by_name[n]["storePath"] for n in ("example-app", "example-app-docs", "example-app-lib")
    )
    assert lines_with(out, "[DIVERGED]") == [stamp]
    assert lines_with(out, "[shared]") == lines_with(out, "[reproduced]")
    assert f"[pending] {stamp} (shared tier: diverged)" in out
    assert "Queue done: 4 candidate(s), 1 diverged, 0 failed." in out
    for c in queue:  # B really built: every output is in its own store
        assert (store_b / c["storePath"].lstrip("/")).exists()

    # The decisions: agreement for the reproducible outputs, diverged (never promoted) for stamp.
    for name in ("example-app", "example-app-docs", "example-app-lib"):
        status = httpx2.get(f"{server.url}/api/status/{by_name[name]['hash']}").json()
        assert (status["verdict"], status["inSharedCache"]) == ("reproducible", True), name
    status = httpx2.get(f"{server.url}/api/status/{by_name['example-app-stamp']['hash']}").json()
    assert (status["verdict"], status["inSharedCache"]) == ("diverged", False)
    assert httpx2.get(f"{server.url}/{by_name['example-app-stamp']['hash']}.narinfo").status_code == 404

    # The log holds both fingerprints of the diverged output, and no promotion of it.
    entries = httpx2.get(f"{server.url}/log/lookup/{by_name['example-app-stamp']['hash']}").json()["entries"]
    leaves = [json.loads(e["data"]) for e in entries]
    assert [leaf["event"] for leaf in leaves] == ["attestation", "attestation"]
    assert len({leaf["fingerprint"] for leaf in leaves}) == 2
    assert {leaf["lane"] for leaf in leaves} == {"gh-actions", "vega-repro"}

    # A fresh Nix client substitutes the promoted app (and its lib) from the shared root.
    fresh = tmp_path / "store-fresh"
    app = by_name["example-app"]["storePath"]
    done = subprocess.run(
        ["nix", "copy", "--from", server.url, "--to", str(fresh), "--option", "trusted-public-keys",
         server.shared_key, app],
        env=dict(nix.env, XDG_CACHE_HOME=str(tmp_path / "nix-cache-fresh")),
        capture_output=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert (fresh / app.lstrip("/") / "bin" / "app").exists()

    # No nix process either agent started could see the OIDC request variables or the token.
    calls_all = recorded(calls)
    assert len(calls_all) > calls_a  # B ran nix too
    tokens = (job_a["ACTIONS_ID_TOKEN_REQUEST_TOKEN"], job_b["ACTIONS_ID_TOKEN_REQUEST_TOKEN"])
    for call in calls_all:
        env = call["env"]
        assert isinstance(env, dict)
        assert not set(OIDC_VARS) & set(env), call["argv"]
        assert not any(t in json.dumps(call) for t in tokens)
    b_calls = [c["argv"] for c in calls_all[calls_a:] if c["argv"][:1] == ["build"]]
    assert len(b_calls) == 4
    for argv in b_calls:
        assert argv[argv.index("--store") + 1] == str(store_b)
        assert argv[argv.index("substituters") + 1] == f"file://{empty_cache}"  # never the control plane
        assert argv[argv.index("sandbox") + 1] == "true"


def attest_in_process(env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """``vega-attest`` through its entry function, in this process (the environment is ``env``)."""
    import io

    from vega.cli.agent import attest_main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        code = attest_main([], env, out, err)
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def test_retries_on_a_real_server_attest_every_output_exactly_once(
    dev_server: Server, nix: NixRunner, tmp_path: Path
) -> None:
    """429/503/500/401 answers, a lost attest answer, an expired presigned URL and a stalled PUT."""
    if system(nix) != "x86_64-linux":
        pytest.skip("the example app's vega.yaml names x86_64-linux outputs")
    repo, sha = app_repo(tmp_path / "app", f"faults {time.time_ns()}")
    job = ci_env(dev_server.url, APP_REPOSITORY, sha, ".github/workflows/vega.yml")
    faults = {
        "upload-url": ["429", "expire", "500"],
        "put": ["stall"],
        "attest": ["429", "503", "lost", "pass", "401"],
    }
    with fault_proxy(dev_server.url, faults) as proxy:
        env = (
            dict(nix.env)
            | job
            | {
                "VEGA_URL": proxy.url,
                "VEGA_AUDIENCE": dev_server.url,  # the token is for the server; the proxy is the route
                "GITHUB_WORKSPACE": str(repo),
                "VEGA_UPLOAD_STALL_SECONDS": "1",
                "VEGA_UPLOAD_CONCURRENCY": "2",
            }
        )
        code, out, err = attest_in_process(env, repo)
        assert code == 0, (out + err, proxy.seen)
        assert not any(proxy.faults.values()), proxy.faults  # every fault was injected
        kinds = [(k, f) for k, f, _ in proxy.seen]
        for fault in (("put", "stall"), ("upload-url", "expire"), ("attest", "lost"), ("attest", "401")):
            assert fault in kinds
    assert "ACTIONS_ID_TOKEN_REQUEST_TOKEN" not in env  # taken out of the environment it was given
    paths = sorted({line.split()[1] for line in out.splitlines() if line.startswith("[tenant]")})
    assert len(paths) == 4  # lib, app, docs, stamp
    assert set(proxy.attested) == set(paths)
    assert sum(proxy.attested.values()) == 5  # lib answered twice (two builds), every other path once
    for path in paths:
        hash_part = path.removeprefix("/nix/store/")[:32]
        entries = httpx2.get(f"{dev_server.url}/log/lookup/{hash_part}").json()["entries"]
        assert [json.loads(e["data"])["event"] for e in entries] == ["attestation"], path
    # The 401 forced exactly one fresh token: the attempts after it carry a different bearer.
    assert len(set(proxy.bearers)) == 2
    assert proxy.bearers[0] != proxy.bearers[-1]


def test_a_second_run_resumes_uploads_and_re_attests(
    dev_server: Server, nix: NixRunner, tmp_path: Path
) -> None:
    if system(nix) != "x86_64-linux":
        pytest.skip("the example app's vega.yaml names x86_64-linux outputs")
    repo, sha = app_repo(tmp_path / "app", f"resume {time.time_ns()}")
    (repo / "vega.yaml").write_text("builds: [packages.x86_64-linux.app]\n")
    env = dict(nix.env) | {"GITHUB_WORKSPACE": str(repo)}
    first = attest_in_process(env | ci_env(dev_server.url, APP_REPOSITORY, sha, "ci.yml"), repo)
    assert first[0] == 0, first
    assert "Resumed" not in first[1]
    before = len(dev_server.requests)
    second = attest_in_process(env | ci_env(dev_server.url, APP_REPOSITORY, sha, "ci.yml"), repo)
    assert second[0] == 0, second
    assert "Resumed: 2 NAR(s) already uploaded by a prior run; re-attested without re-uploading." in second[1]
    again = dev_server.requests[before:]
    assert not [r for r in again if r.startswith("PUT ")]
    assert len([r for r in again if r == "POST /api/cache/attest"]) == 2


# Secret-shaped strings are assembled at build time so no file of this repository holds one whole.
LEAKY_FLAKE = """{
  outputs = { self }: rec {
    packages.x86_64-linux.dep = derivation {
      name = "leaky-SEED-dep"; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" "mkdir -p $out; k=AKIA; echo \\"aws=\\${k}Z7QX2LMN4PRS6TUV\\" > $out/creds" ];
    };
    packages.x86_64-linux.leaky = derivation {
      name = "leaky-SEED"; system = "x86_64-linux"; builder = "/bin/sh";
      dep = packages.x86_64-linux.dep;
      args = [ "-c" ''
        mkdir -p $out/etc
        t=ghp_; s=a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8
        echo "dep=$dep" > $out/etc/config
        echo "token=$t$s" >> $out/etc/config
        echo "$t$s" > "$out/$t$s"
      '' ];
    };
  };
}
"""
GH_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
AWS_KEY = "AKIA" + "Z7QX2LMN4PRS6TUV"


def leaky_repo(where: Path, vega_yaml: str) -> Path:
    where.mkdir()
    (where / "flake.nix").write_text(LEAKY_FLAKE.replace("SEED", str(time.time_ns())))
    (where / "vega.yaml").write_text(vega_yaml)
    return where


def test_the_secret_scan_warns_redacted_on_every_novel_path(
    dev_server: Server, nix: NixRunner, tmp_path: Path
) -> None:
    if system(nix) != "x86_64-linux":
        pytest.skip("x86_64-linux flake")
    repo = leaky_repo(tmp_path / "leaky", "builds: [packages.x86_64-linux.leaky]\n")
    env = dict(nix.env) | ci_env(dev_server.url, "example-org/leaky", "a" * 40, "ci.yml")
    code, out, err = attest_in_process(env | {"GITHUB_WORKSPACE": str(repo)}, repo)
    assert code == 0, out + err
    warnings = [line for line in err.splitlines() if line.startswith("::warning::")]
    kinds = sorted(line.split()[1] for line in warnings)
    assert kinds == ["aws-access-key", "github-token", "github-token"]  # the dependency is scanned too
    assert any("/etc/config:2 (ghp_a1\u2026)" in line for line in warnings)
    assert any("/ghp_a1\u2026:1 (ghp_a1\u2026)" in line for line in warnings)  # the file's name is redacted
    for text in (out, err):
        assert GH_TOKEN not in text
        assert AWS_KEY not in text
    assert len([line for line in out.splitlines() if line.startswith("[tenant]")]) == 2  # still published


def test_secret_scan_deny_fails_before_anything_is_uploaded(
    dev_server: Server, nix: NixRunner, tmp_path: Path
) -> None:
    if system(nix) != "x86_64-linux":
        pytest.skip("x86_64-linux flake")
    repo = leaky_repo(tmp_path / "leaky", "builds: [packages.x86_64-linux.leaky]\nsecret-scan: deny\n")
    env = dict(nix.env) | ci_env(dev_server.url, "example-org/leaky", "a" * 40, "ci.yml")
    before = len(dev_server.requests)
    code, out, err = attest_in_process(env | {"GITHUB_WORKSPACE": str(repo)}, repo)
    assert code == 1
    assert (
        "error: secret scan: 3 possible secret(s) in paths about to be published; nothing was uploaded" in err
    )
    assert GH_TOKEN not in out + err
    sent = dev_server.requests[before:]
    assert not [r for r in sent if r.startswith(("POST /api/cache", "PUT "))], sent


FAILING_FLAKE = """{
  outputs = { self }: {
    packages.x86_64-linux.impure = derivation {
      name = "impure-SEED"; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" "/usr/bin/env -i > $out" ];
    };
  };
}
"""
EXTRA_OUTPUT = """    packages.x86_64-linux.extra = derivation {
      name = "extra-SEED"; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" "echo > $out" ];
    };
  };
}
"""


def test_failed_reproductions_are_reported_with_their_class_and_a_redacted_excerpt(
    server: ServerProcess, nix: NixRunner, tmp_path: Path
) -> None:
    """Two candidates builder B cannot rebuild, each the way it happens for real.

    ``impure`` reads ``/usr/bin/env``: it built on builder A, whose nix had the sandbox off, and
    fails in B's sandbox (``build-failed``, ``impure-host-path``). ``extra`` was built by A from
    an uncommitted change, so the commit A's token names does not have it (``unresolvable``).
    """
    import io
    import sqlite3

    from vega.cli.agent import reproduce_main

    if system(nix) != "x86_64-linux":
        pytest.skip("x86_64-linux flake")
    seed = str(time.time_ns())
    repo, sha = app_repo(tmp_path / "app", "x", {"flake.nix": FAILING_FLAKE.replace("SEED", seed)})
    (repo / "vega.yaml").unlink()
    flake = (repo / "flake.nix").read_text()
    (repo / "flake.nix").write_text(flake.rsplit("  };\n}", 1)[0] + EXTRA_OUTPUT.replace("SEED", seed))
    relaxed = dict(nix.env, NIX_CONFIG=nix.env["NIX_CONFIG"] + "\nsandbox = false")
    for attr in ("packages.x86_64-linux.impure", "packages.x86_64-linux.extra"):
        env = relaxed | server.ci_env(APP_REPOSITORY, sha) | {"GITHUB_WORKSPACE": str(repo)}
        code, out, err = attest_in_process_argv([f".#{attr}"], env, repo)
        assert code == 0, out + err
    queue = httpx2.get(f"{server.url}/api/repro/queue").json()["candidates"]
    hashes = {c["attr"].rsplit(".", 1)[1]: c["hash"] for c in queue}
    assert sorted(hashes) == ["extra", "impure"]

    env = (
        dict(nix.env)
        | server.reproducer_env(sha)
        | {
            "VEGA_GITHUB_MIRRORS": f"{APP_REPOSITORY}=git+file://{repo}",
            "VEGA_NIX_STORE": str(tmp_path / "store-b"),
        }
    )
    out_b, err_b = io.StringIO(), io.StringIO()
    assert reproduce_main(["--from-queue"], env, out_b, err_b) == 1
    text = out_b.getvalue()
    assert f"Reported build-failed for {hashes['impure']} (impure-host-path)" in text
    assert f"Reported unresolvable for {hashes['extra']} (eval)" in text
    assert "(report failed to send)" not in text
    assert "Queue done: 2 candidate(s), 0 diverged, 2 failed." in text
    assert "nix build exited with code 1" in err_b.getvalue()
    db = sqlite3.connect(tmp_path / "server" / "server.db")
    rows = db.execute(
        "SELECT hash_part, reason, diagnosis, excerpt FROM cache_dispatch_failures ORDER BY reason"
    ).fetchall()
    db.close()
    assert [r[:3] for r in rows] == [
        (hashes["impure"], "build-failed", "impure-host-path"),
        (hashes["extra"], "unresolvable", "eval"),
    ]
    assert "/usr/bin/env" in rows[0][3]
    assert len(rows[0][3].encode()) <= 2048
    assert "does not provide attribute" in rows[1][3]
    remaining = httpx2.get(f"{server.url}/api/repro/queue").json()["candidates"]
    assert [c["hash"] for c in remaining] == [hashes["impure"]]  # unresolvable retired it; one failure so far


def test_include_exclude_and_the_0_19_exclusions(dev_server: Server, nix: NixRunner, tmp_path: Path) -> None:
    """vega.yaml include/exclude (flake show), VEGA_EXCLUDE and VEGA_MAX_NAR_BYTES, every skip logged."""
    if system(nix) != "x86_64-linux":
        pytest.skip("the example app names x86_64-linux outputs")
    repo, sha = app_repo(
        tmp_path / "app",
        f"include {time.time_ns()}",
        {"vega.yaml": 'include: ["packages.x86_64-linux.*"]\nexclude: ["*.*.stamp", "*.*.default"]\n'},
    )
    env = dict(nix.env) | ci_env(dev_server.url, APP_REPOSITORY, sha, "ci.yml")
    env |= {"GITHUB_WORKSPACE": str(repo), "VEGA_EXCLUDE": "example-app-docs, nomatch-*"}
    code, out, err = attest_in_process(env, repo)
    assert code == 0, out + err
    assert "vega.yaml: building 3 declared output(s)." in out  # app, docs, lib (flake show order)
    assert [line.split("#")[1].split()[0] for line in out.splitlines() if line.startswith("Building ")] == [
        "packages.x86_64-linux.app",
        "packages.x86_64-linux.docs",
        "packages.x86_64-linux.lib",
    ]
    assert "Excluded 1 path(s) (" in out
    assert "(VEGA_EXCLUDE example-app-docs)" in out
    assert "::warning::VEGA_EXCLUDE pattern nomatch-* matched no path of this build" in err
    assert "an output of this build: it is not attested and loses its provenance" in err
    assert not [line for line in out.splitlines() if "example-app-docs" in line and line.startswith("[")]

    # A size limit below every NAR: nothing is published, and the run still succeeds.
    (repo / "vega.yaml").write_text("builds: [packages.x86_64-linux.lib]\n")
    env = dict(nix.env) | ci_env(dev_server.url, APP_REPOSITORY, sha, "ci.yml")
    env |= {"GITHUB_WORKSPACE": str(repo), "VEGA_MAX_NAR_BYTES": "1"}
    code, out, err = attest_in_process(env, repo)
    assert code == 0, out + err
    assert "> VEGA_MAX_NAR_BYTES)" in out
    assert "Done. 0/0 published to the shared cache." in out
    env["VEGA_MAX_NAR_BYTES"] = "lots"
    code, out, err = attest_in_process(
        dict(env) | ci_env(dev_server.url, APP_REPOSITORY, sha, "ci.yml"), repo
    )
    assert code == 1
    assert "error: VEGA_MAX_NAR_BYTES: expected a number of bytes" in err


def test_a_foreign_installable_is_warned_about_and_a_plaintext_url_refused(
    dev_server: Server, nix: NixRunner, tmp_path: Path
) -> None:
    if system(nix) != "x86_64-linux":
        pytest.skip("the example app names x86_64-linux outputs")
    repo, sha = app_repo(tmp_path / "app", f"foreign {time.time_ns()}")
    (repo / "vega.yaml").unlink()
    elsewhere = tmp_path / "ws"
    elsewhere.mkdir()
    env = (
        dict(nix.env)
        | ci_env(dev_server.url, APP_REPOSITORY, sha, "ci.yml")
        | {"GITHUB_WORKSPACE": str(elsewhere)}
    )
    import io

    from vega.cli.agent import attest_main

    out, err = io.StringIO(), io.StringIO()
    assert attest_main([f"path:{repo}#packages.x86_64-linux.docs"], env, out, err) == 0, err.getvalue()
    assert "::warning::path:" in err.getvalue()
    assert "cannot be reproduced unless the repository's own flake builds that attribute" in err.getvalue()
    assert "Build .#packages.x86_64-linux.docs instead." in err.getvalue()
    # A non-loopback http control plane is refused before any token is minted.
    env = ci_env(dev_server.url, APP_REPOSITORY, sha, "ci.yml") | {"VEGA_URL": "http://vega.example"}
    before = len(dev_server.requests)
    out, err = io.StringIO(), io.StringIO()
    assert attest_main([], env, out, err) == 1
    assert "control plane must be a valid https URL" in err.getvalue()
    assert dev_server.requests[before:] == []
    assert attest_main(["--impure"], {"VEGA_URL": dev_server.url}, out, err) == 1
    assert "refusing installable that looks like a flag: --impure" in err.getvalue()


def test_the_token_provider_caches_refreshes_and_forces(dev_server: Server) -> None:
    from vega.client.agent.oidc import TokenProvider, jwt_exp
    from vega.client.agent.settings import OidcRequest
    from vega.client.http import Http
    from vega.errors import ConfigError

    job = ci_env(dev_server.url, APP_REPOSITORY, "a" * 40, "ci.yml")
    now = [time.time()]
    with httpx2.Client() as client:
        request = OidcRequest(job["ACTIONS_ID_TOKEN_REQUEST_URL"], job["ACTIONS_ID_TOKEN_REQUEST_TOKEN"])
        tokens = TokenProvider(Http(client), request, dev_server.url, lambda: now[0])
        first = tokens.get()
        assert tokens.get() == first
        assert tokens.mints == 1
        exp = jwt_exp(first)
        assert exp is not None
        now[0] = exp - 61
        assert tokens.get() == first
        assert tokens.mints == 1
        now[0] = exp - 59  # within a minute of expiry: refreshed
        tokens.get()
        assert tokens.mints == 2
        tokens(True)  # the forced re-mint after a 401
        assert tokens.mints == 3
        assert request.token in tokens.secrets()
        bad = TokenProvider(Http(client), OidcRequest(request.url, "forged.token"), dev_server.url, time.time)
        with pytest.raises(VegaError, match="OIDC token request failed"):
            bad.get()
    with pytest.raises(ConfigError, match="ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        TokenProvider(Http(httpx2.Client()), OidcRequest(None, None), "x", time.time)


def test_skip_upstream_reuse_cache_and_extra_substituters(
    dev_server: Server, nix: NixRunner, tmp_path: Path
) -> None:
    """A first job publishes; a second one skips what the 'upstream' serves and reuses the tenant."""
    if system(nix) != "x86_64-linux":
        pytest.skip("the example app names x86_64-linux outputs")
    repo, sha = app_repo(tmp_path / "app", f"upstream {time.time_ns()}")
    (repo / "vega.yaml").write_text("builds: [packages.x86_64-linux.app]\nreuse-cache: true\n")
    env = dict(nix.env) | {"GITHUB_WORKSPACE": str(repo)}
    first = attest_in_process(env | ci_env(dev_server.url, APP_REPOSITORY, sha, "ci.yml"), repo)
    assert first[0] == 0, first
    tenant = f"{dev_server.url}/tenant/{APP_REPOSITORY}"
    empty_cache = tmp_path / "empty-cache"
    empty_cache.mkdir()
    (empty_cache / "nix-cache-info").write_text("StoreDir: /nix/store\n")
    second_env = (
        env
        | ci_env(dev_server.url, APP_REPOSITORY, sha, "ci.yml")
        | {
            "VEGA_SKIP_UPSTREAM": "true",
            "VEGA_UPSTREAM": tenant + "/",  # stands in for cache.nixos.org: it serves both paths now
            "VEGA_EXTRA_SUBSTITUTERS": f"file://{empty_cache}",
            "VEGA_EXTRA_TRUSTED_PUBLIC_KEYS": "extra-1:" + "A" * 43 + "=",
        }
    )
    code, out, err = attest_in_process(second_env, repo)
    assert code == 0, out + err
    assert f"Reusing prior pushes from {tenant}" in out
    assert f"Extra substituters: file://{empty_cache}" in out
    assert f"Skipping 2 path(s) in {tenant}." in out
    assert "Done. 0/0 published to the shared cache." in out


SUBFLAKE_LINK = "linked"


def test_a_sub_flake_is_attested_with_its_dir_and_reproduced_after_the_containment_check(
    server: ServerProcess, nix: NixRunner, tmp_path: Path
) -> None:
    import io

    from vega.cli.agent import reproduce_main

    if system(nix) != "x86_64-linux":
        pytest.skip("the example app names x86_64-linux outputs")
    root = tmp_path / "mono"
    root.mkdir()
    (root / "README").write_text("a monorepo with the app in sub/app\n")
    app_repo(root / "sub" / "app", f"subflake {time.time_ns()}")
    import shutil

    shutil.rmtree(root / "sub" / "app" / ".git")
    (root / SUBFLAKE_LINK).symlink_to("sub/app")
    sha = app_repo_commit(root)
    env = dict(nix.env) | server.ci_env(APP_REPOSITORY, sha) | {"GITHUB_WORKSPACE": str(root)}
    code, out, err = attest_in_process_argv(["./sub/app#packages.x86_64-linux.docs"], env, root)
    assert code == 0, out + err
    assert "::warning::" not in err  # an own sub-flake: no foreign warning
    (candidate,) = httpx2.get(f"{server.url}/api/repro/queue").json()["candidates"]
    assert (candidate["dir"], candidate["attr"]) == ("sub/app", "packages.x86_64-linux.docs")

    mirror = {
        "VEGA_GITHUB_MIRRORS": f"{APP_REPOSITORY}=git+file://{root}",
        "VEGA_NIX_STORE": str(tmp_path / "b"),
    }
    repro_env = dict(nix.env) | server.reproducer_env(sha) | mirror
    out_b, err_b = io.StringIO(), io.StringIO()
    assert reproduce_main(["--from-queue"], dict(repro_env), out_b, err_b) == 0, err_b.getvalue()
    assert f"?rev={sha}&dir=sub/app#packages.x86_64-linux.docs ..." in out_b.getvalue()
    assert "(agreement)" in out_b.getvalue()

    # A dir that is a symlink in the source tree is refused before anything is built.
    single = (
        repro_env
        | server.reproducer_env(sha)
        | {
            "VEGA_FLAKE_REF": f"github:{APP_REPOSITORY}",
            "VEGA_ATTR": "packages.x86_64-linux.docs",
            "VEGA_REV": sha,
            "VEGA_DIR": SUBFLAKE_LINK,
        }
    )
    out_c, err_c = io.StringIO(), io.StringIO()
    assert reproduce_main([], single, out_c, err_c) == 1
    assert f"error: subflake dir '{SUBFLAKE_LINK}': '{SUBFLAKE_LINK}' is a symlink" in err_c.getvalue()
    assert "Reproducing" not in out_c.getvalue()
    single |= server.reproducer_env(sha) | {"VEGA_REV": "main", "VEGA_DIR": "sub/app"}
    assert reproduce_main([], single, out_c, err_c) == 1
    assert "error: subflake dir 'sub/app' needs a canonical github:<owner>/<repo> ref and a 40-hex rev" in (
        err_c.getvalue()
    )


def attest_in_process_argv(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    import io

    from vega.cli.agent import attest_main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        code = attest_main(argv, env, out, err)
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


SLOW_FLAKE = """{
  outputs = { self }: {
    packages.x86_64-linux.slow = derivation {
      name = "slow-SEED"; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" "sleep 120; echo > $out" ];
    };
  };
}
"""


def test_the_build_timer_stops_a_build_and_says_so(
    dev_server: Server, nix: NixRunner, tmp_path: Path
) -> None:
    if system(nix) != "x86_64-linux":
        pytest.skip("x86_64-linux flake")
    repo = tmp_path / "slow"
    repo.mkdir()
    (repo / "flake.nix").write_text(SLOW_FLAKE.replace("SEED", str(time.time_ns())))
    env = dict(nix.env) | ci_env(dev_server.url, "example-org/slow", "a" * 40, "ci.yml")
    env |= {"GITHUB_WORKSPACE": str(repo), "VEGA_BUILD_TIMEOUT_MINUTES": "", "VEGA_BUILD_TIMEOUT_MS": "1500"}
    code, _out, err = attest_in_process_argv([f"path:{repo}#packages.x86_64-linux.slow"], env, repo)
    assert code == 1
    assert "error: nix build timed out after 0.025m" in err
