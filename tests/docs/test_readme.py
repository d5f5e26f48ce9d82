"""The README runs: every command it shows is run here against a real dev server, output checked.

``tests/docs/readme_blocks.py`` reads the README's shell blocks. This test starts the server the
README starts (``vega-server serve --dev``, a free loopback port), runs every ``$ command`` of
the ``console`` blocks in order in one throw-away HOME (a ``cd`` carries over to the next
command), with the suite's Nix configuration, proxies that point nowhere for every non-loopback
host, and ``http://127.0.0.1:8080`` replaced by the server's URL, and checks each output against
the lines the README shows. It also starts the README's ``mcpServers`` entry with the MCP SDK's
stdio client. A shell block that is neither run nor marked ``not run`` with a reason fails.

Spec: issue 12 ("The README speaks to users first").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.conftest import NIX_CONFIG
from tests.docs.readme_blocks import Block, output_pattern, parse_blocks

ROOT = Path(__file__).resolve().parent.parent.parent
README = ROOT / "README.md"
PLACEHOLDER_URL = "http://127.0.0.1:8080"
NOWHERE = "http://127.0.0.1:9"  # the discard port: a proxy that refuses, so no other host is reached


def _blocks() -> list[Block]:
    return parse_blocks(README.read_text())


def test_every_shell_block_is_run_or_says_why_not() -> None:
    blocks = _blocks()
    assert blocks, "the README has no shell block"
    unmarked = [b.line for b in blocks if b.marker is None and b.language != "console"]
    assert not unmarked, f"README shell blocks at lines {unmarked} are neither run nor marked not run"
    for b in blocks:
        if b.marker == "not run":
            assert b.reason, f"README line {b.line}: a not-run block must say why"
        else:
            assert b.language == "console", f"README line {b.line}: only console blocks run"
            assert b.steps, f"README line {b.line}: a run block with no '$ command' line"
            assert b.text.lstrip().startswith("$ "), f"README line {b.line}: output before any command"
    servers = [b for b in blocks if b.marker == "run"]
    assert len(servers) == 1, "exactly one server block"
    assert len(servers[0].steps) == 1, "the server block runs one command"


def test_the_two_setup_commands_come_first() -> None:
    first = _blocks()[0]
    assert first.marker == "not run"
    assert [line.split()[0] for line in first.text.splitlines()] == ["scripts/demo", ".ci/run"]


def test_output_pattern_placeholders() -> None:
    pattern = output_pattern(["✦ a …", "…", "  b"])
    assert pattern.fullmatch("✦ a 123\nx\ny\n  b\n")
    assert pattern.fullmatch("✦ a \n  b\n")
    assert not pattern.fullmatch("✦ a 1\n  c\n")
    assert not pattern.fullmatch("✦ b 1\n  b\n")
    assert not output_pattern(["x …"]).fullmatch("x 1\ny\n")  # … stays within its line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _normalise(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    return "".join(line + "\n" for line in lines)


@pytest.fixture
def readme_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment with nothing of this machine's: throw-away HOME, no other host."""
    home = tmp_path / "home"
    home.mkdir()
    keep = ("LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "LOGNAME")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        NIX_CONFIG=NIX_CONFIG,
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",  # stdout and stderr interleave as on a terminal
        HTTP_PROXY=NOWHERE,
        HTTPS_PROXY=NOWHERE,
        ALL_PROXY=NOWHERE,
        http_proxy=NOWHERE,
        https_proxy=NOWHERE,
        all_proxy=NOWHERE,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


@pytest.fixture
def readme_server(readme_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The README's server command on a free port; yields its URL and what it printed."""
    block = next(b for b in _blocks() if b.marker == "run")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S602 - the README's own command line
            f"{block.steps[0].command} --port {port}",
            shell=True,
            env=readme_env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(600):
            assert proc.poll() is None, log.read_text()
            try:
                if httpx2.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"the README's server did not answer: {log.read_text()}")
        printed = log.read_text()
        pattern = output_pattern([line.replace(PLACEHOLDER_URL, url) for line in block.steps[0].expected])
        assert pattern.match(_normalise(printed)), (
            f"README line {block.line}: `{block.steps[0].command}` printed:\n{printed}"
        )
        yield url, printed
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.nix
def test_readme_commands_run_and_print_what_it_shows(
    readme_server: tuple[str, str], readme_env: dict[str, str], tmp_path: Path
) -> None:
    if shutil.which("nix") is None:
        pytest.skip("nix is not installed")
    url, _ = readme_server
    cwd = ROOT
    cwd_file = tmp_path / "cwd"
    failures: list[str] = []
    for block in _blocks():
        if block.marker is not None:
            continue
        for step in block.steps:
            command = step.command.replace(PLACEHOLDER_URL, url)
            script = f"cd {str(cwd)!r} || exit 99\n{command}\nrc=$?\npwd > {str(cwd_file)!r}\nexit $rc\n"
            done = subprocess.run(
                ["bash", "-c", script],
                env=readme_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=180,
            )
            cwd = Path(cwd_file.read_text().strip())
            actual = _normalise(done.stdout)
            pattern = output_pattern([line.replace(PLACEHOLDER_URL, url) for line in step.expected])
            if done.returncode != 0 or not pattern.fullmatch(actual):
                failures.append(
                    f"README block at line {block.line}: `$ {step.command}` exited {done.returncode}"
                    f" and printed:\n{actual.replace(url, PLACEHOLDER_URL)}"
                )
    assert not failures, "\n".join(failures)


def _mcp_entry() -> dict[str, Any]:
    text = README.read_text()
    match = re.search(r"```json\n(\{\n  \"mcpServers\".*?)\n```", text, re.DOTALL)
    assert match is not None, "the README shows no mcpServers snippet"
    entry: dict[str, Any] = json.loads(match.group(1))["mcpServers"]["vega"]
    return entry


def test_the_mcp_snippet_starts_vega_mcp(readme_server: tuple[str, str], readme_env: dict[str, str]) -> None:
    pytest.importorskip("mcp")
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    url, printed = readme_server
    shared_key = re.search(r"extra-trusted-public-keys = (vega-cache-1:\S+)", printed)
    assert shared_key is not None
    entry = _mcp_entry()
    assert entry["command"] == "vega"
    args = [
        shared_key.group(1)
        if a == "vega-cache-1:<base64 of the shared key>"
        else url
        if a == "https://vega-cache.dev"
        else a
        for a in entry["args"]
    ]
    command = shutil.which("vega", path=readme_env["PATH"])
    assert command is not None
    params = StdioServerParameters(command=command, args=args, env=readme_env, cwd=readme_env["HOME"])

    async def tools() -> list[str]:
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                return sorted(t.name for t in (await s.list_tools()).tools)

    names = anyio.run(tools)
    assert "vega_verify" in names, names
    assert "vega_assess_change" in names, names


def test_the_status_section_names_what_this_cli_has_and_lacks() -> None:
    from vega.cli.main import COMMANDS, PLANNED

    text = README.read_text()
    status = text[text.index("## Status") :]
    lacking = status[status.index("Being built now") : status.index("## Performance")]
    said_missing = set(re.findall(r"`(?:vega )?([a-z][a-z-]*)", lacking))
    commands = {module.replace("_", "-") for module in COMMANDS}
    assert not said_missing & commands, "the README calls commands of this version missing"
    assert set(PLANNED) <= said_missing, (
        f"planned commands the README does not call missing: {set(PLANNED) - said_missing}"
    )
    for name in (module.replace("_", "-") for module in COMMANDS):
        shown = f"`vega {name}" in text or f"$ vega {name}" in text or f"`{name}`" in status
        assert shown, f"the README never shows `vega {name}`"
