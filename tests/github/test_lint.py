"""The GitHub files pass actionlint and zizmor (offline), and the linters really look at them.

The action, the reusable reproduce workflow, ``examples/vega-cache.yml`` and a workflow freshly
written by ``vega init`` are linted as .ci/run does; a deliberately broken copy of each kind
shows the linter run is not a no-op. The action's input names are checked by actionlint through
a workflow that ``uses: ./agent``.

Spec: issue 13 (GitHub integration); agent.md §2, §12; cli.md §2.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from vega.cli.main import main

ROOT = Path(__file__).resolve().parent.parent.parent
ACTION = ROOT / "agent" / "action.yml"
REPRODUCE = ROOT / ".github" / "workflows" / "reproduce.yml"
EXAMPLE = ROOT / "examples" / "vega-cache.yml"


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


def actionlint(*paths: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("actionlint"), "-no-color", *map(str, paths)], cwd=cwd, capture_output=True, text=True
    )


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    argv = [tool("zizmor"), "--offline", "--persona", "auditor", "--no-progress", *map(str, paths)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})


def test_the_repository_files_and_a_fresh_vega_init_pass_both_linters(tmp_path: Path) -> None:
    assert main(["init", "--dir", str(tmp_path), "--attr", "packages.x86_64-linux.app", "--json"]) == 0
    generated = tmp_path / ".github" / "workflows" / "vega-cache.yml"
    lint = actionlint(REPRODUCE, EXAMPLE, generated)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    audit = zizmor(ACTION, REPRODUCE, ROOT / ".github" / "dependabot.yml", EXAMPLE, generated)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "No findings to report" in audit.stdout


def test_zizmor_flags_an_input_interpolated_into_a_script_and_an_unpinned_action(tmp_path: Path) -> None:
    action = tmp_path / "action.yml"
    text = ACTION.read_text()
    run = '        "$VEGA_AGENT_VENV/bin/vega-attest" "$VEGA_INSTALLABLE"\n'
    assert run in text
    action.write_text(
        text.replace(run, '        vega-attest "${{ inputs.installable }}"\n').replace(
            "actions/setup-python@e797f83bcb11b83ae66e0230d6156d7c80228e7c", "actions/setup-python@v6"
        )
    )
    audit = zizmor(action)
    assert audit.returncode != 0
    assert "template-injection" in audit.stdout
    assert "unpinned-uses" in audit.stdout


def test_actionlint_checks_the_action_inputs_a_workflow_passes(tmp_path: Path) -> None:
    (tmp_path / "agent").mkdir()
    shutil.copy(ACTION, tmp_path / "agent" / "action.yml")
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    inputs = {
        "installable": ".#",
        "control-plane": "https://vega-cache.dev",
        "audience": "",
        "skip-upstream": '"true"',
        "reuse-cache": '"false"',
        "build-timeout-minutes": '"30"',
        "extra-substituters": "",
        "extra-trusted-public-keys": "",
        "exclude": '"*.erofs,*.iso"',
        "max-nar-bytes": '"1000000000"',
    }
    body = "\n".join(f"          {k}: {v}" for k, v in inputs.items())
    workflow = f"""\
on: push
permissions: {{}}
jobs:
  cache:
    runs-on: ubuntu-latest
    permissions:
      contents: read
      id-token: write
    steps:
      - uses: ./agent
        with:
{body}
"""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    good = workflows / "good.yml"
    good.write_text(workflow)
    lint = actionlint(good, cwd=tmp_path)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    bad = workflows / "bad.yml"
    bad.write_text(workflow.replace("          control-plane:", "          control_plane:"))
    lint = actionlint(bad, cwd=tmp_path)
    assert lint.returncode != 0
    assert 'input "control_plane" is not defined' in lint.stdout
    assert 'missing input "control-plane"' in lint.stdout


def test_actionlint_flags_a_broken_reproduce_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "reproduce.yml"
    text = REPRODUCE.read_text()
    assert "inputs.expect_narhash }}" in text
    broken.write_text(text.replace("inputs.expect_narhash }}", "inputs.expected_narhash }}"))
    lint = actionlint(broken)
    assert lint.returncode != 0
    assert 'property "expected_narhash" is not defined' in lint.stdout
