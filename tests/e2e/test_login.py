"""Issue 5 end to end: the real ``vega login/whoami/status/logout`` against a real uvicorn on loopback.

The server is the control plane's own ``create_app`` in development identity mode (device flow,
user API, OIDC issuer) on SQLite and a temporary directory, served by uvicorn on 127.0.0.1. No test
double is involved: the CLI runs its real device-flow loop against the development GitHub over a
socket, then enrols, and the credential is checked by the same server.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import Server
from vega.cli.main import main


def credential_path() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "vega" / "credential"


def test_login_whoami_status_logout(dev_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--url", dev_server.url + "/"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == ""
    assert lines[1].startswith(f"  Open {dev_server.url}/login/device and enter code:  ")
    assert lines[3] == "  Waiting for authorization..."
    assert "\u2726 Enrolled as vega-dev" in lines
    assert "  Namespace:     owner:1000001" in lines
    assert f"  Control plane: {dev_server.url}" in lines
    assert f"  Credential:    {credential_path()}" in lines
    assert err == ""
    # The real polling loop ran: one authorization_pending answer, then the token.
    assert dev_server.requests[:5] == [
        "GET /api/info",
        "POST /login/device/code",
        "POST /login/oauth/access_token",
        "POST /login/oauth/access_token",
        "POST /api/owner/enroll",
    ]

    path = credential_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    assert list(stored) == ["credential", "login", "userId", "expiresAt", "url"]
    assert (stored["login"], stored["userId"], stored["url"]) == ("vega-dev", "1000001", dev_server.url)
    assert "ghu_" not in path.read_text() + out + err  # the GitHub token never reaches disk or output
    assert dev_server.auth.owner(stored["credential"]).namespace == "owner:1000001"

    assert main(["whoami", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "login": "vega-dev",
        "userId": "1000001",
        "namespace": "owner:1000001",
        "controlPlane": dev_server.url,
        "expiresAt": stored["expiresAt"],
    }
    assert main(["whoami"]) == 0
    text = capsys.readouterr().out
    assert "\u2726 Enrolled as vega-dev" in text
    assert "  User id:       1000001" in text

    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report.pop("latencyMs") >= 0
    assert report == {
        "enrolled": True,
        "login": "vega-dev",
        "namespace": "owner:1000001",
        "controlPlane": dev_server.url,
        "reachable": True,
        "credential": "valid",
    }
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "  Identity:      vega-dev  (owner:1000001)" in text
    assert "  Reachable:     yes (" in text

    assert main(["logout"]) == 0
    assert capsys.readouterr().out == "\u2726 Logged out; credential removed.\n"
    assert not path.exists()
    assert main(["logout"]) == 0
    assert capsys.readouterr().out == "No credential to remove.\n"
    assert main(["whoami"]) == 1
    assert capsys.readouterr().err == (
        "error: not enrolled: this machine has no Vega credential.\n\nTry:\n  vega login\n"
    )


def test_status_of_an_unreachable_control_plane(
    dev_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--url", dev_server.url]) == 0
    capsys.readouterr()
    stored = json.loads(credential_path().read_text())
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        stored["url"] = f"http://127.0.0.1:{s.getsockname()[1]}"
    credential_path().write_text(json.dumps(stored))
    assert main(["status", "--json"]) == 1  # unreachable: a non-zero exit (issue 12)
    report = json.loads(capsys.readouterr().out)
    assert (report["enrolled"], report["reachable"], report["credential"]) == (True, False, "not checked")
    stored["expiresAt"] = 1
    credential_path().write_text(json.dumps(stored))
    assert main(["status"]) == 1
    text = capsys.readouterr().out
    assert "  Identity:      expired (was vega-dev)" in text
    assert "  Reachable:     no (" in text
    assert "vega login" in text


def test_revoked_credential_is_refused_by_the_server(
    dev_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--control-plane", dev_server.url]) == 0
    capsys.readouterr()
    credential = json.loads(credential_path().read_text())["credential"]
    got = httpx2.post(f"{dev_server.url}/api/owner/revoke", headers={"authorization": f"Bearer {credential}"})
    assert got.json() == {"revoked": True}
    from vega.errors import AuthError

    with pytest.raises(AuthError, match="revoked"):
        dev_server.auth.owner(credential)
    # status and doctor ask the server: a revoked credential is "invalid", not "enrolled"
    assert main(["status", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["enrolled"], report["reachable"], report["credential"]) == (False, True, "invalid")
    assert main(["status"]) == 1
    text = capsys.readouterr().out
    assert "  Identity:      invalid (the control plane refused vega-dev's credential)" in text
    assert f"vega login --url {dev_server.url}" in text


def test_status_agrees_with_whoami_on_a_corrupt_credential(
    dev_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--url", dev_server.url]) == 0
    capsys.readouterr()
    for path in [credential_path(), *credential_path().parent.glob("credentials/*.json")]:
        path.write_text("{corrupt")
    assert main(["whoami"]) == 1
    assert main(["whoami", "--url", dev_server.url]) == 1
    capsys.readouterr()
    assert main(["status", "--url", dev_server.url]) == 1
    text = capsys.readouterr().out
    assert "  Identity:      invalid (the credential file is unreadable)" in text
    assert f"  Control plane: {dev_server.url}" in text


def test_status_of_a_tampered_credential(dev_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--url", dev_server.url]) == 0
    capsys.readouterr()
    stored = json.loads(credential_path().read_text())
    stored["credential"] = stored["credential"][:-4] + "AAAA"
    credential_path().write_text(json.dumps(stored))
    assert main(["status", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["credential"] == "invalid"


def test_login_refuses_plaintext_urls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--url", "http://vega.example"]) == 1
    assert capsys.readouterr().err == (
        "error: control plane must be a valid https URL: it is plaintext http to a host that is not"
        " loopback (localhost, 127.0.0.1, ::1); refusing to send credentials over plaintext.\n"
    )


@pytest.mark.parametrize("command", ["login", "logout", "whoami", "status"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_simulated_ci_job_mints_a_token_the_server_accepts(dev_server: Server) -> None:
    """Issue 4: the documented dev-CI environment, used as an Actions runner would (protocol.md §10)."""
    from vega.client.github import request_actions_token
    from vega.client.http import Http

    sha = "0123456789abcdef0123456789abcdef01234567"
    env = httpx2.post(
        f"{dev_server.url}/_dev/ci-token",
        json={"repository": "alice/hello", "sha": sha, "workflow": ".github/workflows/vega.yml"},
    ).json()
    assert env["ACTIONS_ID_TOKEN_REQUEST_URL"] == f"{dev_server.url}/_dev/oidc/token"
    with httpx2.Client() as client:
        jwt = request_actions_token(
            Http(client),
            env["ACTIONS_ID_TOKEN_REQUEST_URL"] + "?api-version=2.0&audience=wrong",
            env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"],
            dev_server.url,
        )
    identity = dev_server.auth.oidc(jwt)
    assert (identity.tenant, identity.sha, identity.is_reproducer) == ("alice/hello", sha, False)
    assert identity.job_workflow_ref == "alice/hello/.github/workflows/vega.yml@refs/heads/main"


def test_several_control_planes_keep_their_own_credentials(
    dev_server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 12: logging in to a second server keeps the first; --url selects; whoami --all lists."""
    from tests.e2e.conftest import dev_server_at

    with dev_server_at(tmp_path / "second") as second:
        assert main(["login", "--url", dev_server.url]) == 0
        assert main(["login", "--url", second.url]) == 0
        capsys.readouterr()

        assert main(["whoami", "--json"]) == 0  # the current one is the last login
        assert json.loads(capsys.readouterr().out)["controlPlane"] == second.url
        assert main(["whoami", "--json", "--url", dev_server.url]) == 0
        first = json.loads(capsys.readouterr().out)
        assert first["controlPlane"] == dev_server.url
        assert main(["whoami", "--all", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [c["controlPlane"] for c in listed] == [second.url, dev_server.url]
        assert main(["whoami", "--all"]) == 0
        text = capsys.readouterr().out
        assert "Enrolled with 2 control plane(s)" in text

        # The first credential is still the first server's own: it accepts it.
        assert main(["status", "--json", "--url", dev_server.url]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["controlPlane"], report["credential"]) == (dev_server.url, "valid")

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            never = f"http://127.0.0.1:{s.getsockname()[1]}"
        assert main(["whoami", "--url", never]) == 1
        assert capsys.readouterr().err.startswith(f"error: not enrolled with {never}")

        assert main(["logout", "--url", dev_server.url]) == 0
        assert main(["whoami", "--url", dev_server.url]) == 1
        assert main(["whoami", "--json"]) == 0  # the second (current) one stays
        capsys.readouterr()
        assert main(["logout", "--all"]) == 0
        assert main(["whoami", "--all", "--json"]) == 1
        assert json.loads(capsys.readouterr().out.splitlines()[-1]) == []
        for path in credential_path().parent.rglob("*"):
            assert not path.is_file(), path
