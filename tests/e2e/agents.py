"""Helpers for the agents' end-to-end tests: the real server as a process, the example app in a
local git repository (standing in for ``github:example-org/app``), CI job environments from the
server's development OIDC issuer, and a ``nix`` wrapper that records every nix process's
environment.

Spec: agent.md §1, §10, §11; docs/development-identity.md; docs/agents.md (source mirrors).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parent.parent.parent
APP_FLAKE = ROOT / "examples" / "agent-flake"
APP_REPOSITORY = "example-org/app"
REPRO_REPOSITORY = "vega-org/repro"
REPRO_WORKFLOW = "vega-org/repro/.github/workflows/reproduce.yml@refs/heads/main"
"""The reproducer lane: an exact job_workflow_ref with a pinned ref."""
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``vega-server serve --dev`` as a subprocess on a loopback port (SQLite, local NARs)."""

    def __init__(
        self,
        data_dir: Path,
        log: Path,
        reproducer_workflows: str = REPRO_WORKFLOW,
        extra_env: Mapping[str, str] | None = None,
        *,
        log_origin: str = "vega-e2e.invalid/log",
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env = dict(
            os.environ,
            VEGA_SERVER_SETTLING_S="0",
            VEGA_SERVER_REPRODUCER_WORKFLOWS=reproducer_workflows,
            # One log identity whichever port serves it (a restored backup keeps its origin).
            VEGA_SERVER_LOG_ORIGIN=log_origin,
            **(extra_env or {}),
        )
        argv = [sys.executable, "-m", "vega.server", "serve", "--dev", "--data-dir", str(data_dir)]
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen([*argv, "--port", str(self.port)], env=env, stdout=out, stderr=out)
        for _ in range(300):  # polls the health endpoint, up to ~30 s on a loaded machine
            if self.proc.poll() is not None:
                raise AssertionError(f"vega-server exited {self.proc.returncode}:\n{log.read_text()}")
            try:
                if httpx2.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"vega-server did not answer:\n{log.read_text()}")
        printed = log.read_text()
        self.shared_key = printed.split("extra-trusted-public-keys = ")[-1].split()[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def snapshot(self, to: Path) -> Path:
        """A consistent copy of the data directory (SQLite's backup API; the rest copied)."""
        shutil.copytree(self.data_dir, to, ignore=shutil.ignore_patterns("server.db*"))
        src = sqlite3.connect(self.data_dir / "server.db")
        dst = sqlite3.connect(to / "server.db")
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        return to

    def log_size(self) -> int:
        """The log's size now."""
        return int(httpx2.get(f"{self.url}/log/sth").json()["size"])

    def ci_env(
        self,
        repository: str,
        sha: str,
        workflow: str = ".github/workflows/vega.yml",
        *,
        runner_environment: str = "self-hosted",
    ) -> dict[str, str]:
        """A simulated job's environment, from the documented HTTP endpoint."""
        return ci_env(self.url, repository, sha, workflow, runner_environment=runner_environment)

    def reproducer_env(self, sha: str) -> dict[str, str]:
        """The reproducer job: the pinned workflow, a GitHub-hosted runner, its own owner."""
        return self.ci_env(REPRO_REPOSITORY, sha, REPRO_WORKFLOW, runner_environment="github-hosted")


def ci_env(
    url: str, repository: str, sha: str, workflow: str, *, runner_environment: str = "self-hosted"
) -> dict[str, str]:
    got = httpx2.post(
        f"{url}/_dev/ci-token",
        json={
            "repository": repository,
            "sha": sha,
            "workflow": workflow,
            "runnerEnvironment": runner_environment,
        },
    )
    assert got.status_code == 200, got.text
    return {str(k): str(v) for k, v in got.json().items()}


def app_repo(where: Path, seed: str, extra_files: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The example app (examples/agent-flake) committed in a fresh git repository: (dir, sha)."""
    shutil.copytree(APP_FLAKE, where)
    (where / "seed.txt").write_text(f"{seed}\n")
    for name, text in (extra_files or {}).items():
        (where / name).write_text(text)
    return where, app_repo_commit(where)


def app_repo_commit(where: Path) -> str:
    """Make ``where`` a git repository with everything in it committed; the commit's sha."""
    env = {"PATH": os.environ["PATH"], "HOME": str(where), "GIT_CONFIG_NOSYSTEM": "1"}
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=ci@example.org", "-c", "user.name=ci", "commit", "-qm", "app"],
    ):
        subprocess.run(argv, cwd=where, env=env, check=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=where, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    return sha


def nix_wrapper(bin_dir: Path, log: Path) -> Path:
    """A ``nix`` first on PATH that appends its argv and environment (JSON lines) to ``log``."""
    real = shutil.which("nix")
    assert real is not None
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "nix"
    script.write_text(
        "#!/bin/sh\n"
        f'"{sys.executable}" -c \'import json, os, sys; '
        f'open(sys.argv[1], "a").write('
        f'json.dumps({{"argv": sys.argv[2:], "env": dict(os.environ)}}) + "\\n")\''
        f' "{log}" "$@"\n'
        f'exec "{real}" "$@"\n'
    )
    script.chmod(0o755)
    return bin_dir


def recorded(log: Path) -> list[dict[str, Any]]:
    """What the wrapper recorded."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def run_agent(
    name: str, argv: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run ``vega-attest``/``vega-reproduce`` (the installed console scripts) as a CI step would."""
    return subprocess.run(
        [str(BIN / name), *argv], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
