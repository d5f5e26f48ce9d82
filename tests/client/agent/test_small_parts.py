"""Workflow-command escaping (§9), the stall watchdog (§7.5), failure classes and excerpts."""

from __future__ import annotations

import io

import pytest

from vega.client.agent.failure import classify_failure, excerpt
from vega.client.agent.github import escape_data, warning
from vega.client.agent.oidc import jwt_exp
from vega.client.agent.watchdog import Watchdog, human_bytes


def test_escaping_keeps_an_injected_command_on_one_line() -> None:
    assert escape_data("50% done\r\n::error::x") == "50%25 done%0D%0A::error::x"
    assert escape_data("%0A") == "%250A"  # % first, so an escape cannot be smuggled in
    err = io.StringIO()
    warning("a\n::error::x", err)
    assert err.getvalue() == "::warning::a%0A::error::x\n"
    assert err.getvalue().count("\n") == 1


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (10 * 1024, "10 KiB"), (350 << 20, "350 MiB"),
     (5 << 30, "5.0 GiB"), (3 << 40, "3.0 TiB"), (5000 << 40, "5000 TiB")],
)  # fmt: skip
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


def test_the_watchdog_reports_only_after_the_window_and_with_rates() -> None:
    now = [1000.0]
    err = io.StringIO()
    dog = Watchdog(300, err, lambda: now[0])
    assert dog.check() is None  # nothing in flight
    dog.stage("/nix/store/a", "compress")
    now[0] += 299
    assert dog.check() is None
    dog.stage("/nix/store/a", "upload")
    dog.progress("/nix/store/a", 350 << 20, 5 << 30)
    dog.stage("/nix/store/b", "attest")
    now[0] += 11
    report = dog.check()
    assert report == (
        "vega-attest: no path has completed for 310s; in-flight:\n"
        "  upload /nix/store/a (11s in stage, 350 MiB/5.0 GiB, 32 MiB/s)\n"
        "  attest /nix/store/b (11s in stage)\n"
    )
    now[0] += 60
    assert "350 MiB/5.0 GiB, 0 B/s" in (dog.check() or "")  # no bytes since the mark
    dog.done("/nix/store/a")
    dog.done("/nix/store/b")
    now[0] += 1000
    assert dog.check() is None
    assert err.getvalue().count("no path has completed") == 2


def test_the_watchdog_timer_is_a_daemon() -> None:
    dog = Watchdog(300, io.StringIO(), lambda: 0.0, interval=3600)
    dog.start()
    assert dog._thread is not None
    assert dog._thread.daemon
    dog.stop()
    dog._thread.join(timeout=5)
    assert not dog._thread.is_alive()


@pytest.mark.parametrize(
    ("log", "kind"),
    [
        ("error: writing to file: No space left on device", "out-of-space"),
        ("error: nix build timed out after 5m", "timeout"),
        (
            "error: access to absolute path '/home/u/secrets' is forbidden in pure eval mode",
            "impure-host-path",
        ),
        ("builder: line 1: /usr/bin/env: not found", "impure-host-path"),
        ("mkdir: can't create directory '/x': Permission denied", "sandbox-denied"),
        ("curl: (6) Could not resolve host: example.com", "network"),
        ("error: unable to download 'https://x': HTTP error 404", "network"),
        ("error: flake 'git+file:///x' does not provide attribute 'packages.x.y'", "eval"),
        ("error: undefined variable 'foo'", "eval"),
        ("error: builder for '/nix/store/x.drv' failed with exit code 1", "other"),
    ],
)
def test_failure_classes(log: str, kind: str) -> None:
    assert classify_failure(f"building...\n{log}\n") == kind


def test_the_excerpt_is_redacted_before_it_is_cut() -> None:
    secret = "ghp_" + "x" * 40
    jwt = "eyJhbGciOi.eyJzdWIiOi.sig-part"
    log = "noise\nerror: failed\n" + ("padding line\n" * 300) + f"token {secret} and {jwt}\n"
    text = excerpt(log, (jwt,))
    assert len(text.encode()) <= 2048
    assert secret not in text
    assert jwt not in text
    assert "x" * 10 not in text
    assert text.endswith("token ghp_xx\u2026 and [redacted]")
    assert text.startswith("\u2026")
    assert excerpt("warming up\nerror: boom\n") == "warming up\nerror: boom"
    assert excerpt("no error word here") == "no error word here"
    assert len(excerpt("é" * 3000).encode()) <= 2048  # never cut inside a character


def test_a_secret_split_by_the_cut_is_still_redacted() -> None:
    """Cut first, the kept tail would start inside the key and show its last characters."""
    secret = "AKIA" + "ABCDEFGHIJKLMNOP"
    text = excerpt("error: " + secret + " " + "y" * 2039)
    assert "MNOP" not in text
    assert text.startswith("\u2026")
    assert len(text.encode()) <= 2048


def test_jwt_exp() -> None:
    import base64
    import json

    def tok(payload: object) -> str:
        body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
        return f"h.{body}.s"

    assert jwt_exp(tok({"exp": 1700000000})) == 1700000000.0
    assert jwt_exp(tok({"exp": "1"})) is None
    assert jwt_exp(tok({"exp": True})) is None
    assert jwt_exp(tok([1])) is None
    assert jwt_exp("a.b") is None
    assert jwt_exp("a.!!!.c") is None
