"""Attack: a hostile control plane tries to drive the user's terminal through every command (issue 14).

A real loopback server (tests/hostile.py) answers with strings carrying one of each hostile
character kind: C0 (ESC/CSI/OSC, BEL, NUL, BS, CR, DEL), C1 (U+0080-U+009F), bidi controls,
zero-width and other format characters (Cf), line/paragraph separators, invisible fillers. Each
command that prints server data (``login``, ``whoami``, ``status``, ``doctor``, ``verify``,
``push``; text and ``--json``) runs in process through ``vega.cli.main.main``; every line it
prints must be free of them, and the server's text must still be visible (rendered through the
sanitiser, not silently dropped).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.client.conftest import SHARED, UPSTREAM, CacheServer
from tests.conftest import NixRunner
from tests.hostile import Reply, Request, serve_hostile
from vega.cli.main import main
from vega.client import doctor
from vega.client.settings import Settings
from vega.core.narinfo import format_narinfo
from vega.core.safetext import is_safe_text
from vega.core.signing import format_public_key

KINDS = (
    "\x1b[31m",  # CSI (colour)
    "\x1b]0;owned\x07",  # OSC (window title) + BEL
    "\x00\x08\r\x7f",  # NUL, backspace, carriage return, DEL
    "\x9b\x9d\x85",  # C1: CSI, OSC, NEL
    "\u202e\u2066\u2069\u061c",  # bidi: RLO, LRI, PDI, ALM
    "\u200b\u200d\u2060\ufeff\u00ad\U000e0041",  # format (Cf): ZWSP, ZWJ, WJ, BOM, SHY, tag
    "\u2028\u2029",  # line and paragraph separators
    "\u3164\ufe0f",  # invisible filler, variation selector
)
PAYLOAD = "hostile" + "".join(KINDS) + "end"
VISIBLE = "hostile"
FLAKE = Path(__file__).parent.parent / "with_nix" / "flakes" / "push"


def assert_clean(text: str) -> None:
    """No printed line carries a character the sanitiser would remove."""
    for line in text.split("\n"):
        assert is_safe_text(line), f"unsafe output line: {line!r}"


@pytest.fixture(autouse=True)
def _no_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    got = capsys.readouterr()
    text = got.out + got.err
    assert_clean(text)
    return code, text


def write_credential(url: str, login: str) -> None:
    """A credential as an older client (before login validation) could have stored it."""
    import os

    path = Path(os.environ["XDG_CONFIG_HOME"]) / "vega" / "credential"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "credential": "secret",
                "login": login,
                "userId": "7",
                "expiresAt": int(time.time() * 1000) + 86_400_000,
                "url": url,
            }
        )
    )
    path.chmod(0o600)


def control_plane(request: Request) -> Reply:
    """The hostile control plane: hostile error texts, login, version, device-flow strings."""
    error = json.dumps({"error": PAYLOAD}).encode()
    if request.path == "/api/info":
        return Reply(body=json.dumps({"version": PAYLOAD, "github": {"url": HOST[0]}}).encode())
    if request.path == "/login/device/code":
        body = {"device_code": "d", "user_code": "ABCD-1234", "verification_uri": HOST[0], "interval": 0}
        return Reply(body=json.dumps(body).encode())
    if request.path == "/login/oauth/access_token":
        return Reply(body=b'{"access_token":"gh-token","token_type":"bearer"}')
    if request.path == "/api/owner/enroll":
        body = {"credential": "c", "login": f"al{PAYLOAD}ice", "userId": "7", "expiresAt": 1}
        return Reply(body=json.dumps(body).encode())
    if request.path == "/nix-cache-info":
        return Reply(body=f"StoreDir: /nix/store\n{PAYLOAD}\n".encode())
    if request.path == "/releases/latest":
        return Reply(body=json.dumps({"tag_name": f"v99.0.0{PAYLOAD}"}).encode())
    if request.path.startswith("/log/lookup/"):
        return Reply(status=400, body=error, headers={"content-type": "application/json"})
    if request.path.endswith(".narinfo") and request.path[1:].split(".")[0] in NARINFOS:
        return Reply(body=NARINFOS[request.path[1:].split(".")[0]])
    if request.method == "HEAD" or request.path.endswith(".narinfo"):
        return Reply(status=404, body=error)
    return Reply(status=400, body=error, headers={"content-type": "application/json"})


HOST: list[str] = [""]
NARINFOS: dict[str, bytes] = {}


@pytest.fixture
def hostile() -> Iterator[str]:
    with serve_hostile(control_plane) as (url, _):
        HOST[0] = url
        yield url
    NARINFOS.clear()


def test_login_shows_the_device_code_and_refuses_a_hostile_login(
    hostile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run(capsys, "login", "--url", hostile)
    assert code == 1
    assert f"login 'al{VISIBLE}" in text
    assert "is not a GitHub login" in text
    import os

    assert not (Path(os.environ["XDG_CONFIG_HOME"]) / "vega" / "credential").exists()


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_whoami_and_status_render_a_stored_hostile_login_safely(
    hostile: str, capsys: pytest.CaptureFixture[str], json_flag: list[str]
) -> None:
    write_credential(hostile, f"al{PAYLOAD}ice")
    for command in ("whoami", "status"):
        code, text = run(capsys, command, *json_flag)
        assert code == 0
        assert f"al{VISIBLE}" in text


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_doctor_renders_server_strings_safely(
    hostile: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    json_flag: list[str],
) -> None:
    write_credential(hostile, f"al{PAYLOAD}ice")
    real = doctor.open_doctor

    @contextlib.contextmanager
    def redirected(settings: Settings) -> Iterator[doctor.DoctorContext]:
        # GitHub is unreachable from here: its releases call goes to the hostile double.
        with real(settings) as ctx:
            yield replace(ctx, releases_url=f"{hostile}/releases/latest")

    monkeypatch.setattr(doctor, "open_doctor", redirected)
    _code, text = run(capsys, "doctor", *json_flag)
    assert f"server {VISIBLE}" in text  # /api/info's version
    assert f"latest v99.0.0{VISIBLE}" in text  # the release tag
    assert f"al{VISIBLE}" in text  # the stored login


def narinfo_variants(tmp_path: Path) -> dict[str, tuple[str, list[str]]]:
    """Three narinfos whose server-chosen fields reach the output: hash -> (what, extra flags)."""
    cache = CacheServer(tmp=tmp_path)
    out: dict[str, tuple[str, list[str]]] = {}
    upstream = cache.add("hostile-compression", key=UPSTREAM)
    text = format_narinfo(upstream.info).replace("Compression: zstd", f"Compression: {PAYLOAD}")
    NARINFOS[upstream.hash] = text.encode()
    out[upstream.hash] = ("compression", ["--public-key", format_public_key(UPSTREAM.public)])
    named = cache.add("hostile-key-name", key=UPSTREAM)
    text = format_narinfo(named.info).replace("Sig: cache.nixos.org-1:", f"Sig: {PAYLOAD}-1:")
    NARINFOS[named.hash] = text.encode()
    out[named.hash] = ("key name", [])
    shared = cache.add("hostile-log-error", key=SHARED)
    NARINFOS[shared.hash] = format_narinfo(shared.info).encode()
    out[shared.hash] = ("log error", ["--public-key", format_public_key(SHARED.public)])
    return out


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_verify_renders_narinfo_fields_key_names_and_error_texts_safely(
    hostile: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, json_flag: list[str]
) -> None:
    for hash_part, (what, flags) in narinfo_variants(tmp_path).items():
        code, text = run(capsys, "verify", hash_part, "--url", hostile, *flags, *json_flag)
        assert code == 1, what
        assert VISIBLE in text, what


@pytest.mark.nix
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_push_renders_the_servers_error_text_safely(
    hostile: str,
    nix: NixRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    json_flag: list[str],
) -> None:
    monkeypatch.setenv("NIX_CONFIG", nix.env["NIX_CONFIG"])
    flake = tmp_path / "flake"
    shutil.copytree(FLAKE, flake)
    (flake / "seed.txt").write_text(f"hostile {time.time_ns()}\n")
    write_credential(hostile, "alice")
    code, text = run(capsys, "push", *json_flag, "--upstream", hostile, f"path:{flake}#default")
    assert code == 1
    assert f"400: {VISIBLE}" in text
