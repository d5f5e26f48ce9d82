"""Issue 12: no raw errno text reaches a ``vega push`` user; each failure is one sentence and ``Try:``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from vega.client.deadline import new_client
from vega.client.http import Http, HttpLimits
from vega.client.push import describe_network_error, user_error
from vega.errors import ConfigError, NetworkError, NixError, VegaError


def network_error(url: str) -> NetworkError:
    with new_client() as client, pytest.raises(NetworkError) as e:
        Http(client, HttpLimits(timeout_s=5.0, tries=1)).get(f"{url}/nix-cache-info")
    return e.value


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_connection_refused_is_one_sentence_with_try_lines() -> None:
    url = closed_port()
    raw = network_error(url)
    said = describe_network_error(raw, url)
    assert said.message == f"the control plane at {url} refused the connection (is the server running?)"
    assert f"curl -sS {url}/nix-cache-info" in said.next_steps
    assert "Errno" not in said.message
    assert user_error(raw, url).message == said.message


def test_a_dns_failure_names_the_host_not_the_errno() -> None:
    url = "http://vega-nowhere.invalid"
    said = describe_network_error(network_error(url), url)
    assert (
        said.message
        == f"cannot find the host vega-nowhere.invalid of the control plane {url} (DNS lookup failed)"
    )
    assert "Errno" not in said.message
    assert said.next_steps


def test_missing_and_unreadable_files_and_other_os_errors(tmp_path: Path) -> None:
    try:
        (tmp_path / "gone").open()
    except OSError as e:
        missing = user_error(e, "http://cp")
    assert isinstance(missing, ConfigError)
    assert missing.message == f"{tmp_path / 'gone'} does not exist (it disappeared while pushing?)"
    assert missing.next_steps
    denied = user_error(PermissionError(13, "Permission denied", "/nix/store/x-y/secret"), "http://cp")
    assert denied.message == "/nix/store/x-y/secret cannot be read: permission denied"
    full = user_error(OSError(28, "No space left on device", "/tmp/nar-1.zst"), "http://cp")
    assert full.message == "/tmp/nar-1.zst: no space left on device"
    assert "Errno" not in missing.message + denied.message + full.message


def test_a_failed_nix_command_is_named_once_and_points_at_its_log() -> None:
    tail = "error: builder for '/nix/store/aaaa-x.drv' failed with exit code 2"
    said = user_error(NixError(["nix", "build", "--json", "--", ".#x"], 1, tail), "http://cp")
    assert said.message == "nix build failed with status 1 (nix's error is printed above)"
    assert said.next_steps == ("nix log /nix/store/aaaa-x.drv",)
    timed = user_error(NixError(["nix", "build"], 1, "", timed_out=True), "http://cp")
    assert timed.next_steps == ("VEGA_BUILD_TIMEOUT_MINUTES=<minutes> vega push",)
    other = VegaError("x")
    assert user_error(other, "http://cp") is other


def test_a_network_error_without_errno_keeps_its_words_and_gains_try_lines() -> None:
    said = describe_network_error(NetworkError("nar upload stalled: no bytes moved for 60s"), "http://cp")
    assert said.message == "nar upload stalled: no bytes moved for 60s"
    assert said.next_steps
    raw = NetworkError("GET cp failed: [Errno 101] Network is unreachable")
    assert describe_network_error(raw, "http://cp").message == "cannot reach the control plane at http://cp"
    try:
        raise NetworkError("GET cp failed") from OSError(101, "Network is unreachable")
    except NetworkError as e:
        chained = e
    assert describe_network_error(chained, "http://cp").message == (
        "cannot reach the control plane at http://cp: network is unreachable"
    )


def test_a_control_plane_without_whoami_is_not_checked_and_does_not_block() -> None:
    """The original control plane has no ``GET /api/owner/whoami``: its 404 must not stop a push."""
    import http.server
    import threading

    from vega.client.credentials import Credential
    from vega.client.push import check_control_plane

    class Original(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
            ok = self.path == "/nix-cache-info"
            self.send_response(200 if ok else 404)
            self.send_header("content-length", str(len(body) if ok else 0))
            self.end_headers()
            if ok:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Original)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        cred = Credential(credential="v1.x.y", login="octo", user_id="7", expires_at_ms=None, url=url)
        with new_client() as client:
            assert check_control_plane(Http(client, HttpLimits(tries=1)), url, cred) == "not checked"
    finally:
        server.shutdown()
        server.server_close()
