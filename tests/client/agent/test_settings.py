"""The agents' environment inputs (agent.md §3, §10.1; changes-0.19.md), valid and invalid."""

from __future__ import annotations

import math

import pytest

from vega.client.agent.settings import (
    OIDC_REQUEST_VARS,
    Target,
    attest_settings,
    check_target,
    child_environ,
    parse_exclude,
    parse_max_nar_bytes,
    reproduce_settings,
    take_oidc_request,
    upload_concurrency,
)
from vega.client.upload import js_number
from vega.errors import ConfigError

URL = "https://vega.example"


def attest(env: dict[str, str], installable: str | None = None) -> object:
    return attest_settings(installable, {"VEGA_URL": URL, **env}, "/cwd")


@pytest.mark.parametrize(
    ("text", "value"),
    [("", 0.0), ("  12 ", 12.0), ("1e3", 1000.0), ("0x10", 16.0), ("0o17", 15.0), ("0b101", 5.0),
     ("2.5", 2.5), (".5", 0.5), ("-3", -3.0), ("Infinity", math.inf), ("-Infinity", -math.inf)],
)  # fmt: skip
def test_js_number_accepts_what_number_accepts(text: str, value: float) -> None:
    assert js_number(text) == value


@pytest.mark.parametrize("text", ["abc", "inf", "nan", "NaN", "1_000", "+0x10", "0x", "0xfg", "1e", "12px"])
def test_js_number_rejects_what_number_rejects(text: str) -> None:
    assert math.isnan(js_number(text))


def test_the_oidc_request_variables_are_taken_out_of_the_environment() -> None:
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://t", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "s3cret", "X": "1"}
    request = take_oidc_request(env)
    assert (request.url, request.token) == ("https://t", "s3cret")
    assert env == {"X": "1"}
    assert "s3cret" not in repr(request)
    assert take_oidc_request({}).url is None


def test_a_child_environment_never_holds_the_oidc_variables() -> None:
    env = {name: "x" for name in OIDC_REQUEST_VARS} | {"PATH": "/bin"}
    assert child_environ(env) == {"PATH": "/bin"}


def test_defaults() -> None:
    s = attest_settings(None, {"VEGA_URL": URL + "/"}, "/cwd")
    assert (s.url, s.audience, s.installable, s.workspace, s.repository) == (
        URL,
        URL + "/",
        ".#",
        "/cwd",
        None,
    )
    assert (s.skip_upstream, s.upstream, s.reuse_cache) == (False, "https://cache.nixos.org", False)
    assert (s.extra_substituters, s.extra_trusted_public_keys, s.exclude, s.max_nar_bytes) == (
        (),
        (),
        (),
        None,
    )
    assert (s.build_timeout_s, s.stall_warn_s, s.nar_stall_s, s.nix_store) == (None, 300.0, 600.0, None)
    assert (s.limits.http_timeout_s, s.limits.stall_s, s.limits.cap_s) == (120.0, 300.0, 0.0)


def test_every_input_is_read() -> None:
    s = attest_settings(
        "path:.#pkg",
        {
            "VEGA_URL": URL,
            "VEGA_AUDIENCE": "aud",
            "GITHUB_WORKSPACE": "/ws",
            "GITHUB_REPOSITORY": "o/r",
            "VEGA_SKIP_UPSTREAM": "true",
            "VEGA_UPSTREAM": "https://up.example",
            "VEGA_REUSE_CACHE": "true",
            "VEGA_EXTRA_SUBSTITUTERS": " https://a  https://b ",
            "VEGA_EXTRA_TRUSTED_PUBLIC_KEYS": "k:1\tk:2",
            "VEGA_BUILD_TIMEOUT_MINUTES": "0x2",
            "VEGA_UPLOAD_CONCURRENCY": "8",
            "VEGA_STALL_WARN_SECONDS": "1e1",
            "VEGA_HTTP_TIMEOUT_SECONDS": "7.5",
            "VEGA_UPLOAD_STALL_SECONDS": "9",
            "VEGA_UPLOAD_CAP_SECONDS": "30",
            "VEGA_UPLOAD_TIMEOUT_SECONDS": "1",  # ignored since 0.18.0
            "VEGA_NAR_STALL_SECONDS": "11",
            "VEGA_EXCLUDE": "*.erofs, big-*",
            "VEGA_MAX_NAR_BYTES": "2G",
            "VEGA_NIX_STORE": "/tmp/storeB/",
        },
        "/cwd",
    )
    assert (s.installable, s.audience, s.workspace, s.repository) == ("path:.#pkg", "aud", "/ws", "o/r")
    assert (s.skip_upstream, s.upstream, s.reuse_cache) == (True, "https://up.example", True)
    assert s.extra_substituters == ("https://a", "https://b")
    assert s.extra_trusted_public_keys == ("k:1", "k:2")
    assert (s.build_timeout_s, s.upload_concurrency, s.stall_warn_s, s.nar_stall_s) == (
        120.0,
        "8",
        10.0,
        11.0,
    )
    assert (s.limits.http_timeout_s, s.limits.stall_s, s.limits.cap_s) == (7.5, 9.0, 30.0)
    assert (s.exclude, s.max_nar_bytes, s.nix_store) == (("*.erofs", "big-*"), 2 << 30, "/tmp/storeB")


@pytest.mark.parametrize("value", ["TRUE", "1", "yes", " true", ""])
def test_flags_are_on_only_for_exactly_true(value: str) -> None:
    s = attest({"VEGA_SKIP_UPSTREAM": value, "VEGA_REUSE_CACHE": value})
    assert (s.skip_upstream, s.reuse_cache) == (False, False)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("minutes", "ms", "seconds"),
    [("", "", None), ("0", "1500", 1.5), ("abc", "2000", 2.0), ("1.5", "99", 90.0), ("-1", "-5", None)],
)
def test_the_build_timeout_falls_back_from_minutes_to_ms(
    minutes: str, ms: str, seconds: float | None
) -> None:
    s = attest({"VEGA_BUILD_TIMEOUT_MINUTES": minutes, "VEGA_BUILD_TIMEOUT_MS": ms})
    assert s.build_timeout_s == seconds  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("VEGA_HTTP_TIMEOUT_SECONDS", "abc", "http", 120.0),
        ("VEGA_HTTP_TIMEOUT_SECONDS", "-4", "http", 120.0),
        ("VEGA_HTTP_TIMEOUT_SECONDS", "0", "http", 120.0),
        ("VEGA_HTTP_TIMEOUT_SECONDS", "Infinity", "http", 120.0),
        ("VEGA_UPLOAD_STALL_SECONDS", "0.25", "stall", 0.25),
        ("VEGA_UPLOAD_STALL_SECONDS", "x", "stall", 300.0),
        ("VEGA_UPLOAD_CAP_SECONDS", "nope", "cap", 0.0),
        ("VEGA_NAR_STALL_SECONDS", "", "nar", 600.0),
        ("VEGA_STALL_WARN_SECONDS", "0", "warn", 300.0),
        ("VEGA_STALL_WARN_SECONDS", "junk", "warn", 300.0),
    ],
)
def test_seconds_values_fall_back_to_their_defaults(
    name: str, value: str, field: str, expected: float
) -> None:
    s = attest({name: value})
    got = {
        "http": s.limits.http_timeout_s,  # type: ignore[attr-defined]
        "stall": s.limits.stall_s,  # type: ignore[attr-defined]
        "cap": s.limits.cap_s,  # type: ignore[attr-defined]
        "nar": s.nar_stall_s,  # type: ignore[attr-defined]
        "warn": s.stall_warn_s,  # type: ignore[attr-defined]
    }[field]
    assert got == expected


@pytest.mark.parametrize(
    ("value", "paths", "workers"),
    [(None, 10, 4), ("", 10, 4), ("0", 10, 4), ("abc", 10, 4), ("8", 3, 3), ("2.9", 10, 2), ("-3", 10, 1),
     ("0x10", 100, 16), ("Infinity", 7, 7), ("5", 0, 1)],
)  # fmt: skip
def test_upload_concurrency(value: str | None, paths: int, workers: int) -> None:
    assert upload_concurrency(value, paths) == workers


def test_vega_url_is_required_and_must_be_https_unless_loopback() -> None:
    with pytest.raises(ConfigError, match="VEGA_URL is required"):
        attest_settings(None, {}, "/")
    for bad in ("http://vega.example", "ftp://x", "vega.example", "https://", "http://10.0.0.1:8080"):
        with pytest.raises(ConfigError, match="VEGA_URL: control plane must be a valid https URL"):
            attest_settings(None, {"VEGA_URL": bad}, "/")
    for good in ("http://127.0.0.1:8080", "http://localhost", "http://[::1]:9", "https://vega.example/x/"):
        attest_settings(None, {"VEGA_URL": good}, "/")


def test_a_flag_like_installable_is_refused() -> None:
    with pytest.raises(ConfigError, match="refusing installable that looks like a flag: --impure"):
        attest({}, "--impure")


def test_exclude_patterns() -> None:
    assert parse_exclude(None) == ()
    assert parse_exclude(" a*, ,b ,") == ("a*", "b")
    with pytest.raises(ConfigError, match="VEGA_EXCLUDE: 'nix/store/x' contains '/'"):
        parse_exclude("ok,nix/store/x")


@pytest.mark.parametrize(
    ("value", "limit"),
    [(None, None), ("", None), ("  ", None), ("0", None), ("1024", 1024), ("1K", 1024), ("25G", 25 << 30),
     ("3MiB", 3 << 20), ("2 t", 2 << 40), ("7B", 7)],
)  # fmt: skip
def test_max_nar_bytes_valid(value: str | None, limit: int | None) -> None:
    assert parse_max_nar_bytes(value) == limit


@pytest.mark.parametrize("value", ["-1", "1.5G", "abc", "10 X", "1e9", "0x10", "G"])
def test_max_nar_bytes_malformed_fails_the_run(value: str) -> None:
    with pytest.raises(ConfigError, match="VEGA_MAX_NAR_BYTES: expected a number of bytes"):
        attest({"VEGA_MAX_NAR_BYTES": value})


@pytest.mark.parametrize("value", ["relative/dir", "/", "local?root=/x"])
def test_nix_store_must_be_an_absolute_directory(value: str) -> None:
    with pytest.raises(ConfigError, match="VEGA_NIX_STORE"):
        attest({"VEGA_NIX_STORE": value})


REPRO = {
    "VEGA_URL": URL,
    "VEGA_ATTR": "packages.x86_64-linux.app",
    "VEGA_FLAKE_REF": "github:o/r",
    "VEGA_REV": "a" * 40,
}


def test_reproducer_inputs() -> None:
    s = reproduce_settings(
        REPRO | {"VEGA_DIR": "sub/dir", "VEGA_EXPECT_STORE_PATH": "/nix/store/x",
                 "VEGA_EXPECT_NARHASH": "sha256:x", "VEGA_HASH": "  h  ",
                 "VEGA_GITHUB_MIRRORS": "o/r=git+file:///srv/r"},
        from_queue=False,
    )  # fmt: skip
    assert s.target == Target(
        flake_ref="github:o/r", attr="packages.x86_64-linux.app", rev="a" * 40, dir="sub/dir",
        expect_store_path="/nix/store/x", expect_nar_hash="sha256:x", hash="h",
    )  # fmt: skip
    assert s.mirrors.entries == {"o/r": "git+file:///srv/r"}
    assert reproduce_settings(REPRO | {"VEGA_HASH": "   "}, from_queue=False).target.hash is None  # type: ignore[union-attr]
    assert reproduce_settings({"VEGA_URL": URL}, from_queue=True).target is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"VEGA_URL": ""}, "VEGA_URL is required"),
        ({"VEGA_URL": "http://vega.example"}, "must be a valid https URL"),
        ({"VEGA_ATTR": ""}, 'refusing unsafe flake attr: ""'),
        ({"VEGA_ATTR": "a;b"}, 'refusing unsafe flake attr: "a;b"'),
        ({"VEGA_FLAKE_REF": ""}, "VEGA_FLAKE_REF is required"),
        ({"VEGA_REV": ""}, "VEGA_REV is required"),
        ({"VEGA_DIR": "../up"}, 'refusing unsafe subflake dir: "../up"'),
        ({"VEGA_DIR": "/abs"}, "refusing unsafe subflake dir"),
        ({"VEGA_DIR": "a/./b"}, "refusing unsafe subflake dir"),
        ({"VEGA_GITHUB_MIRRORS": "o/r=https://x"}, "VEGA_GITHUB_MIRRORS: expected owner/repo=git+"),
        ({"VEGA_GITHUB_MIRRORS": "o=git+file:///x"}, "VEGA_GITHUB_MIRRORS"),
        ({"VEGA_GITHUB_MIRRORS": "o/r=git+file:///x?ref=main"}, "VEGA_GITHUB_MIRRORS"),
    ],
)
def test_reproducer_inputs_invalid(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        reproduce_settings(REPRO | change, from_queue=False)


def test_check_target_runs_on_queue_candidates_too() -> None:
    with pytest.raises(ConfigError, match="refusing unsafe flake attr"):
        check_target(Target(flake_ref="github:o/r", attr="x y", rev="r"))
