"""cli.md §2: ``vega init`` renders a SHA-pinned, least-privilege workflow and writes it carefully."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vega.cli.main import main
from vega.client.scaffold import DEFAULT_ATTR, WORKFLOW_PATH, render_workflow

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "examples" / "vega-cache.yml"


def test_the_example_is_exactly_what_init_renders_for_the_default_attr() -> None:
    assert render_workflow(DEFAULT_ATTR).encode() == EXAMPLE.read_bytes()


@pytest.mark.parametrize(
    "attr", [DEFAULT_ATTR, "packages.aarch64-linux.my-app", "checks.x86_64-linux.t^out,dev"]
)
def test_the_rendered_workflow_keeps_the_tested_invariants(attr: str) -> None:
    text = render_workflow(attr)
    uses = re.findall(r"^\s*-?\s*uses:\s*(\S+)", text, re.MULTILINE)
    assert len(uses) == 2
    assert all(re.fullmatch(r".+@[0-9a-f]{40}", u) for u in uses), uses
    for needle in ("contents: read", "id-token: write", "persist-credentials: false"):
        assert needle in text
    assert not re.search(r"^\s+pull_request:", text, re.MULTILINE)
    assert f'installable: "${{{{ github.workspace }}}}#{attr}"' in text
    assert "control-plane: https://vega-cache.dev" in text
    assert 'skip-upstream: "true"' in text
    # Least privilege: the workflow level grants nothing; only the job asks for its two scopes.
    assert "\npermissions: {}\n" in text


@pytest.mark.parametrize(
    "attr",
    ['default"\n  evil: true', "x#${{ secrets.TOKEN }}", "a b", "", "a..b", "x" * 256, "ok^"],
)
def test_an_attr_that_could_change_the_yaml_is_refused(
    attr: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--dir", str(tmp_path), f"--attr={attr}"]) == 1
    err = capsys.readouterr().err
    assert "error: --attr " in err
    assert "is not a flake attribute path" in err
    assert not (tmp_path / ".github").exists()
    assert main(["init", "--print", f"--attr={attr}"]) == 1


def test_print_writes_the_workflow_to_stdout_and_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--print", "--force", "--json"]) == 0  # --print takes precedence
    assert capsys.readouterr().out == render_workflow()
    assert list(tmp_path.iterdir()) == []


def test_init_writes_the_workflow_and_says_what_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"\u2726 Wrote {WORKFLOW_PATH}\n")
    assert "git switch -c add-vega-cache" in out
    assert "https://github.com/apps/vega-cache" in out
    assert "\nNext:\n  1. Check the installable" in out  # one line a step, not one long line
    assert "\n       https://github.com/apps/vega-cache\n" in out
    assert (tmp_path / WORKFLOW_PATH).read_text() == render_workflow()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / WORKFLOW_PATH
    target.parent.mkdir(parents=True)
    target.write_text("# mine\n")
    assert main(["init", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"error: {WORKFLOW_PATH} already exists" in err
    assert "Try:" in err
    assert "vega init --force" in err
    assert "vega init --print" in err
    assert target.read_text() == "# mine\n"

    assert (
        main(["init", "--dir", str(tmp_path), "--force", "--attr", "packages.x86_64-linux.app", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {
        "written": str(target.absolute()),
        "attr": "packages.x86_64-linux.app",
    }
    assert target.read_text() == render_workflow("packages.x86_64-linux.app")
    assert [p.name for p in target.parent.iterdir()] == ["vega-cache.yml"]  # no temporary left


def test_force_never_follows_a_symlink_or_replaces_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not yours\n")
    repo = tmp_path / "repo"
    target = repo / WORKFLOW_PATH
    target.parent.mkdir(parents=True)
    target.symlink_to(elsewhere)
    assert main(["init", "--dir", str(repo), "--force"]) == 1
    assert "is not a regular file; refusing to replace it" in capsys.readouterr().err
    assert elsewhere.read_text() == "not yours\n"
    target.unlink()
    target.mkdir()
    assert main(["init", "--dir", str(repo), "--force"]) == 1
    assert "is not a regular file" in capsys.readouterr().err


def test_an_unwritable_target_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / ".github"
    blocker.write_text("a file where a directory should be\n")
    assert main(["init", "--dir", str(tmp_path)]) == 1
    assert "error: cannot write " in capsys.readouterr().err
