"""The binary cache edge and trusted keys (cli.md §1.6, §10.2-§10.4)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import httpx2
import pytest

from tests.client.conftest import SHARED, TENANT, UPSTREAM, CacheServer
from vega.client.cache import (
    BinaryCache,
    is_tenant_scope,
    load_trusted_keys,
    nix_conf_files,
    parse_trusted_keys,
    run_process,
    select_trusted_key,
    signature_names,
)
from vega.client.http import Http
from vega.core.compression import Compression
from vega.core.signing import format_public_key

A = format_public_key(SHARED.public)
B = format_public_key(TENANT.public)
C = format_public_key(UPSTREAM.public)


class FakeRunner:
    def __init__(self, answers: dict[str, tuple[int, bytes]]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        self.calls.append(list(argv))
        code, out = self.answers.get(" ".join(argv[:3]), (1, b""))
        return subprocess.CompletedProcess(list(argv), code, out, b"")


def test_keys_from_nix_config_show(tmp_path: Path) -> None:
    run = FakeRunner({"nix config show": (0, f"{A} junk no:colon:x\n{C}\n".encode())})
    keys = load_trusted_keys(run, [tmp_path / "missing.conf"])
    assert set(keys) == {"vega-cache-1", "cache.nixos.org-1"}
    assert run.calls == [["nix", "config", "show", "trusted-public-keys"]]


def test_old_nix_show_config_fallback(tmp_path: Path) -> None:
    """Nix 2.8 has no `nix config show`; `nix show-config` prints the same setting."""
    run = FakeRunner({"nix show-config": (0, f"sandbox = true\ntrusted-public-keys = {A} {B}\n".encode())})
    keys = load_trusted_keys(run, [])
    assert set(keys) == {"vega-cache-1", "vega-alice-hello-1"}


def test_conf_files_after_nix_and_later_names_win(tmp_path: Path) -> None:
    """cli.md §1.6: nix first, then /etc/nix/nix.conf, then ~/.config/nix/nix.conf; later duplicates win."""
    other = format_public_key(TENANT.public).replace("vega-alice-hello-1", "vega-cache-1")
    etc = tmp_path / "etc.conf"
    etc.write_text(f"# comment\n  extra-trusted-public-keys =  {B}\nsubstituters = x\n")
    user = tmp_path / "user.conf"
    user.write_text(f"trusted-public-keys = {other} not-a-key:!!!\n")
    run = FakeRunner({"nix config show": (0, A.encode())})
    keys = load_trusted_keys(run, [etc, user, tmp_path / "absent"])
    assert keys["vega-cache-1"].key == TENANT.public.key
    assert "vega-alice-hello-1" in keys


def test_nix_missing_entirely(tmp_path: Path) -> None:
    assert load_trusted_keys(FakeRunner({}), []) == {}


def test_nix_conf_files() -> None:
    assert nix_conf_files(Path("/h")) == (Path("/etc/nix/nix.conf"), Path("/h/.config/nix/nix.conf"))


def test_run_process_missing_program() -> None:
    done = run_process(["/nonexistent/vega-test-binary"])
    assert done.returncode == 127
    assert run_process(["true"]).returncode == 0


def test_selection_walks_sig_order() -> None:
    keys = parse_trusted_keys([A, C])
    sigs = ["unknown-1:abc", f"{UPSTREAM.name}:x", f"{SHARED.name}:y"]
    chosen = select_trusted_key(sigs, keys)
    assert chosen is not None
    assert chosen.name == UPSTREAM.name
    assert select_trusted_key(["nobody:x"], keys) is None
    assert signature_names([" a :x", ":y", "b:z"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("https://c.test/tenant/alice/hello", True),
        ("https://c.test/tenant/alice/hello/", True),
        ("https://c.test/tenant/owner:123", True),
        ("https://c.test/tenant/alice", False),
        ("https://c.test/tenant/-x/y", False),
        ("https://c.test", False),
        ("https://c.test/u/token", False),
    ],
)
def test_tenant_scope(url: str, want: bool) -> None:
    assert is_tenant_scope(url) is want


def test_nar_unsupported_compression_and_fetch_failure(server: CacheServer) -> None:
    from dataclasses import replace

    build = server.add("x")
    cache = BinaryCache(Http(server.client), "https://cache.test")
    odd = replace(build.info, compression="lz4")
    got = cache.check_nar(odd)
    assert (got.ok, got.checked, got.detail) == (
        False,
        False,
        "unsupported compression 'lz4' for local check",
    )
    gone = replace(build.info, url="nar/missing.nar.zst")
    got = cache.check_nar(gone)
    assert (got.ok, got.checked, got.detail) == (False, False, "NAR fetch failed (HTTP 404)")


def test_nar_longer_than_signed_size(server: CacheServer) -> None:
    build = server.add("x", b"abc", compression=Compression.NONE)
    server.recorder.tamper["/nar/"] = lambda b: b + b"more"
    got = BinaryCache(Http(server.client), "https://cache.test").check_nar(build.info)
    assert (got.ok, got.checked) == (False, True)
    assert got.detail == f"content exceeds the signed NarSize {build.info.nar_size}"


def test_nar_download_is_capped_by_the_signed_size(server: CacheServer) -> None:
    build = server.add("x", b"abc", compression=Compression.NONE)
    server.recorder.tamper["/nar/"] = lambda b: b + b"\0" * (2 << 20)
    got = BinaryCache(Http(server.client), "https://cache.test").check_nar(build.info)
    assert (got.ok, got.checked) == (False, False)
    cap = build.info.nar_size + build.info.nar_size // 16 + (1 << 20)
    assert f"over the {cap}-byte limit" in got.detail
    got = BinaryCache(Http(server.client), "https://cache.test").check_nar(build.info, max_bytes=100)
    assert (got.ok, got.checked) == (False, False)
    assert "over the 100-byte limit" in got.detail


def test_nar_shorter_than_signed_size(server: CacheServer) -> None:
    from dataclasses import replace

    build = server.add("x", b"abc", compression=Compression.NONE)
    bigger = replace(build.info, signed=replace(build.info.signed, nar_size=build.info.nar_size + 1))
    got = BinaryCache(Http(server.client), "https://cache.test").check_nar(bigger)
    assert (got.ok, got.checked) == (False, True)
    assert got.detail == f"signed NarSize {bigger.nar_size}, content {build.info.nar_size} bytes"


def test_tenants_and_key_tolerate_garbage() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.startswith("/api/status/"):
            return httpx2.Response(200, json={"tenants": ["a/b", "a/b", "bad tenant", 3, "owner:12"]})
        return httpx2.Response(200, content=b"not json")

    cache = BinaryCache(Http(httpx2.Client(transport=httpx2.MockTransport(handler))), "https://c.test/")
    assert cache.base_url == "https://c.test"
    assert cache.tenants("h") == ("a/b", "owner:12")
    assert cache.tenant_key() is None

    def broken(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=[1])

    cache = BinaryCache(Http(httpx2.Client(transport=httpx2.MockTransport(broken))), "https://c.test")
    assert cache.tenants("h") == ()
    assert cache.tenant_key() is None
