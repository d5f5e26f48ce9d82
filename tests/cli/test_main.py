"""cli.md §1: version, bare invocation, usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vega import __version__
from vega.cli.main import main


def test_version_flag_prints_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == __version__ == "0.18.0"


def test_bare_vega_prints_header_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\u2726 Vega\n")
    assert "usage: vega" in out


def test_usage_error_exits_1_with_hint(capsys: pytest.CaptureFixture[str]) -> None:
    """cli.md §1: a usage error prints the parser's error and a hint, exit 1."""
    with pytest.raises(SystemExit) as e:
        main(["--no-such-flag"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "error: unrecognized arguments: --no-such-flag" in err
    assert "vega <command> --help" in err


@pytest.mark.parametrize("name", ["report", "diff", "gate", "dashboard"])
def test_promised_commands_say_plainly_they_are_not_here_yet(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from vega.cli.main import COMMANDS, PLANNED

    if name in COMMANDS:
        pytest.skip(f"vega {name} exists now")
    assert main([name, "add", "someone"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: vega {name} ({PLANNED[name]}) is not available in vega {__version__} yet")
    assert "invalid choice" not in err


def test_unknown_option_of_a_subcommand_shows_that_subcommands_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["whoami", "--bogus"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("usage: vega whoami")
    assert "error: unrecognized arguments: --bogus" in err
    assert "vega whoami --help" in err


def test_help_shows_examples_of_the_main_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("vega login", "vega push", "vega verify", "vega status", "vega doctor"):
        assert f"\n  {command} " in out


def test_no_output_suggests_a_command_that_does_not_exist() -> None:
    """Every `vega <word>` the CLI and client print names a command this version has."""
    import re
    from pathlib import Path

    import vega
    from vega.cli.main import COMMANDS, PLANNED

    root = Path(vega.__file__).parent
    offenders = []
    for path in [*root.glob("cli/**/*.py"), *root.glob("client/**/*.py")]:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith(('"""', "#")) or "``vega" in line:
                continue  # docstrings and comments are not output
            if re.match(r'\s+"[a-z]+": "', line) and path.name == "main.py":
                continue  # the table of planned commands itself
            for word in re.findall(r"[`'\" ]vega ([a-z][a-z-]+)", line):
                if word in PLANNED and word not in COMMANDS:
                    offenders.append(f"{path.relative_to(root)}:{lineno}: vega {word}")
    assert offenders == []


def test_json_commands_print_a_json_error_object_when_they_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    bad = tmp_path / "vega" / "credential"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    code = main(["whoami", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    obj = json.loads(captured.out)
    assert obj == {"ok": False, "error": obj["error"], "try": obj["try"], "exitCode": 1}
    assert "credential" in obj["error"]
    assert captured.err.startswith("error: ")
