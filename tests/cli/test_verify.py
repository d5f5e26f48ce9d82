"""``vega verify`` rendering, flags and exit codes (cli.md §10, §18), over the fixture cache in process."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.conftest import SHARED, UPSTREAM, CacheServer
from vega.cli.commands.verify import _max_scan, execute, options_from
from vega.cli.main import build_parser, main
from vega.core.note import format_verifier_key
from vega.errors import ConfigError

ENV = {"NO_COLOR": "1"}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CacheServer]:
    s = CacheServer(tmp=tmp_path)
    with s.test_client:
        yield s


def run(
    server: CacheServer,
    *argv: str,
    trusted: tuple[object, ...] = (SHARED.public,),
    err: io.StringIO | None = None,
) -> tuple[int, str, str]:
    args = build_parser().parse_args(["verify", *argv])
    out = io.StringIO()
    err = err if err is not None else io.StringIO()
    code = execute(args, server.context(trusted=trusted), ENV, out, err)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["verify", "--help"])
    assert info.value.code == 0
    assert "--recursive" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "want"),
    [("7", 7), ("0", 10000), ("-3", 10000), ("nan", 10000), ("x", 10000), ("inf", 10000), ("2.9", 2)],
)
def test_max_scan_parsing(text: str, want: int) -> None:
    """cli.md §10: non-positive or NaN means the default."""
    assert _max_scan(text) == want


def test_bad_log_key_and_public_key() -> None:
    args = build_parser().parse_args(["verify", "0" * 32, "--log-key", "nope"])
    with pytest.raises(ConfigError, match="--log-key is not a valid note verifier key"):
        options_from(args)
    args = build_parser().parse_args(["verify", "0" * 32, "--public-key", "x:abc"])
    with pytest.raises(ConfigError) as info:
        options_from(args)
    assert info.value.message == "--public-key is not a valid '<name>:<base64>' key"
    from tests.client.conftest import NOTE_KEY

    good = build_parser().parse_args(
        ["verify", "0" * 32, "--log-key", format_verifier_key(NOTE_KEY.verifier)]
    )
    assert options_from(good).log_keys == (NOTE_KEY.verifier,)


def test_no_nar_variant(server: CacheServer) -> None:
    b = server.add("a")
    server.promote(b)
    code, out, _ = run(server, b.hash, "--no-nar")
    assert code == 0
    assert "✦ Verified: signed and in the public log (NAR bytes not checked: --no-nar)." in out
    assert "NAR bytes:" not in out


def test_upstream_warning_and_hint(server: CacheServer) -> None:
    b = server.add("m", key=UPSTREAM)
    code, out, err = run(server, b.hash, trusted=(UPSTREAM.public,))
    assert code == 1
    assert "warning: mirrored from cache.nixos.org-1: verified by the upstream signature, not by Vega" in err
    assert "pass --allow-signature-only" in out
    assert "mirrored upstream path, signed by cache.nixos.org-1" in out
    code, _, _ = run(server, b.hash, "--allow-signature-only", trusted=(UPSTREAM.public,))
    assert code == 0


def test_missing_build_is_an_error(server: CacheServer) -> None:
    code, out, err = run(server, "2" * 32)
    assert code == 1
    assert out == ""
    assert err == f"error: no build found for {'2' * 32} (HTTP 404)\n"


def test_no_trusted_key_teaches(server: CacheServer) -> None:
    b = server.add("a")
    code, _, err = run(server, b.hash, trusted=())
    assert code == 1
    assert "error: no trusted public key found for this build (it is signed by: vega-cache-1)." in err
    assert "Try:" in err
    assert "--public-key 'vega-cache-1:<base64>'" in err


def test_not_promoted_single_target(server: CacheServer) -> None:
    b = server.add("a")
    code, out, err = run(server, b.hash)
    assert code == 1
    assert "In transparency log: not found" in " ".join(out.split())
    assert "error: Verification failed. Do not trust this build." in err


def test_many_targets_plain_progress_and_summary(server: CacheServer) -> None:
    builds = [server.add(f"p{n}", str(n).encode()) for n in range(30)]
    for b in builds[:-1]:
        server.promote(b)
    code, out, err = run(server, *(b.hash for b in builds))
    assert code == 1
    assert err.count("verified 30/30 paths (1 failed)") == 1
    assert out.count("\nok    ") + out.startswith("ok    ") == 29
    assert f"FAIL  {builds[-1].path.absolute}  no promotion leaf" in out
    assert "error: Verification failed for 1 of 30 paths. Do not trust them." in err


def test_many_targets_rich_progress_on_a_tty(server: CacheServer) -> None:
    builds = [server.add(f"p{n}", str(n).encode()) for n in range(3)]
    for b in builds:
        server.promote(b)
    tty = Tty()
    code, out, _ = run(server, *(b.hash for b in builds), err=tty)
    assert code == 0
    assert "✦ Verified 3 of 3 paths" in out
    assert "verified 3/3" not in tty.getvalue()


def test_json_one_line_per_path(server: CacheServer) -> None:
    builds = [server.add(f"p{n}", str(n).encode()) for n in range(2)]
    server.promote(builds[0])
    code, out, err = run(server, builds[0].hash, builds[1].hash, "--json")
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert [o["exitOk"] for o in lines] == [True, False]
    assert "\x1b" not in out
    assert err == ""


def test_default_url_follows_the_flag_the_environment_then_the_login(tmp_path: Path) -> None:
    """issue 12: a self-hoster logged in to their own server never has to type --url."""
    from vega.cli.commands.verify import DEFAULT_URL, default_url
    from vega.client.credentials import Credential, remember_credential

    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    assert default_url(None, env) == DEFAULT_URL
    remember_credential(
        tmp_path / "cfg" / "vega",
        Credential(credential="c", login="me", user_id="1", expires_at_ms=None, url="http://127.0.0.1:8080"),
    )
    assert default_url(None, env) == "http://127.0.0.1:8080"
    assert default_url(None, {**env, "VEGA_URL": "https://env.example"}) == "https://env.example"
    assert default_url("https://flag.example", {**env, "VEGA_URL": "https://env.example"}) == (
        "https://flag.example"
    )
    assert default_url(None, {}) == DEFAULT_URL  # no HOME: the default, not a crash
