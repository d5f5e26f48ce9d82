"""cli.md §13-§14: ``vega assess`` (input, texts, exit codes) and ``vega mcp``'s flags; help stays light.

The assessment runs over the real control plane in process (tests.mcp.test_tools.Bench), and once
as a user runs it: ``vega assess --added-paths -`` against uvicorn on loopback.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import loopback_socket, serving
from tests.mcp.test_tools import HELLO, Bench
from vega.cli.commands.assess import (
    MAX_INPUT_CHARS,
    execute,
    parse_added_paths,
    read_added_paths,
)
from vega.cli.main import build_parser, main
from vega.core.signing import format_public_key
from vega.errors import ConfigError

ENV = {"NO_COLOR": "1"}


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    with b.h.client:
        yield b


def _run(bench: Bench, paths: list[str], *flags: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["assess", "--added-paths", "-", *flags])
    out, err = io.StringIO(), io.StringIO()
    code = execute(args, bench.ctx, paths, ENV, out, err)
    return code, out.getvalue(), err.getvalue()


def test_input_shapes() -> None:
    assert parse_added_paths('["/nix/store/a", 3, "/nix/store/b"]') == ["/nix/store/a", "/nix/store/b"]
    gate = {"installable": ".#x", "verdict": "warn", "added": ["/nix/store/c"], "removed": []}
    assert parse_added_paths(json.dumps(gate)) == ["/nix/store/c"]
    for bad in ("{}", '"x"', "nope", '{"added": 3}'):
        with pytest.raises(ConfigError, match="invalid --added-paths input"):
            parse_added_paths(bad)


def test_input_size_and_read_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="could not read -") as e:
        read_added_paths("-", io.StringIO("x" * (MAX_INPUT_CHARS + 1)))
    assert e.value.next_steps == (f"input exceeds {MAX_INPUT_CHARS} bytes",)
    big = tmp_path / "big.json"
    big.write_text("x" * (MAX_INPUT_CHARS + 1))
    with pytest.raises(ConfigError, match=rf"--added-paths input exceeds {MAX_INPUT_CHARS} bytes"):
        read_added_paths(str(big))
    with pytest.raises(ConfigError, match=r"could not read /nonexistent/x\.json"):
        read_added_paths("/nonexistent/x.json")
    assert read_added_paths("-", io.StringIO("[]")) == "[]"


def test_allow_warn_deny_texts_and_exit_codes(bench: Bench) -> None:
    bench.promote(HELLO)
    code, out, _ = _run(bench, [HELLO.store_path])
    assert code == 0
    assert f"  allow  {HELLO.store_path}  [SHARED_REPRODUCED, TRANSPARENCY_LOG_INCLUDED]" in out
    assert "✦ change assessment: allow (1/1 assessed, 0 deny, 0 warn)" in out

    missing = "/nix/store/" + "1" * 32 + "-gone"
    code, out, err = _run(bench, [HELLO.store_path, missing])
    assert code == 0
    assert f"  warn  {missing}  [NOT_IN_CACHE]" in out
    assert (
        "warning: change assessment: warn (2/2 assessed, 0 deny, 1 warn) [change.hasUnverifiedPaths]" in err
    )

    bench.recorder.tamper[f"/{HELLO.hash_part}.narinfo"] = lambda b: b.replace(b"NarSize: ", b"NarSize: 9")
    code, out, err = _run(bench, [HELLO.store_path])
    assert code == 1
    assert f"  deny  {HELLO.store_path}  [SIGNATURE_INVALID]" in out
    assert "error: change assessment: deny (1/1 assessed, 1 deny, 0 warn) [change.hasDeniedPaths]" in err
    assert "Try:" in err
    code, out, _ = _run(bench, [HELLO.store_path], "--json")
    assert code == 1
    env = json.loads(out)
    assert env["schemaVersion"] == "vega.verdict.v1"
    assert env["verdict"] == "deny"
    assert out.count("\n") == 1


def test_cli_cap_is_50_by_default(bench: Bench) -> None:
    code, out, _ = _run(bench, [f"bad {i}" for i in range(55)], "--json")
    assert code == 0
    env = json.loads(out)
    assert env["evidence"]["addedClosure"] == {"count": 55, "assessed": 50, "truncated": True}
    assert env["reasonCodes"] == ["change.hasUnverifiedPaths", "change.truncated"]


def test_real_cli_over_a_socket_with_stdin(
    bench: Bench, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.promote(HELLO)
    sock, url = loopback_socket()
    with serving(bench.h.app, sock):
        key = format_public_key(bench.h.keys.shared.public)
        monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"added": [HELLO.store_path]})))
        assert main(["assess", "--added-paths", "-", "--url", url, "--public-key", key]) == 0
        assert "change assessment: allow (1/1 assessed" in capsys.readouterr().out
        monkeypatch.setattr(sys, "stdin", io.StringIO("{}"))
        assert main(["assess", "--added-paths", "-", "--url", url, "--public-key", key]) == 1
        assert "error: invalid --added-paths input" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mcp", "--max-scan", "0"], "--max-scan must be a positive integer"),
        (["mcp", "--max-scan", "x"], "--max-scan must be a positive integer"),
        (["mcp", "--public-key", "nope"], "--public-key is not a valid '<name>:<base64>' key"),
        (["mcp", "--url", "http://example.com"], "control plane must be a valid https URL"),
        (["assess", "--added-paths", "/nonexistent.json"], "could not read /nonexistent.json"),
    ],
)
def test_bad_flags_fail_before_serving(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(argv) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["mcp", "--help"], ["assess", "--help"]])
def test_help_imports_no_third_party_library(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from vega.cli.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'mcp', 'mcp_types', 'pydantic', 'anyio', "
        "'httpx2', 'rich', 'cryptography', 'zstandard'})\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr == "[]"
