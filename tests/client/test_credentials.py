"""cli.md §1.5 and issue 5: strict and lenient loads (texts verbatim), atomic 0600 writes in 0700."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega.client.credentials import (
    Credential,
    format_expiry_date,
    load_credential,
    load_credential_lenient,
    remove_credential,
    save_credential,
)
from vega.errors import ConfigError

NOW_MS = 1_800_000_000_000
CRED = Credential(
    credential="v1.secret.sig",
    login="octocat",
    user_id="583231",
    expires_at_ms=NOW_MS + 1000,
    url="https://vega-cache.dev",
)


def path_in(tmp_path: Path) -> Path:
    return tmp_path / "cfg" / "vega" / "credential"


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    save_credential(path, CRED)
    assert load_credential(path, NOW_MS) == CRED
    assert load_credential_lenient(path) == CRED
    assert path.read_text() == (
        "{\n"
        '  "credential": "v1.secret.sig",\n'
        '  "login": "octocat",\n'
        '  "userId": "583231",\n'
        f'  "expiresAt": {NOW_MS + 1000},\n'
        '  "url": "https://vega-cache.dev"\n'
        "}\n"
    )
    assert "secret" not in repr(CRED)


def test_modes_are_0600_in_0700_even_over_loose_existing_ones(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    path.parent.mkdir(parents=True, mode=0o755)
    os.chmod(path.parent, 0o755)  # noqa: S103 - loose on purpose
    path.write_text("old")
    os.chmod(path, 0o644)
    save_credential(path, CRED)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["credential"]  # no temp file left


def test_write_is_atomic_replace(tmp_path: Path) -> None:
    """A reader holding the old file sees the old content; the path names the new one (rename)."""
    path = path_in(tmp_path)
    save_credential(path, CRED)
    before = path.stat().st_ino
    with path.open() as old:
        save_credential(path, dataclasses.replace(CRED, login="other"))
        assert json.load(old)["login"] == "octocat"
    assert path.stat().st_ino != before
    assert load_credential(path, NOW_MS).login == "other"


def test_failed_write_leaves_no_temp_file_and_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write credential"):
        save_credential(blocker / "vega" / "credential", CRED)


def test_strict_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_credential(path_in(tmp_path), NOW_MS)
    assert e.value.message == "not enrolled: this machine has no Vega credential."
    assert e.value.next_steps == ("vega login",)
    assert load_credential_lenient(path_in(tmp_path)) is None


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"credential": 1, "url": "https://x.test"}',
        '{"credential": "c"}',
        '{"url": "https://x.test"}',
        "\xff",
    ],
)
def test_strict_malformed(tmp_path: Path, content: str) -> None:
    path = path_in(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("utf-8", "surrogateescape") if content != "\xff" else b"\xff")
    with pytest.raises(ConfigError) as e:
        load_credential(path, NOW_MS)
    assert e.value.message == f"malformed credential at {path}."
    assert e.value.next_steps == ("vega login",)
    assert load_credential_lenient(path) is None


def write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_strict_invalid_url(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    write(path, {"credential": "c", "url": "http://evil.test"})
    with pytest.raises(ConfigError) as e:
        load_credential(path, NOW_MS)
    assert e.value.message == (
        "control plane must be a valid https URL: it is plaintext http to a host that is not loopback"
        " (localhost, 127.0.0.1, ::1); refusing to send credentials over plaintext."
    )
    assert load_credential_lenient(path) is None


def test_strict_expired_and_lenient_keeps_it(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    expiry = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    write(
        path, {"credential": "c", "login": "o", "userId": "1", "expiresAt": expiry, "url": "https://x.test/"}
    )
    with pytest.raises(ConfigError) as e:
        load_credential(path, expiry + 1)
    assert e.value.message == "credential expired 2026-01-01."
    assert e.value.next_steps == ("vega login",)
    assert load_credential(path, expiry).url == "https://x.test"  # not yet: expiresAt < now is expiry
    lenient = load_credential_lenient(path)
    assert lenient is not None
    assert lenient.is_expired(expiry + 1)


@pytest.mark.parametrize("expires", [None, 0, "soon", True])
def test_falsy_or_odd_expiry_never_expires(tmp_path: Path, expires: object) -> None:
    path = path_in(tmp_path)
    write(path, {"credential": "c", "url": "https://x.test", "expiresAt": expires, "userId": 7})
    cred = load_credential(path, NOW_MS)
    assert not cred.is_expired(NOW_MS)
    assert cred.user_id == "7"
    assert cred.login == ""


def test_remove(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    assert remove_credential(path) is False
    save_credential(path, CRED)
    assert remove_credential(path) is True
    assert not path.exists()


def test_remove_failure_is_a_config_error(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    path.mkdir(parents=True)  # a directory cannot be unlinked
    with pytest.raises(ConfigError, match="cannot remove credential"):
        remove_credential(path)


def test_expiry_dates() -> None:
    assert format_expiry_date(1_767_225_600_000) == "2026-01-01"
    assert format_expiry_date(None) == "never"
    assert format_expiry_date(10**30) == "unknown"


@given(st.binary(max_size=300))
def test_arbitrary_bytes_strict_raise_only_config_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("c") / "credential"
    path.write_bytes(data)
    with contextlib.suppress(ConfigError):
        load_credential(path, NOW_MS)
    load_credential_lenient(path)


def test_a_credential_per_control_plane(tmp_path: Path) -> None:
    from vega.client.credentials import (
        all_credentials,
        credential_for,
        forget_credential,
        remember_credential,
        stored_path,
    )

    cfg = tmp_path / "vega"
    other = dataclasses.replace(CRED, url="http://127.0.0.1:8080", login="local")
    assert remember_credential(cfg, CRED) == cfg / "credential"
    remember_credential(cfg, other)
    assert stat.S_IMODE(stored_path(cfg, CRED.url).stat().st_mode) == 0o600
    assert stored_path(cfg, CRED.url) != stored_path(cfg, other.url)
    assert stored_path(cfg, "https://vega-cache.dev") == stored_path(cfg, "https://vega-cache.dev/")
    assert credential_for(cfg, None, NOW_MS) == other  # the last login is the current one
    assert credential_for(cfg, CRED.url, NOW_MS) == CRED
    assert credential_for(cfg, "https://VEGA-CACHE.dev/", NOW_MS) == CRED  # normalised
    assert all_credentials(cfg) == [other, CRED]
    with pytest.raises(ConfigError, match=r"^not enrolled with https://elsewhere\.test"):
        credential_for(cfg, "https://elsewhere.test", NOW_MS)

    # A file written by the original (the current one only, no per-server copy) is still found.
    stored_path(cfg, other.url).unlink()
    assert credential_for(cfg, other.url, NOW_MS) == other

    assert forget_credential(cfg, CRED.url) is True
    assert forget_credential(cfg, CRED.url) is False
    assert credential_for(cfg, None, NOW_MS) == other  # another server's logout keeps the current
    assert forget_credential(cfg, None) is True
    assert all_credentials(cfg) == []

    # An unreadable current file is still removed by a plain logout.
    (cfg / "credential").write_text("{corrupt")
    assert forget_credential(cfg, None) is True
    assert forget_credential(cfg, None) is False
