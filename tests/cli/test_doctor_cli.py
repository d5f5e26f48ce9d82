"""cli.md §7 output and exit codes of ``vega doctor``, and the startup rule (lazy imports).

The end-to-end runs go through ``vega.cli.main.main`` with the real subprocess runner and a real
control plane (``create_app`` on uvicorn, loopback). GitHub is kept off the network by pointing
``HTTPS_PROXY`` at a closed loopback port (``NO_PROXY`` exempts our server), so the release check
answers "(offline)" on any machine.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from vega.cli.commands.doctor import render
from vega.cli.main import main
from vega.client.credentials import Credential, save_credential
from vega.client.doctor import Check, DoctorReport
from vega.core.signing import format_public_key, generate_secret_key
from vega.server.app import create_app, identity_for
from vega.server.blobs import LocalBlobStore
from vega.server.db import open_database
from vega.server.identity import Authenticator
from vega.server.service import ServerKeys
from vega.server.settings import ServerSettings

REPORT = DoctorReport(
    (
        Check(name="nix", level="ok", detail="nix (Nix) 2.8.0"),
        Check(name="auth", level="warn", detail="not enrolled", fix="vega login"),
        Check(
            name="control plane", level="fail", detail="unreachable: https://vega-cache.dev (no connection)"
        ),
    )
)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- rendering -------------------------------------------------------------------------------------


def test_text_layout_is_the_spec_s() -> None:
    out = io.StringIO()
    assert render(REPORT, False, {}, out) == 1
    assert out.getvalue() == (
        "\u2726 Vega doctor\n"
        "  ok    nix            nix (Nix) 2.8.0\n"
        "  warn  auth           not enrolled\n"
        "        fix: vega login\n"
        "  fail  control plane  unreachable: https://vega-cache.dev (no connection)\n"
    )


def test_colour_on_a_tty_and_none_with_no_color() -> None:
    tty = Tty()
    render(REPORT, False, {}, tty)
    assert "\x1b[32mok  \x1b[0m" in tty.getvalue()
    assert "\x1b[31mfail\x1b[0m" in tty.getvalue()
    plain = Tty()
    render(REPORT, False, {"NO_COLOR": "1"}, plain)
    assert "\x1b" not in plain.getvalue()


def test_json_is_one_compact_line_without_colour_even_when_forced() -> None:
    out = Tty()
    assert render(REPORT, True, {"FORCE_COLOR": "1"}, out) == 1
    text = out.getvalue()
    assert text.count("\n") == 1
    assert "\x1b" not in text
    assert ", " not in text
    obj = json.loads(text)
    assert obj["ok"] is False
    assert obj["checks"][0] == {"name": "nix", "level": "ok", "detail": "nix (Nix) 2.8.0"}
    assert obj["checks"][1]["fix"] == "vega login"


def test_exit_0_when_nothing_fails() -> None:
    ok = DoctorReport(
        (Check(name="nix", level="ok", detail="x"), Check(name="zstd", level="warn", detail="y"))
    )
    assert render(ok, False, {}, io.StringIO()) == 0
    assert render(ok, True, {}, io.StringIO()) == 0


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["doctor", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "vega doctor --json" in out


def test_unknown_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["doctor", "--bogus"])
    assert e.value.code == 1
    assert "error: unrecognized arguments: --bogus" in capsys.readouterr().err


# -- end to end ------------------------------------------------------------------------------------


@pytest.fixture
def offline_github(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv(
        "NIX_CONFIG", "experimental-features = nix-command flakes\nsubstituters =\nsandbox = true\n"
    )


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[tuple[str, Authenticator]]:
    """The real control plane on a loopback socket, and its identity checks."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = ServerSettings(data_dir=tmp_path / "server", public_url=url)
    keys = ServerKeys(
        shared=generate_secret_key("vega-cache-1", b"\x01" * 32),
        log=generate_secret_key("vega-log-1", b"\x02" * 32),
    )
    db = open_database(settings.resolved_database_url)

    def now_ms() -> int:
        return 1_767_225_600_000

    auth = identity_for(settings, keys, db, now_ms)
    app = create_app(
        settings, db, LocalBlobStore(settings.resolved_nar_dir), now_ms, keys=keys, authenticator=auth
    )
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield url, auth
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        db.close()


def credential_path() -> Path:
    import os

    return Path(os.environ["XDG_CONFIG_HOME"]) / "vega" / "credential"


@pytest.mark.nix
@pytest.mark.usefixtures("offline_github")
def test_vega_doctor_end_to_end(
    control_plane: tuple[str, Authenticator], capsys: pytest.CaptureFixture[str]
) -> None:
    url, auth = control_plane
    credential, _ = auth._credentials.issue("42", "alice")
    save_credential(
        credential_path(),
        Credential(credential=credential, login="alice", user_id="42", expires_at_ms=None, url=url),
    )
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "\u2726 Vega doctor"
    assert lines[1].startswith("  ok    nix            nix (Nix) ")
    assert "  ok    auth           enrolled as alice" in lines
    plane = next(ln for ln in lines if "control plane" in ln)
    assert plane.startswith(f"  ok    control plane  {url} (")
    assert plane.endswith(" ms; server 0.18.0)")
    assert lines[-1] == "  ok    version        0.18.0 (offline)"
    assert credential not in out

    # A tampered credential is refused by the server: a failure, not "enrolled" (issue 12).
    save_credential(
        credential_path(),
        Credential(credential="s3cr3t", login="alice", user_id="42", expires_at_ms=None, url=url),
    )
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert f"  fail  auth           {url} refused the credential" in out
    assert "s3cr3t" not in out


@pytest.mark.nix
@pytest.mark.usefixtures("offline_github")
def test_doctor_shows_the_servers_shared_key_and_how_to_pin_it_never_pinning_it(
    control_plane: tuple[str, Authenticator],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Issue 12: the shared key of the server I am logged in to, with its fingerprint, and the line."""
    import hashlib
    import os

    url, auth = control_plane
    credential, _ = auth._credentials.issue("42", "alice")
    save_credential(
        credential_path(),
        Credential(credential=credential, login="alice", user_id="42", expires_at_ms=None, url=url),
    )
    key = generate_secret_key("vega-cache-1", b"\x01" * 32).public
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(key.key).digest()[:12]).decode()
    line = f"extra-trusted-public-keys = {format_public_key(key)}"
    home = Path(os.environ.get("HOME", tmp_path))
    before = {p: p.read_bytes() for p in home.rglob("nix.conf")} if home.exists() else {}
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert (
        f"  warn  shared key     {url} signs its shared tier with vega-cache-1 {fingerprint}; not pinned"
        in out
    )
    assert f'add "{line}" to ~/.config/nix/nix.conf' in out
    assert "vega-cache.dev" not in out
    assert main(["doctor", "--json"]) == 0
    shared = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "shared key")
    assert shared["level"] == "warn"
    assert fingerprint in shared["detail"]
    assert line in shared["fix"]
    after = {p: p.read_bytes() for p in home.rglob("nix.conf")} if home.exists() else {}
    assert after == before  # shown, never added
    monkeypatch.setenv("NIX_CONFIG", os.environ["NIX_CONFIG"] + f"extra-{line.removeprefix('extra-')}\n")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert (
        f"  ok    shared key     {url} signs its shared tier with vega-cache-1 {fingerprint}, pinned" in out
    )


@pytest.mark.usefixtures("offline_github")
def test_vega_doctor_json_exit_1_when_the_control_plane_is_down(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    save_credential(
        credential_path(),
        Credential(credential="s3cr3t", login="alice", user_id="42", expires_at_ms=None, url=url),
    )
    assert main(["doctor", "--json"]) == 1
    out = capsys.readouterr().out
    obj = json.loads(out)
    assert obj["ok"] is False
    checks = {c["name"]: c for c in obj["checks"]}
    assert checks["control plane"]["level"] == "fail"
    assert checks["control plane"]["detail"] == f"unreachable: {url} (no connection)"
    assert checks["version"] == {"name": "version", "level": "ok", "detail": "0.18.0 (offline)"}


# -- startup ---------------------------------------------------------------------------------------

HEAVY = ("httpx2", "rich", "cryptography", "zstandard", "starlette", "uvicorn", "mcp", "psycopg", "boto3")


@pytest.mark.parametrize("argv", [["--help"], ["doctor", "--help"], []])
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    """``vega --help`` must stay fast: command modules import their libraries inside ``run``."""
    code = (
        "import sys\n"
        "from vega.cli.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr == "[]"
