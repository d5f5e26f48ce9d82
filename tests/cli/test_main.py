"""cli.md §1: version, bare invocation, usage errors."""

from __future__ import annotations

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
