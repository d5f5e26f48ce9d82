"""cli.md §7: the doctor's checks against real Nix output, a real control plane and a mocked GitHub.

* Nix: the fake runner replays what the real nix 2.8 printed for each ``NIX_CONFIG`` in
  ``SCENARIOS`` (``doctor_nix.json``; regenerate with ``python -m tests.client.test_doctor``).
  A ``nix``-marked test re-runs the real nix and checks the recording still holds.
* The control plane: the real ``create_app`` (``tests.server.cachekit.Harness``) through Starlette's
  TestClient, a minimal Starlette app for an old server without ``/api/info``, and real loopback
  sockets for refused and silent servers.
* GitHub: ``httpx2.MockTransport`` (the only mock).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.server.cachekit import PUBLIC_URL, Harness
from vega.client.credentials import Credential, save_credential
from vega.client.doctor import (
    PUBLISHED_SHARED_KEY,
    RELEASES_URL,
    Check,
    DoctorContext,
    DoctorLimits,
    DoctorReport,
    compare_versions,
    read_nix_config,
    run_checks,
    substituter_mismatch,
)
from vega.core.signing import format_public_key, generate_secret_key
from vega.server.db import open_database

CAPTURES = Path(__file__).with_name("doctor_nix.json")
UPSTREAM = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
TENANT = "vega-alice-hello-1:JMOklPoimWJmRLllqRMtp5z+ZxUf3ELeYAzwkJfbgkc="
WRONG_SHARED = "vega-cache-1:JMOklPoimWJmRLllqRMtp5z+ZxUf3ELeYAzwkJfbgkc="
NOW_MS = 1_767_225_600_000  # 2026-01-01

SCENARIOS: dict[str, str] = {
    "plain": "experimental-features = nix-command flakes\nsubstituters =\n",
    "agree": (
        "experimental-features = nix-command flakes\n"
        "substituters = https://vega-cache.dev https://cache.nixos.org/\n"
        "extra-substituters = https://vega-cache.dev/tenant/alice/hello/\n"
        f"trusted-public-keys = {UPSTREAM} {PUBLISHED_SHARED_KEY}\n"
        f"extra-trusted-public-keys = {TENANT}\n"
    ),
    "bare": (
        "experimental-features = nix-command flakes\n"
        "substituters = https://vega-cache.dev/\n"
        f"trusted-public-keys = {UPSTREAM} {PUBLISHED_SHARED_KEY} {TENANT}\n"
    ),
    "notenant": (
        "experimental-features = nix-command flakes\n"
        "substituters = https://cache.nixos.org/\n"
        f"trusted-public-keys = {UPSTREAM} {TENANT}\n"
    ),
    "wrong": (
        "experimental-features = nix-command flakes\n"
        "substituters = https://vega-cache.dev\n"
        f"trusted-public-keys = {UPSTREAM} {WRONG_SHARED}\n"
    ),
    "nokey": (
        "experimental-features = nix-command flakes\n"
        "substituters = https://vega-cache.dev?priority=30\n"
        f"trusted-public-keys = {UPSTREAM}\n"
    ),
    "noflakes": "experimental-features = nix-command\nsubstituters =\n",
    "disabled": "experimental-features =\nsubstituters =\n",
}

EXTRA = ("--extra-experimental-features", "nix-command")
ARGVS: tuple[tuple[str, ...], ...] = (
    ("nix", "--version"),
    ("nix", "config", "show"),
    ("nix", "show-config"),
    ("nix", *EXTRA, "config", "show"),
    ("nix", *EXTRA, "show-config"),
    ("zstd", "--version"),
)
RELEVANT = ("experimental-features", "substituters", "trusted-public-keys")


# -- the recorded nix --------------------------------------------------------------------------------


def record(nix_config: str, home: Path) -> dict[str, dict[str, object]]:
    """Run every argv the doctor may run under ``nix_config``; ``{argv: {rc, stdout, stderr}}``."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "NIX_CONFIG": nix_config,
    }
    out: dict[str, dict[str, object]] = {}
    for argv in ARGVS:
        done = subprocess.run(list(argv), env=env, capture_output=True, check=False)
        out[" ".join(argv)] = {
            "rc": done.returncode,
            "stdout": done.stdout.decode(),
            "stderr": done.stderr.decode(),
        }
    return out


def load_captures() -> dict[str, dict[str, dict[str, object]]]:
    return json.loads(CAPTURES.read_text())  # type: ignore[no-any-return]


@dataclass
class FakeRunner:
    """Replays recorded results; an argv never recorded exits 127 (not found)."""

    results: Mapping[str, Mapping[str, object]]
    calls: list[str] = field(default_factory=list)

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        key = " ".join(argv)
        self.calls.append(key)
        r = self.results.get(key)
        if r is None:
            return subprocess.CompletedProcess(list(argv), 127, b"", b"No such file or directory")
        return subprocess.CompletedProcess(
            list(argv), int(str(r["rc"])), str(r["stdout"]).encode(), str(r["stderr"]).encode()
        )


def runner(scenario: str, **replace: str) -> FakeRunner:
    """The recording of ``scenario``; ``replace`` swaps whole setting lines in show-config's output."""
    results = {k: dict(v) for k, v in load_captures()[scenario].items()}
    for result in results.values():
        lines = str(result["stdout"]).splitlines(keepends=True)
        for name, value in replace.items():
            setting = name.replace("_", "-")
            lines = [f"{setting} = {value}\n" if ln.startswith(f"{setting} = ") else ln for ln in lines]
        result["stdout"] = "".join(lines)
    return FakeRunner(results)


# -- HTTP: our server for real, GitHub mocked ------------------------------------------------------


class Routes(httpx2.BaseTransport):
    """Sends each request to the transport registered for its host (the real network otherwise)."""

    def __init__(self, by_host: dict[str, httpx2.BaseTransport]) -> None:
        self.by_host = by_host  # shared: tests add hosts after construction
        self.real = httpx2.HTTPTransport()
        self.requests: list[httpx2.Request] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.by_host.get(request.url.host, self.real).handle_request(request)

    def close(self) -> None:
        self.real.close()


def github(status: int | None = 404, body: object = None) -> httpx2.MockTransport:
    """A GitHub answering the releases call with ``status``/``body``; ``None`` = connection refused."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        assert str(request.url) == RELEASES_URL
        if status is None:
            raise httpx2.ConnectError("connection refused", request=request)
        if isinstance(body, bytes):
            return httpx2.Response(status, content=body)
        return httpx2.Response(status, json=body if body is not None else {"message": "Not Found"})

    return httpx2.MockTransport(handle)


def cache_info_app(status: int = 200, body: bytes = b"StoreDir: /nix/store\nWantMassQuery: 1\n") -> Starlette:
    """An old control plane: ``/nix-cache-info`` only, no ``/api/info``."""

    def cache_info(request: Request) -> Response:
        return PlainTextResponse(body, status_code=status)

    return Starlette(routes=[Route("/nix-cache-info", cache_info)])


class Ticks:
    """A monotonic clock that advances 1 ms per reading."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        self.t += 0.001
        return self.t


@dataclass
class Doctor:
    """Builds contexts over one routing client."""

    tmp: Path
    hosts: dict[str, httpx2.BaseTransport] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hosts.setdefault("api.github.com", github(404))
        self.routes = Routes(self.hosts)
        self.client = httpx2.Client(transport=self.routes)

    @property
    def credential_path(self) -> Path:
        return self.tmp / "config" / "credential"

    def enrol(self, url: str, *, login: str = "alice", expires: int | None = NOW_MS + 86_400_000) -> None:
        save_credential(
            self.credential_path,
            Credential(
                credential="s3cr3t-owner-token", login=login, user_id="42", expires_at_ms=expires, url=url
            ),
        )

    def context(
        self,
        run: Callable[[Sequence[str]], subprocess.CompletedProcess[bytes]],
        *,
        codec: str | None = "0.23.0",
        limits: DoctorLimits | None = None,
    ) -> DoctorContext:
        return DoctorContext(
            run=run,
            client=self.client,
            credential_path=self.credential_path,
            now_ms=lambda: NOW_MS,
            monotonic=Ticks(),
            zstd_codec=lambda: codec,
            limits=limits or DoctorLimits(),
        )

    def check(
        self, run: Callable[[Sequence[str]], subprocess.CompletedProcess[bytes]], **kw: object
    ) -> DoctorReport:
        return run_checks(self.context(run, **kw))  # type: ignore[arg-type]


@pytest.fixture
def doctor(tmp_path: Path) -> Iterator[Doctor]:
    """Our default control plane (``vega-cache.dev``) is a cache-info-only app in process."""
    d = Doctor(tmp_path, {"vega-cache.dev": TestClient(cache_info_app())._transport})
    yield d
    d.client.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """The real control plane (create_app on SQLite) at ``PUBLIC_URL``."""
    db = open_database(f"sqlite:///{tmp_path}/server.db")
    h = Harness(db, tmp_path / "server")
    with h.client:
        yield h
    db.close()


def by_name(report: DoctorReport) -> dict[str, Check]:
    return {c.name: c for c in report.checks}


# -- the recording is what nix says -----------------------------------------------------------------


@pytest.mark.nix
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_recording_matches_the_real_nix(scenario: str, tmp_path: Path) -> None:
    live = record(SCENARIOS[scenario], tmp_path)
    recorded = load_captures()[scenario]
    assert live.keys() == recorded.keys()
    for argv, result in live.items():
        assert result["rc"] == recorded[argv]["rc"], argv
        if argv.endswith("--version"):
            assert result["stdout"] == recorded[argv]["stdout"]
        for setting in RELEVANT:
            live_line = [ln for ln in str(result["stdout"]).splitlines() if ln.startswith(setting + " = ")]
            old_line = [
                ln for ln in str(recorded[argv]["stdout"]).splitlines() if ln.startswith(setting + " = ")
            ]
            assert live_line == old_line, (argv, setting)


@pytest.mark.nix
def test_doctor_over_the_real_nix_agrees_with_the_recording(tmp_path: Path, doctor: Doctor) -> None:
    """The same scenario through a runner that really runs nix gives the same report."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / ".cache"),
        "NIX_CONFIG": SCENARIOS["bare"],
    }

    def real(argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(list(argv), env=env, capture_output=True, check=False, timeout=60)
        except FileNotFoundError:
            return subprocess.CompletedProcess(list(argv), 127, b"", b"")

    assert doctor.check(real).checks == doctor.check(runner("bare")).checks


# -- nix, features, zstd -----------------------------------------------------------------------------


def test_healthy_machine_everything_ok_in_spec_order(doctor: Doctor) -> None:
    fake = runner("plain")
    report = doctor.check(fake)
    assert [c.name for c in report.checks] == [
        "nix",
        "nix features",
        "zstd",
        "auth",
        "control plane",
        "substituter",
        "trusted keys",
        "version",
    ]
    checks = by_name(report)
    assert checks["nix"] == Check(name="nix", level="ok", detail="nix (Nix) 2.8.0")
    assert checks["nix features"] == Check(name="nix features", level="ok", detail="nix-command flakes")
    assert checks["zstd"] == Check(name="zstd", level="ok", detail="available")
    assert checks["substituter"].detail == "no tenant keys in the nix config"
    assert checks["trusted keys"].detail == "no Vega substituter or key configured"
    assert checks["version"] == Check(name="version", level="ok", detail="0.18.0 (no published releases yet)")
    assert report.ok
    # nix 2.8 has no `nix config`; the doctor falls back to `nix show-config` and reads it once.
    assert fake.calls == ["nix --version", "nix config show", "nix show-config", "zstd --version"]


def test_nix_missing_fails_and_skips_the_config_checks(doctor: Doctor) -> None:
    report = doctor.check(FakeRunner({}))
    assert report.checks[0] == Check(
        name="nix", level="fail", detail="not found", fix="https://nixos.org/download"
    )
    names = [c.name for c in report.checks]
    assert {"nix features", "substituter", "trusted keys"}.isdisjoint(names)
    assert not report.ok
    assert report.to_json()["ok"] is False


def test_nix_that_exits_non_zero_fails_with_its_last_error_line(doctor: Doctor) -> None:
    broken = FakeRunner(
        {"nix --version": {"rc": 1, "stdout": "", "stderr": "warning: x\nerror: \x1b[31mbad\n"}}
    )
    check = doctor.check(broken).checks[0]
    assert check.level == "fail"
    assert check.detail == "`nix --version` exited 1: error: [31mbad"


def test_nix_command_disabled_is_detected_and_the_config_still_read(doctor: Doctor) -> None:
    fake = runner("disabled")
    checks = by_name(doctor.check(fake))
    features = checks["nix features"]
    assert features.level == "warn"
    assert features.detail.startswith("nix-command is not enabled")
    assert "flakes is not enabled" in features.detail
    assert features.fix == 'add "experimental-features = nix-command flakes" to ~/.config/nix/nix.conf'
    assert "nix --extra-experimental-features nix-command show-config" in fake.calls
    assert checks["substituter"].level == "ok"  # read through the flag


def test_flakes_disabled_warns_about_flakes_only(doctor: Doctor) -> None:
    features = by_name(doctor.check(runner("noflakes")))["nix features"]
    assert features.level == "warn"
    assert features.detail.startswith("flakes is not enabled")
    assert "nix-command" not in features.detail


def test_nix_command_on_without_being_listed_counts_as_on(doctor: Doctor) -> None:
    features = by_name(doctor.check(runner("plain", experimental_features="flakes")))["nix features"]
    assert features == Check(name="nix features", level="ok", detail="nix-command flakes")


def test_unreadable_config_skips_the_config_checks(doctor: Doctor) -> None:
    fake = runner("plain")
    results = {k: v for k, v in fake.results.items() if k == "nix --version"}
    results.update(
        {k: {"rc": 1, "stdout": "", "stderr": "error: bad nix.conf"} for k in fake.results if "config" in k}
    )
    names = [c.name for c in doctor.check(FakeRunner(results)).checks]
    assert names == ["nix", "zstd", "auth", "control plane", "version"]


def test_zstd_program_missing_but_codec_in_process_is_ok(doctor: Doctor) -> None:
    fake = runner("plain")
    del fake.results["zstd --version"]  # type: ignore[attr-defined]
    zstd = by_name(doctor.check(fake))["zstd"]
    assert zstd == Check(name="zstd", level="ok", detail="available (in process, zstandard 0.23.0)")


def test_zstd_codec_missing_warns(doctor: Doctor) -> None:
    fake = runner("plain")
    assert by_name(doctor.check(fake, codec=None))["zstd"].detail.startswith("the zstd program is installed")
    del fake.results["zstd --version"]  # type: ignore[attr-defined]
    zstd = by_name(doctor.check(fake, codec=None))["zstd"]
    assert zstd.level == "warn"
    assert zstd.detail == "not found (needed by `vega push`)"
    assert "zstandard" in str(zstd.fix)


def test_real_codec_probe_reports_the_installed_zstandard() -> None:
    import zstandard

    from vega.client.doctor import _zstandard_version

    assert _zstandard_version() == zstandard.__version__


# -- auth --------------------------------------------------------------------------------------------


def test_not_enrolled_warns_and_probes_the_default(doctor: Doctor) -> None:
    report = doctor.check(runner("plain"))
    checks = by_name(report)
    assert checks["auth"] == Check(name="auth", level="warn", detail="not enrolled", fix="vega login")
    assert checks["control plane"].detail.startswith("https://vega-cache.dev (")
    assert any(str(r.url) == "https://vega-cache.dev/nix-cache-info" for r in doctor.routes.requests)


def test_malformed_credential_is_named(doctor: Doctor) -> None:
    doctor.credential_path.parent.mkdir(parents=True)
    doctor.credential_path.write_text("{not json")
    auth = by_name(doctor.check(runner("plain")))["auth"]
    assert auth == Check(
        name="auth",
        level="warn",
        detail=f"malformed credential at {doctor.credential_path}",
        fix="vega login",
    )


def test_expired_credential_warns_and_its_url_is_still_probed(doctor: Doctor, harness: Harness) -> None:
    doctor.hosts["127.0.0.1"] = harness.client._transport
    doctor.enrol(PUBLIC_URL, expires=NOW_MS - 1)
    checks = by_name(doctor.check(runner("plain")))
    assert checks["auth"] == Check(
        name="auth", level="warn", detail="credential expired 2025-12-31", fix="vega login"
    )
    assert checks["control plane"].detail.startswith(PUBLIC_URL)


def test_enrolled_never_prints_the_secret_and_cleans_the_login(doctor: Doctor, harness: Harness) -> None:
    doctor.hosts["127.0.0.1"] = harness.client._transport
    doctor.enrol(PUBLIC_URL, login="ali\x1bce")
    report = doctor.check(runner("plain"))
    # The harness's server never issued this credential, so it refuses it (issue 12).
    auth = by_name(report)["auth"]
    assert (auth.level, auth.fix) == ("fail", f"vega login --url {PUBLIC_URL}")
    assert "s3cr3t-owner-token" not in json.dumps(report.to_json())
    sent = [r for r in doctor.routes.requests if "authorization" in r.headers]
    assert [r.url.path for r in sent] == ["/api/owner/whoami"]  # only to the credential's own server


# -- control plane -------------------------------------------------------------------------------------


def test_real_control_plane_is_reachable_with_timing_and_server_version(
    doctor: Doctor, harness: Harness
) -> None:
    doctor.hosts["127.0.0.1"] = harness.client._transport
    doctor.enrol(PUBLIC_URL)
    plane = by_name(doctor.check(runner("plain")))["control plane"]
    assert plane.level == "ok"
    # Ticks: each clock reading is 1 ms; the probe reads the clock before, inside and after.
    assert plane.detail.startswith(f"{PUBLIC_URL} (")
    assert plane.detail.endswith(" ms; server 0.18.0)")
    paths = [r.url.path for r in doctor.routes.requests]
    assert paths[:2] == ["/nix-cache-info", "/api/info"]


def test_a_control_plane_that_cannot_check_credentials_says_not_checked(doctor: Doctor) -> None:
    doctor.enrol("https://vega-cache.dev", login="ali\x1bce")  # the original: no /api/owner/whoami
    auth = by_name(doctor.check(runner("plain")))["auth"]
    assert auth == Check(
        name="auth", level="ok", detail="enrolled as alice (not checked with the control plane)"
    )


def test_old_control_plane_without_api_info_is_still_ok(doctor: Doctor) -> None:
    plane = by_name(doctor.check(runner("plain")))["control plane"]
    assert plane.level == "ok"
    assert "server" not in plane.detail


@pytest.mark.parametrize(("status", "reason"), [(503, "HTTP 503"), (404, "HTTP 404")])
def test_non_2xx_is_unreachable_and_fails(doctor: Doctor, status: int, reason: str) -> None:
    doctor.hosts["vega-cache.dev"] = TestClient(cache_info_app(status=status))._transport
    report = doctor.check(runner("plain"))
    plane = by_name(report)["control plane"]
    assert plane.level == "fail"
    assert plane.detail == f"unreachable: https://vega-cache.dev ({reason})"
    assert not report.ok
    # one try only (a 503 is not retried inside the 5 s budget)
    assert [r.url.path for r in doctor.routes.requests].count("/nix-cache-info") == 1


def test_oversized_cache_info_is_refused(doctor: Doctor) -> None:
    doctor.hosts["vega-cache.dev"] = TestClient(cache_info_app(body=b"x" * (64 * 1024 + 1)))._transport
    plane = by_name(doctor.check(runner("plain")))["control plane"]
    assert plane.detail == "unreachable: https://vega-cache.dev (answer too large)"


def test_refused_connection_on_loopback(doctor: Doctor) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    doctor.enrol(f"http://127.0.0.1:{port}")
    plane = by_name(doctor.check(runner("plain")))["control plane"]
    assert plane == Check(
        name="control plane",
        level="fail",
        detail=f"unreachable: http://127.0.0.1:{port} (no connection)",
        fix="check the network, or `vega login --url <control plane>` to use another control plane",
    )


def test_silent_server_times_out_at_the_deadline(doctor: Doctor) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)  # accepts the TCP connection, never answers
        doctor.enrol(f"http://127.0.0.1:{s.getsockname()[1]}")
        limits = DoctorLimits(control_plane_timeout_s=0.05)
        plane = by_name(doctor.check(runner("plain"), limits=limits))["control plane"]
    assert plane.level == "fail"
    assert plane.detail.endswith("(timed out)")


def info_app(info: Response) -> Starlette:
    """A control plane whose ``/api/info`` answers ``info``."""
    app = cache_info_app()
    app.router.routes.append(Route("/api/info", lambda request: info))
    return app


@pytest.mark.parametrize(
    "info",
    [
        JSONResponse({"version": "1.2\x1b[0m", "sharedKey": "vega-cache-1:not-base64!"}),
        JSONResponse(
            {
                "version": "1.2\x1b[0m",
                "sharedKey": format_public_key(generate_secret_key("other-1", b"\x06" * 32).public),
            }
        ),
        JSONResponse({"version": "1.2\x1b[0m", "sharedKey": 7}),
    ],
)
def test_api_info_with_an_unusable_shared_key_is_ignored(doctor: Doctor, info: Response) -> None:
    doctor.hosts["127.0.0.1"] = TestClient(info_app(info))._transport
    doctor.enrol("http://127.0.0.1:9")
    checks = by_name(
        doctor.check(runner("plain", substituters="http://127.0.0.1:9", trusted_public_keys=WRONG_SHARED))
    )
    assert checks["control plane"].detail.endswith("; server 1.2[0m)")
    assert checks["trusted keys"].detail == "trusted: vega-cache-1"  # nothing to compare with


@pytest.mark.parametrize(
    "info",
    [PlainTextResponse("not json"), JSONResponse({"error": "boom"}, status_code=500), JSONResponse([1, 2])],
)
def test_api_info_that_is_not_an_object_is_ignored(doctor: Doctor, info: Response) -> None:
    doctor.hosts["vega-cache.dev"] = TestClient(info_app(info))._transport
    plane = by_name(doctor.check(runner("plain")))["control plane"]
    assert plane.level == "ok"
    assert "server" not in plane.detail


def test_default_deadlines_are_the_spec_values() -> None:
    limits = DoctorLimits()
    assert (limits.control_plane_timeout_s, limits.releases_timeout_s) == (5.0, 4.0)


def test_control_plane_deadline_is_sent_with_the_request(doctor: Doctor) -> None:
    doctor.check(runner("plain"))
    probe = next(r for r in doctor.routes.requests if r.url.path == "/nix-cache-info")
    assert probe.extensions["timeout"]["read"] == 5.0


# -- substituters and keys -----------------------------------------------------------------------------


def test_tenant_key_with_its_substituter_agrees(doctor: Doctor) -> None:
    checks = by_name(doctor.check(runner("agree")))
    assert checks["substituter"] == Check(
        name="substituter", level="ok", detail="tenant keys and substituters agree"
    )
    assert checks["trusted keys"] == Check(
        name="trusted keys", level="ok", detail="vega-cache-1 matches the published key"
    )


def test_tenant_key_with_only_the_bare_substituter_warns(doctor: Doctor) -> None:
    sub = by_name(doctor.check(runner("bare")))["substituter"]
    assert sub.level == "warn"
    assert sub.detail == (
        "vega-alice-hello-1 trusted but the substituter is the bare https://vega-cache.dev, which serves "
        "only the shared tier; tenant builds are under https://vega-cache.dev/tenant/<owner>/<repo>"
    )
    assert "extra-substituters = https://vega-cache.dev/tenant/<owner>/<repo>" in str(sub.fix)


def test_tenant_key_without_any_vega_substituter_warns(doctor: Doctor) -> None:
    sub = by_name(doctor.check(runner("notenant")))["substituter"]
    assert (
        sub.detail
        == "vega-alice-hello-1 trusted but no https://vega-cache.dev/tenant/ substituter is configured"
    )


def test_wrong_shared_key_fails_with_the_published_value(doctor: Doctor) -> None:
    report = doctor.check(runner("wrong"))
    keys = by_name(report)["trusted keys"]
    assert keys.level == "fail"
    assert keys.detail.startswith("vega-cache-1 is trusted with a value that differs from the published key")
    assert keys.fix == f'replace it with "{PUBLISHED_SHARED_KEY}" in trusted-public-keys'
    assert not report.ok


def test_vega_substituter_without_a_vega_key_warns(doctor: Doctor) -> None:
    keys = by_name(doctor.check(runner("nokey")))["trusted keys"]
    assert keys.level == "warn"
    # `?priority=30` is kept by nix and ignored by the doctor
    assert keys.detail.startswith("https://vega-cache.dev is a substituter but no vega-… key is trusted")
    assert keys.fix == f'add "extra-trusted-public-keys = {PUBLISHED_SHARED_KEY}" to nix.conf'


def test_self_hosted_shared_key_is_compared_with_api_info(doctor: Doctor, harness: Harness) -> None:
    doctor.hosts["127.0.0.1"] = harness.client._transport
    doctor.enrol(PUBLIC_URL)
    served = format_public_key(harness.keys.shared.public)
    good = by_name(doctor.check(runner("plain", substituters=PUBLIC_URL, trusted_public_keys=served)))
    assert good["trusted keys"].detail == "vega-cache-1 matches the control plane's /api/info"
    bad = by_name(
        doctor.check(runner("plain", substituters=PUBLIC_URL, trusted_public_keys=PUBLISHED_SHARED_KEY))
    )
    assert bad["trusted keys"].level == "fail"
    assert bad["trusted keys"].fix == f'replace it with "{served}" in trusted-public-keys'
    missing = by_name(doctor.check(runner("plain", substituters=PUBLIC_URL, trusted_public_keys=UPSTREAM)))
    assert missing["trusted keys"].fix == f'add "extra-trusted-public-keys = {served}" to nix.conf'


def test_self_hosted_without_api_info_cannot_judge_the_value(doctor: Doctor) -> None:
    doctor.hosts["127.0.0.1"] = TestClient(cache_info_app())._transport
    doctor.enrol("http://127.0.0.1:9")
    keys = by_name(
        doctor.check(runner("plain", substituters="http://127.0.0.1:9", trusted_public_keys=WRONG_SHARED))
    )
    assert keys["trusted keys"] == Check(name="trusted keys", level="ok", detail="trusted: vega-cache-1")
    nokey = by_name(
        doctor.check(runner("plain", substituters="http://127.0.0.1:9", trusted_public_keys=UPSTREAM))
    )
    assert nokey["trusted keys"].fix == "add the control plane's vega-cache-1 key to trusted-public-keys"


def test_owner_key_fix_names_the_owner_namespace(doctor: Doctor) -> None:
    owner = format_public_key(generate_secret_key("vega-owner-583231-1", b"\x05" * 32).public)
    sub = by_name(doctor.check(runner("plain", trusted_public_keys=owner)))["substituter"]
    assert sub.fix == 'add "extra-substituters = https://vega-cache.dev/tenant/owner:583231" to nix.conf'


BASE = "https://vega-cache.dev"


@pytest.mark.parametrize(
    ("keys", "subs", "expected"),
    [
        ([], [BASE], None),
        (["cache.nixos.org-1", "vega-cache-1", "vega-view-ab12-1"], [], None),  # not tenant keys
        (["vega-a-b-1"], [f"{BASE}/u/tok"], None),  # a personal view serves them
        (["vega-a-b-1"], [f"{BASE}/tenant/a/b"], None),
        (["vega-A-B-1"], [f"{BASE}/tenant/a/b"], None),  # case is not visible from the client
        (["vega-owner-7-1"], [f"{BASE}/tenant/owner:7"], None),
        (
            ["vega-a-b-1", "vega-c-d-1"],
            [f"{BASE}/tenant/a/b"],
            f"vega-c-d-1 trusted but no matching {BASE}/tenant/ substituter is configured "
            f"(configured: {BASE}/tenant/a/b)",
        ),
        (
            ["vega-a-b-1"],
            ["https://other.example/tenant/a/b"],
            f"vega-a-b-1 trusted but no {BASE}/tenant/ substituter is configured",
        ),
        (
            ["vega-a-b-1", "vega-c-1"],
            [BASE],
            f"vega-a-b-1, vega-c-1 trusted but the substituter is the bare {BASE}, which serves only the "
            f"shared tier; tenant builds are under {BASE}/tenant/<owner>/<repo>",
        ),
    ],
)
def test_substituter_mismatch_rule(keys: list[str], subs: list[str], expected: str | None) -> None:
    assert substituter_mismatch(keys, subs, BASE + "/") == expected


# -- version -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "level", "detail"),
    [
        (404, None, "ok", "0.18.0 (no published releases yet)"),
        (200, {"tag_name": "v0.19.0"}, "warn", "0.18.0 (latest v0.19.0)"),
        (200, {"tag_name": "v0.18"}, "ok", "0.18.0 (current)"),
        (200, {"tag_name": "0.9.9"}, "ok", "0.18.0 (current)"),
        (200, {"name": "no tag"}, "ok", "0.18.0 (current)"),
        (200, b"<html>", "ok", "0.18.0 (current)"),
        (500, None, "ok", "0.18.0 (check unavailable)"),
        (403, None, "ok", "0.18.0 (check unavailable)"),
        (None, None, "ok", "0.18.0 (offline)"),
    ],
)
def test_version_outcomes(tmp_path: Path, status: int | None, body: object, level: str, detail: str) -> None:
    d = Doctor(
        tmp_path,
        {"vega-cache.dev": TestClient(cache_info_app())._transport, "api.github.com": github(status, body)},
    )
    check = by_name(d.check(runner("plain")))["version"]
    assert (check.level, check.detail) == (level, detail)
    if level == "warn":
        assert "nix flake update vega-agent" in str(check.fix)
    releases = [r for r in d.routes.requests if r.url.host == "api.github.com"]
    assert len(releases) == 1  # never retried
    assert releases[0].headers["accept"] == "application/vnd.github+json"
    assert releases[0].extensions["timeout"]["read"] == 4.0


def test_hostile_tag_is_cleaned(tmp_path: Path) -> None:
    d = Doctor(
        tmp_path,
        {
            "vega-cache.dev": TestClient(cache_info_app())._transport,
            "api.github.com": github(200, {"tag_name": "9.0\x1b[2J" + "x" * 100}),
        },
    )
    check = by_name(d.check(runner("plain")))["version"]
    assert "\x1b" not in check.detail
    assert len(check.detail) < 80


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("0.10.0", "0.9.0", 1),
        ("1.0", "1.0.0", 0),
        ("v0.18.0", "0.18.0", 0),
        ("0.18.0-rc1", "0.18.0", 0),  # non-numeric part counts as 0
        ("0.17.9", "0.18.0", -1),
        ("", "0", 0),
        ("\uff12.0", "1.0", -1),  # a non-ASCII digit (fullwidth 2) is not a number
    ],
)
def test_compare_versions(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


@given(st.text(max_size=30), st.text(max_size=30))
def test_compare_versions_never_raises_and_is_antisymmetric(a: str, b: str) -> None:
    assert compare_versions(a, b) == -compare_versions(b, a)
    assert compare_versions(a, a) == 0


@given(st.binary(max_size=400))
def test_arbitrary_nix_output_never_raises(stdout: bytes) -> None:
    config = read_nix_config(lambda argv: subprocess.CompletedProcess(list(argv), 0, stdout, b""))
    assert config is not None
    assert config.nix_command
    for name in ("substituters", "trusted-public-keys", "experimental-features"):
        assert isinstance(config.words(name), tuple)


def test_report_json_shape() -> None:
    report = DoctorReport(
        (Check(name="a", level="ok", detail="x"), Check(name="b", level="warn", detail="y", fix="z"))
    )
    assert report.to_json() == {
        "ok": True,
        "checks": [
            {"name": "a", "level": "ok", "detail": "x"},
            {"name": "b", "level": "warn", "detail": "y", "fix": "z"},
        ],
    }


# -- regenerate the recording ----------------------------------------------------------------------


def _main() -> int:  # pragma: no cover - a maintenance script
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        captures = {name: record(config, Path(home)) for name, config in SCENARIOS.items()}
    CAPTURES.write_text(json.dumps(captures, indent=1, sort_keys=True) + "\n")
    print(f"wrote {CAPTURES}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())


# -- personal view (issue 8) ------------------------------------------------------------------------


def test_view_check_notices_a_rotated_token_and_never_prints_it(doctor: Doctor, harness: Harness) -> None:
    doctor.hosts["127.0.0.1"] = harness.client._transport
    doctor.enrol(PUBLIC_URL)
    credential = harness.owner_credential()
    view = harness.client.post("/api/view/token", headers={"authorization": f"Bearer {credential}"}).json()
    old = f"{PUBLIC_URL}{view['substituter']}"
    keys = f"{view['publicKey']} {view['sharedKey']}"
    live = by_name(doctor.check(runner("plain", substituters=old, trusted_public_keys=keys)))
    assert (live["view"].level, live["view"].detail) == (
        "ok",
        f"your personal view at {PUBLIC_URL}/u/<token> answers",
    )
    harness.client.post(
        "/api/view/token", headers={"authorization": f"Bearer {credential}"}, json={"rotate": True}
    )
    report = doctor.check(runner("plain", substituters=old, trusted_public_keys=keys))
    dead = by_name(report)["view"]
    assert dead.level == "warn"
    assert "no longer works" in dead.detail
    assert dead.fix is not None
    assert "vega view --write" in dead.fix
    assert view["token"] not in json.dumps(report.to_json())
    plain = by_name(doctor.check(runner("plain", substituters=PUBLIC_URL, trusted_public_keys=keys)))
    assert "view" not in plain
