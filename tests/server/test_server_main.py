"""``vega-server``: first run (keys 0600, nix.conf lines), serve under a real process, revoke."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from vega.core.signing import format_secret_key, generate_secret_key
from vega.errors import ConfigError
from vega.server.__main__ import ensure_keys, main
from vega.server.settings import ServerSettings


def test_first_run_creates_keys_0600_and_reuses_them(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path / "data")
    shared, log_key, created = ensure_keys(settings)
    assert created is True
    assert shared.name == "vega-cache-1"
    assert log_key.name == "vega-log-1"
    for path in (settings.resolved_signing_key_file, settings.resolved_log_key_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    assert (settings.data_dir / "server.toml").read_text().startswith("# vega-server configuration")
    again = ensure_keys(settings)
    assert again == (shared, log_key, False)
    named = ensure_keys(ServerSettings(data_dir=tmp_path / "other", shared_key_name="my-cache-1"))
    assert named[0].name == "my-cache-1"


def test_keys_from_the_environment(tmp_path: Path) -> None:
    inline = format_secret_key(generate_secret_key("env-cache-1", b"\x05" * 32))
    settings = ServerSettings(data_dir=tmp_path, signing_key=inline)
    assert ensure_keys(settings)[0].name == "env-cache-1"
    assert not settings.resolved_signing_key_file.exists()
    with pytest.raises(ConfigError, match="not a Nix secret key"):
        ensure_keys(ServerSettings(data_dir=tmp_path, signing_key="nonsense"))
    with pytest.raises(ConfigError, match="must differ"):
        ensure_keys(ServerSettings(data_dir=tmp_path, signing_key=inline, log_key=inline))


def test_serve_prints_nix_conf_lines_and_builds_the_app(tmp_path: Path) -> None:
    captured: dict[str, Any] = {}

    def run(app: Any, **kwargs: Any) -> None:
        captured["app"] = app
        captured.update(kwargs)

    out = io.StringIO()
    code = main(["serve", "--data-dir", str(tmp_path), "--port", "8765", "--dev"], out=out, run=run)
    assert code == 0
    text = out.getvalue()
    assert "first run" in text
    assert "back them up now" in text
    assert "DEVELOPMENT IDENTITY MODE" in text
    assert "  extra-substituters = http://127.0.0.1:8765\n" in text
    key_line = next(line for line in text.splitlines() if "extra-trusted-public-keys" in line)
    assert (captured["host"], captured["port"]) == ("127.0.0.1", 8765)
    client = TestClient(captured["app"], base_url="http://127.0.0.1:8765")
    assert key_line.split(" = ")[1] == client.get("/api/info").json()["sharedKey"]
    out = io.StringIO()
    assert main(["serve", "--data-dir", str(tmp_path), "--port", "8765"], out=out, run=run) == 0
    assert "first run" not in out.getvalue()


def test_bad_settings_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--data-dir", str(tmp_path), "--public-url", "http://cache.example.com"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: public_url 'http://cache.example.com' is not loopback, so it must be https")
    assert "Try:" in err


def test_revoke_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    unknown = ["revoke", "a" * 32, "--reason", "test", "--data-dir", str(tmp_path)]
    assert main(unknown, out=out) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: this server has no attestation of {'a' * 32}; nothing was revoked")
    assert "--force" in err
    assert out.getvalue() == ""
    assert main([*unknown, "--force"], out=out) == 0
    assert main([*unknown, "--force"], out=out) == 0
    assert out.getvalue().splitlines() == [
        f"vega-server: revoked {'a' * 32}",
        f"vega-server: already revoked {'a' * 32}",
    ]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from vega import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"vega-server {__version__}\n"


def test_serve_help_describes_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from vega.server.__main__ import _parser

    subparsers = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        if name == "dev-ci-token":
            continue  # its own parser (vega.server.identity.dev) has the help
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "docs/deployment.md" in capsys.readouterr().out


def test_all_interfaces_without_a_public_url_says_what_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--data-dir", str(tmp_path), "--host", "0.0.0.0"], out=io.StringIO()) == 1  # noqa: S104
    err = capsys.readouterr().err
    assert err.startswith("error: listening on 0.0.0.0 needs the https URL clients will use (public_url)")
    assert "--public-url https://" in err
    assert "is not loopback" not in err


def test_port_in_use_fails_before_serving(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[object] = []
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = io.StringIO()
        argv = ["serve", "--data-dir", str(tmp_path), "--port", str(port)]
        assert main(argv, out=out, run=lambda app, **kw: ran.append(app)) == 1
    assert out.getvalue() == ""
    assert ran == []
    assert capsys.readouterr().err.startswith(f"error: 127.0.0.1:{port} is already in use")


def test_unreachable_postgres_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    url = f"postgresql://vega:hunter2@127.0.0.1:{port}/vega"
    os.environ["VEGA_SERVER_DATABASE_URL"] = url
    try:
        assert main(["serve", "--data-dir", str(tmp_path)], out=io.StringIO(), run=lambda a, **k: None) == 1
    finally:
        del os.environ["VEGA_SERVER_DATABASE_URL"]
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: cannot connect to PostgreSQL at postgresql://vega:***@127.0.0.1:{port}/vega"
    )
    assert "hunter2" not in err
    assert "Traceback" not in err
    assert "Try:" in err


def test_revoke_uses_the_same_promotion_policy_as_serve(tmp_path: Path) -> None:
    from vega.core.promotion import PromotionPolicy
    from vega.server.__main__ import revocation_service
    from vega.server.app import create_app, promotion_policy
    from vega.server.blobs import LocalBlobStore
    from vega.server.db import open_database
    from vega.server.service import ServerKeys

    settings = ServerSettings(data_dir=tmp_path, quorum=3, min_reproductions=2, settling_s=7)
    want = PromotionPolicy(quorum=3, min_reproductions=2, settling_ms=7000)
    assert promotion_policy(settings) == want
    db = open_database(settings.resolved_database_url)
    try:
        assert revocation_service(settings, db).policy == want
        shared, log_key, _ = ensure_keys(settings)
        app = create_app(
            settings,
            db,
            LocalBlobStore(tmp_path / "nars"),
            lambda: 0,
            keys=ServerKeys(shared=shared, log=log_key),
        )
        assert app.state.service.policy == want
    finally:
        db.close()


def test_dev_ci_token_takes_data_dir_and_prints_no_banner(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEGA_SERVER_")}
    argv = [sys.executable, "-m", "vega.server", "dev-ci-token", "--data-dir", str(data)]
    argv += ["--repo", "alice/hello", "--sha", "0123456789abcdef0123456789abcdef01234567"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "export GITHUB_REPOSITORY=alice/hello" in done.stdout.splitlines()
    assert "export VEGA_URL=http://127.0.0.1:8080" in done.stdout.splitlines()
    assert sorted(p.name for p in (data / "dev-identity").iterdir()) == ["dev-oidc-rsa.pem", "dev-secret"]
    assert "DEVELOPMENT IDENTITY MODE" not in done.stderr + done.stdout


def test_serve_dev_prints_the_banner_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    assert main(["serve", "--data-dir", str(tmp_path), "--dev"], out=out, run=lambda app, **kw: None) == 0
    text = out.getvalue() + "".join(r.getMessage() for r in caplog.records)
    assert text.count("DEVELOPMENT IDENTITY MODE") == 1


def test_serve_warns_loudly_when_enrolment_accepts_any_github_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vega.server.__main__ import OPEN_ENROLMENT_WARNING

    def serve(*extra: str) -> str:
        out = io.StringIO()
        assert main(["serve", "--data-dir", str(tmp_path), *extra], out=out, run=lambda app, **kw: None) == 0
        return out.getvalue()

    assert "enrolment accepts ANY GitHub user token" in OPEN_ENROLMENT_WARNING
    assert serve().count(OPEN_ENROLMENT_WARNING) == 1
    assert OPEN_ENROLMENT_WARNING not in serve("--dev")
    monkeypatch.setenv("VEGA_SERVER_GITHUB_CLIENT_SECRET", "the-apps-secret")
    assert OPEN_ENROLMENT_WARNING not in serve()


def test_vega_server_serve_runs_as_a_process(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, VEGA_SERVER_SETTLING_S="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vega.server", "serve", "--data-dir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                r = httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "vega-server did not start"
                time.sleep(0.05)
        assert r.text == "ok\n"
        info = httpx2.get(f"http://127.0.0.1:{port}/api/info", timeout=5).json()
        assert info["sharedKey"].startswith("vega-cache-1:")
        assert httpx2.get(f"http://127.0.0.1:{port}/nix-cache-info", timeout=5).status_code == 200
        assert httpx2.get(f"http://127.0.0.1:{port}/log/sth", timeout=5).json()["size"] == 0
        assert (tmp_path / "server.db").exists()
        assert (tmp_path / "nars").is_dir()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert b"extra-trusted-public-keys = vega-cache-1:" in out
