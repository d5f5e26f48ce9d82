"""agent/action.yml and .github/workflows/reproduce.yml, their steps run the way the runner would.

The stand-in runner (tests/github/runner.py) runs every ``run:`` step with its ``env:`` block
(expressions evaluated), ``bash -eo pipefail`` and the runner's variables, against a real
``vega-server serve --dev`` whose development OIDC issuer plays the Actions token service.

Stood in for, because they need github.com or install software on the host: the Nix installer
(the machine's nix with the suite's configuration, tests/conftest.py), ``actions/setup-python``
(its ``python-path`` output is this machine's python3), ``actions/checkout`` (a copy of this
repository's files). The action's install step runs for real: a fresh venv, the locked
dependencies from PyPI with ``--require-hashes``, this package built from the action's checkout.
In the reproduce workflow the control-plane URL, fixed to https://vega-cache.dev in the YAML, is
replaced by the development server's (the only change to the file), and its install step (the
same commands as the action's, checked below) is stood in for by this test environment's venv.

Spec: issue 13 (GitHub integration); agent.md §2, §12; protocol.md §8, §10.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import NixRunner
from tests.e2e.agents import APP_REPOSITORY, ServerProcess, app_repo
from tests.github.runner import Job, evaluate, load

pytestmark = [pytest.mark.nix, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent.parent
ACTION = ROOT / "agent" / "action.yml"
REPRODUCE = ROOT / ".github" / "workflows" / "reproduce.yml"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server", tmp_path / "server.log")
    try:
        yield proc
    finally:
        proc.stop()


def checkout_copy(where: Path) -> Path:
    """What ``actions/checkout`` would put on the runner: this repository's package files."""
    for name in ("pyproject.toml", "README.md"):
        where.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, where / name)
    shutil.copytree(ROOT / "agent", where / "agent")
    shutil.copytree(ROOT / "src", where / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return where


def runner_environ(nix: NixRunner, home: Path) -> dict[str, str]:
    """The runner's own environment: PATH without this venv, nix configured, a fresh HOME."""
    venv_bin = str(Path(sys.executable).parent)
    path = ":".join(p for p in os.environ["PATH"].split(":") if p != venv_bin)
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": path,
        "HOME": str(home),
        "NIX_CONFIG": nix.env["NIX_CONFIG"],
        "XDG_CACHE_HOME": nix.env["XDG_CACHE_HOME"],
        "NO_COLOR": "1",
    }


def action_inputs(with_: dict[str, str]) -> dict[str, str]:
    """``inputs`` of the composite action: what ``with:`` gives, else each input's default."""
    spec = load(ACTION)["inputs"]
    unknown = set(with_) - set(spec)
    assert not unknown, f"not inputs of the action: {unknown}"
    values = {}
    for name, meta in spec.items():
        if name in with_:
            values[name] = with_[name]
        else:
            assert not meta.get("required"), f"required input {name} not given"
            values[name] = str(meta.get("default", ""))
    return values


def test_the_action_installs_the_agent_by_hash_and_attests_against_a_dev_server(
    server: ServerProcess, nix: NixRunner, tmp_path: Path
) -> None:
    if nix.text("nix", "eval", "--impure", "--raw", "--expr", "builtins.currentSystem") != "x86_64-linux":
        pytest.skip("the example app's vega.yaml names x86_64-linux outputs")
    workspace, sha = app_repo(tmp_path / "work" / "app", f"action run {time.time_ns()}")
    action_checkout = checkout_copy(tmp_path / "actions" / "vega")
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    ci = server.ci_env(APP_REPOSITORY, sha)
    environ = runner_environ(nix, tmp_path / "home") | {
        k: ci[k] for k in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    }
    job = Job(
        workspace=workspace,
        temp=temp,
        environ=environ,
        inputs=action_inputs(
            {
                "installable": f"{workspace}#packages.x86_64-linux.app",
                "control-plane": server.url,
                "exclude": "*-docs, *.iso",
                "max-nar-bytes": "1G",
            }
        ),
        github={"repository": APP_REPOSITORY, "sha": sha, "workspace": str(workspace)},
        action_path=action_checkout / "agent",
    )
    steps: list[dict[str, Any]] = load(ACTION)["runs"]["steps"]
    assert load(ACTION)["runs"]["using"] == "composite"
    ran = []
    for n, step in enumerate(steps):
        uses = step.get("uses", "")
        if uses.startswith("DeterminateSystems/nix-installer-action@"):
            continue  # stood in for: the machine's nix, configured as the suite's (NIX_CONFIG)
        if uses.startswith("actions/setup-python@"):
            assert evaluate(str(step["with"]["python-version"]), job.contexts()) == "3.12"
            job.steps[step["id"]] = {"outputs": {"python-path": shutil.which("python3") or "python3"}}
            continue
        assert not uses, f"no stand-in for {uses}"
        result = job.run(step, n)
        assert result.returncode == 0, f"{step['name']}:\n{result.stdout}\n{result.stderr}"
        ran.append((step["name"], result))
    assert [name for name, _ in ran] == [
        "Install the Vega agent (dependencies pinned by hash)",
        "Build, publish and attest",
    ]
    installed, attested = ran[0][1], ran[1][1]
    assert "vega 0.18.0" in installed.stdout
    assert (temp / "vega-agent" / "bin" / "vega-attest").exists()

    out = attested.stdout
    # vega.yaml declares the builds; the exclude input reached the agent: docs is skipped.
    assert "vega.yaml: building 4 declared output(s)." in out, out
    tenant = sorted(
        {line.split()[1].split("-", 1)[1] for line in out.splitlines() if line.startswith("[tenant]")}
    )
    assert tenant == ["example-app", "example-app-lib", "example-app-stamp"], out
    assert "example-app-docs" in out + attested.stderr  # each skip is logged
    assert f"extra-substituters = {server.url}/tenant/{APP_REPOSITORY}" in out
    statuses = {}
    for line in out.splitlines():
        if line.startswith("[tenant]"):
            hash_part = line.split()[1].removeprefix("/nix/store/")[:32]
            statuses[line.split()[1]] = httpx2.get(f"{server.url}/api/status/{hash_part}").json()
    assert all(s["tenants"] == [APP_REPOSITORY] for s in statuses.values()), statuses


def test_a_malformed_input_fails_the_step_before_anything_is_published(
    server: ServerProcess, nix: NixRunner, tmp_path: Path
) -> None:
    """max-nar-bytes reaches the agent through env: a malformed value fails the run (changes-0.19)."""
    workspace, sha = app_repo(tmp_path / "app", f"action bad input {time.time_ns()}")
    temp = tmp_path / "runner-temp"
    (temp / "vega-agent").mkdir(parents=True)
    (temp / "vega-agent" / "bin").symlink_to(Path(sys.executable).parent)  # the install step, stood in for
    ci = server.ci_env(APP_REPOSITORY, sha)
    job = Job(
        workspace=workspace,
        temp=temp,
        environ=runner_environ(nix, tmp_path / "home") | ci,
        inputs=action_inputs({"control-plane": server.url, "max-nar-bytes": "lots"}),
        github={"repository": APP_REPOSITORY, "sha": sha, "workspace": str(workspace)},
        action_path=ROOT / "agent",
    )
    step = next(s for s in load(ACTION)["runs"]["steps"] if s.get("name") == "Build, publish and attest")
    result = job.run(step, 0)
    assert result.returncode == 1
    assert "error: VEGA_MAX_NAR_BYTES: expected a number of bytes" in result.stderr
    assert httpx2.get(f"{server.url}/log/sth").json()["size"] == 0


def reproduce_job(tmp_path: Path, nix: NixRunner, inputs: dict[str, str], extra: dict[str, str]) -> Job:
    spec = load(REPRODUCE)["on"]["workflow_call"]["inputs"]
    values = {name: inputs.get(name, str(meta.get("default", ""))) for name, meta in spec.items()}
    workspace = tmp_path / "work"
    workspace.mkdir(parents=True, exist_ok=True)
    temp = tmp_path / "runner-temp"
    temp.mkdir(exist_ok=True)
    return Job(
        workspace=workspace,
        temp=temp,
        environ=runner_environ(nix, tmp_path / "home") | extra,
        inputs=values,
        github={"repository": "caller-org/caller", "sha": "c" * 40, "workspace": str(workspace)},
    )


def workflow_steps() -> list[dict[str, Any]]:
    doc = load(REPRODUCE)
    (job,) = doc["jobs"].values()
    return list(job["steps"])


@pytest.mark.parametrize("label", ["self-hosted", "ubuntu-latest\n::add-mask::x", "ubuntu-latest "])
def test_the_reproduce_workflow_refuses_a_runner_outside_the_allow_list(
    nix: NixRunner, tmp_path: Path, label: str
) -> None:
    job = reproduce_job(tmp_path, nix, {"runner": label}, {})
    step = workflow_steps()[0]
    assert step["name"] == "Constrain runner"
    result = job.run(step, 0)
    assert result.returncode == 1
    (line,) = result.stdout.splitlines()  # one workflow command; a newline cannot start another
    assert line.startswith("::error::runner '")
    assert "is not allowed" in line


def test_the_reproduce_workflow_reproduces_from_its_own_commit_against_a_dev_server(
    server: ServerProcess, nix: NixRunner, tmp_path: Path
) -> None:
    if nix.text("nix", "eval", "--impure", "--raw", "--expr", "builtins.currentSystem") != "x86_64-linux":
        pytest.skip("the example app's outputs are named for x86_64-linux")
    app, sha = app_repo(tmp_path / "app", f"reproduce workflow {time.time_ns()}")
    # Builder A, the application's own CI (the agent directly; its action is tested above).
    env = runner_environ(nix, tmp_path / "home-a") | server.ci_env(APP_REPOSITORY, sha)
    env |= {"PATH": f"{Path(sys.executable).parent}:{env['PATH']}", "GITHUB_WORKSPACE": str(app)}
    done = subprocess.run(["vega-attest"], cwd=app, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    path = nix.text("nix", "path-info", f"{app}#packages.x86_64-linux.app")
    nar_hash = nix.text("nix", "path-info", "--json", path).split('"narHash":"')[1].split('"')[0]

    # The reproducer job: its OIDC identity is the reusable workflow of vega-org/repro, pinned.
    ci = server.reproducer_env(sha)
    ci_workflow = {k: ci[k] for k in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")}
    mirrors = {
        "VEGA_GITHUB_MIRRORS": f"{APP_REPOSITORY}=git+file://{app}",
        "VEGA_NIX_STORE": str(tmp_path / "builder-b"),
    }
    job = reproduce_job(
        tmp_path,
        nix,
        {
            "flake_ref": f"github:{APP_REPOSITORY}",
            "attr": "packages.x86_64-linux.app",
            "rev": sha,
            "expect_store_path": path,
            "expect_narhash": nar_hash,
            "hash": path.removeprefix("/nix/store/")[:32],
            "runner": "ubuntu-24.04",
        },
        ci_workflow | mirrors,
    )
    steps = workflow_steps()
    names = [s.get("name") for s in steps]
    assert names == [
        "Constrain runner",
        "Locate this workflow's own repository and commit",
        "Check out the reproducer at the called ref",
        "Install Nix (sandboxed, native builds only)",
        "Set up Python for the reproducer",
        "Install the Vega reproducer (dependencies pinned by hash)",
        "Reproduce and attest",
    ]
    assert job.run(steps[0], 0).returncode == 0

    located = job.run(steps[1], 1)
    assert located.returncode == 0, located.stderr
    # The development issuer puts the job's sha in job_workflow_sha (the reproducer's repo and the
    # workflow's commit are the same repository there); the repository is the workflow's, never
    # the caller's (github.repository is caller-org/caller here).
    assert located.outputs == {"repository": "vega-org/repro", "sha": sha}

    checkout = steps[2]
    assert checkout["uses"].startswith("actions/checkout@")
    with_ = {
        k: evaluate(str(v).lower() if isinstance(v, bool) else str(v), job.contexts())
        for k, v in checkout["with"].items()
    }
    assert with_ == {
        "repository": "vega-org/repro",
        "ref": sha,
        "path": "vega",
        "persist-credentials": "false",
    }
    checkout_copy(job.workspace / "vega")  # stood in for

    nix_conf = steps[3]["with"]["extra-conf"].split("\n")
    for line in ("sandbox = true", "sandbox-fallback = false", "extra-platforms ="):
        assert line in nix_conf
    assert evaluate(str(steps[4]["with"]["python-version"]), job.contexts()) == "3.12"

    # The install step: the action's commands, with the checkout's paths.
    action_install = next(
        s for s in load(ACTION)["runs"]["steps"] if s.get("name", "").startswith("Install the Vega")
    )
    assert steps[5]["run"] == action_install["run"].replace(
        '"$GITHUB_ACTION_PATH/requirements.txt"', '"$GITHUB_WORKSPACE/vega/agent/requirements.txt"'
    ).replace('"$GITHUB_ACTION_PATH/.."', '"$GITHUB_WORKSPACE/vega"'), (
        "the reproducer installs differently from the action"
    )
    (job.temp / "vega-agent").mkdir()
    (job.temp / "vega-agent" / "bin").symlink_to(Path(sys.executable).parent)  # stood in for

    reproduce = dict(steps[6])
    assert reproduce["env"]["VEGA_URL"] == "https://vega-cache.dev"  # fixed, never an input
    reproduce["env"] = dict(reproduce["env"], VEGA_URL=server.url)  # the one substitution (see above)
    result = job.run(reproduce, 6)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[reproduced] {path}" in result.stdout
    assert f"[shared] {path} (agreement)" in result.stdout
    assert (tmp_path / "builder-b" / path.removeprefix("/")).exists()


def test_no_run_script_interpolates_an_expression() -> None:
    """Inputs reach scripts only through env (zizmor's template-injection, asserted directly)."""
    steps = [*load(ACTION)["runs"]["steps"], *workflow_steps()]
    scripts = [s["run"] for s in steps if "run" in s]
    assert len(scripts) == 6
    assert not [s for s in scripts if re.search(r"\$\{\{", s)]
