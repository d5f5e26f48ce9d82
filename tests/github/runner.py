"""A small stand-in for the GitHub Actions runner: run a step's ``run:`` script as the runner would.

What it does like the runner: the step's ``env:`` block on top of the job's environment and the
``GITHUB_*``/``RUNNER_*`` variables; the ``${{ }}`` expressions of env blocks evaluated; the script
written to a file under ``RUNNER_TEMP`` and run with ``bash --noprofile --norc -eo pipefail`` (the
runner's ``shell: bash``) in ``GITHUB_WORKSPACE``; ``GITHUB_OUTPUT`` read back into the step's
outputs (``name=value`` and ``name<<DELIMITER`` forms).

What it evaluates: only the simple forms these files use -- a context path (``inputs.x``,
``runner.temp``, ``steps.<id>.outputs.<name>``, ``github.<name>``) and a quoted string. Anything
else raises, so a new expression in the YAML fails the test until the evaluator learns it. An
expression inside a ``run:`` script is refused outright (inputs reach scripts only through env).

Spec: issue 13 (a test runs the action's run: steps the way the runner would).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

__all__ = ["Job", "StepResult", "evaluate", "load"]

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")


def load(path: Path) -> Any:
    """A workflow or action file as plain data (YAML 1.2, safe loader)."""
    return YAML(typ="safe", pure=True).load(path.read_text())


def evaluate(text: str, contexts: Mapping[str, Any]) -> str:
    """``text`` with every ``${{ expr }}`` replaced by its value as the runner renders it."""

    def one(match: re.Match[str]) -> str:
        expr = match.group(1)
        if len(expr) >= 2 and expr[0] == expr[-1] == "'":
            return expr[1:-1].replace("''", "'")
        if not _PATH.fullmatch(expr):
            raise NotImplementedError(f"the test evaluator does not know {expr!r}")
        value: Any = contexts
        for part in expr.split("."):
            if not isinstance(value, Mapping):
                raise KeyError(expr)
            value = value.get(part, "")  # a missing property is the empty string, as on GitHub
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)

    return _EXPR.sub(one, text)


@dataclass
class StepResult:
    """One step's outcome."""

    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]


def _read_outputs(path: Path) -> dict[str, str]:
    outputs: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body: list[str] = []
            i += 1
            while lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            outputs[name] = "\n".join(body)
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
        i += 1
    return outputs


@dataclass
class Job:
    """A job on the stand-in runner: its environment, contexts and the outputs of its steps."""

    workspace: Path
    temp: Path
    environ: dict[str, str]
    inputs: dict[str, str]
    github: dict[str, str] = field(default_factory=dict)
    steps: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    action_path: Path | None = None

    def contexts(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "runner": {"temp": str(self.temp), "os": "Linux", "arch": "X64"},
            "github": self.github,
            "steps": self.steps,
            "env": self.environ,
        }

    def run(self, step: Mapping[str, Any], n: int) -> StepResult:
        """Run one ``run:`` step (step number ``n``) as the runner would."""
        script = step["run"]
        assert "${{" not in script, f"step {step.get('name')!r} interpolates an expression into its script"
        shell = step.get("shell", "bash")
        assert shell == "bash", f"the stand-in runner runs shell: bash only, not {shell!r}"
        env = dict(self.environ)
        env.update(
            {
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKSPACE": str(self.workspace),
                "RUNNER_TEMP": str(self.temp),
                "RUNNER_OS": "Linux",
            }
        )
        env.update({f"GITHUB_{k.upper()}": v for k, v in self.github.items() if k != "workspace"})
        if self.action_path is not None:
            env["GITHUB_ACTION_PATH"] = str(self.action_path)
        output = self.temp / f"_output_{n}"
        output.write_text("")
        env["GITHUB_OUTPUT"] = str(output)
        for name, value in (step.get("env") or {}).items():
            env[str(name)] = evaluate(str(value), self.contexts())
        file = self.temp / f"_step_{n}.sh"
        file.write_text(script)
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(file)],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        outputs = _read_outputs(output)
        if "id" in step:
            self.steps[str(step["id"])] = {"outputs": outputs}
        return StepResult(done.returncode, done.stdout, done.stderr, outputs)
