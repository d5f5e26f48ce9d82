"""`vega verify --url` against plain Nix binary caches served over loopback HTTP (issue 14).

The cache is what the real `nix copy --to file://` writes, served as-is by a stdlib HTTP
server on 127.0.0.1, and then rewritten the way other caches and older Nix versions write
narinfos (base-16 hashes as Cachix writes them, SRI hashes, no ``Compression`` for a bzip2
NAR, no ``FileHash``/``FileSize``, ``Deriver: unknown-deriver``, unknown keys). Each variant
is read by the installed `vega verify --url ... --public-key ...` as a user would run it,
and the real Nix substitutes from the same rewritten cache, so both readers accept it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import NIX_CONFIG, NixRunner, run_vega
from tests.with_nix.signing_closure import Closure, build_closure, new_nix_key
from vega.core.hashes import parse_nix_hash


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """Serve a directory over HTTP on a free loopback port; returns its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(root: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(root))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _rewrite(cache: Path, change: Callable[[list[str]], list[str]]) -> None:
    for file in cache.glob("*.narinfo"):
        lines = file.read_text().splitlines()
        file.write_text("".join(line + "\n" for line in change(lines)))


def _hash_as(encoding: str) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            key, _, value = line.partition(": ")
            if key in ("NarHash", "FileHash"):
                h = parse_nix_hash(value)
                value = h.sri if encoding == "sri" else f"sha256:{h.base16}"
            out.append(f"{key}: {value}")
        return out

    return change


def _old_style(lines: list[str]) -> list[str]:
    """As old Nix and hand-rolled caches write them: defaults left out, unknown keys added."""
    out = [
        line for line in lines if not line.startswith(("Compression:", "FileHash:", "FileSize:", "Deriver:"))
    ]
    return [*out, "Deriver: unknown-deriver", "System: x86_64-linux"]


VARIANTS: dict[str, tuple[str, Callable[[list[str]], list[str]] | None]] = {
    "nix-copy-xz": ("xz", None),
    "nix-copy-zstd": ("zstd", None),
    "cachix-base16": ("zstd", _hash_as("base16")),
    "sri-hashes": ("xz", _hash_as("sri")),
    "old-style-bzip2-defaults": ("bzip2", _old_style),
}


@pytest.fixture(scope="module")
def closure(tmp_path_factory: pytest.TempPathFactory) -> tuple[NixRunner, Closure, Path, str]:
    if shutil.which("nix") is None:
        pytest.skip("nix is not installed")
    work = tmp_path_factory.mktemp("any-cache")
    nix = NixRunner(env=dict(os.environ, NIX_CONFIG=NIX_CONFIG, XDG_CACHE_HOME=str(work / "xdg")))
    built = build_closure(nix, work)
    secret, _ = new_nix_key(nix, work, "other-cache-1")
    public = nix.run("nix", "key", "convert-secret-to-public", input=secret.read_bytes()).decode().strip()
    nix.run("nix", "store", "sign", "-k", str(secret), *built.paths)
    return nix, built, work, public


@pytest.mark.nix
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_vega_verify_reads_any_nix_cache_over_http(
    closure: tuple[NixRunner, Closure, Path, str], serve: Callable[[Path], str], variant: str
) -> None:
    nix, built, work, public = closure
    compression, change = VARIANTS[variant]
    cache = work / variant
    nix.run("nix", "copy", "--to", f"file://{cache}?compression={compression}", *built.paths)
    if change is not None:
        _rewrite(cache, change)
    top_narinfo = (cache / f"{Path(built.top).name.split('-')[0]}.narinfo").read_text()
    if variant == "cachix-base16":
        assert "NarHash: sha256:" in top_narinfo
        assert len(top_narinfo.split("NarHash: sha256:")[1].split("\n")[0]) == 64
    if variant == "old-style-bzip2-defaults":
        assert "Compression:" not in top_narinfo
        assert "FileHash:" not in top_narinfo
    url = serve(cache)

    done = run_vega(
        [
            "verify",
            built.top,
            "--url",
            url,
            "--public-key",
            public,
            "--recursive",
            "--allow-signature-only",
            "--json",
        ]
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    reports = [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]
    assert {r["storePath"] for r in reports} == set(built.paths)
    for r in reports:
        assert r["signature"] == {
            "ok": True,
            "keyName": "other-cache-1",
            "scope": "upstream",
            "keySource": "--public-key",
        }
        assert r["nar"]["ok"], r["nar"]
        assert r["exitOk"]

    # The real Nix substitutes from the same cache: both readers accept every variant.
    store = work / f"store-{variant}"
    nix.run(
        "nix", "copy", "--from", url, "--to", str(store),
        "--option", "trusted-public-keys", public, "--option", "substituters", "",
        built.top,
    )  # fmt: skip
    assert (store / built.top.removeprefix("/")).exists()

    # A wrong key fails, with a non-zero exit, even though the cache is readable.
    wrong = public.split(":")[0] + ":" + "A" * 43 + "="
    refused = run_vega(["verify", built.top, "--url", url, "--public-key", wrong, "--allow-signature-only"])
    assert refused.returncode != 0
