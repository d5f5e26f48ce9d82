"""A binary cache, read as ``vega verify`` reads it: narinfo, NAR bytes, tenant status and key.

Every URL is relative to one base (the control-plane root or a tenant base). The NAR is streamed,
decompressed with the core's bounded codecs and hashed on the fly, never written to disk. Also here:
the user's trusted public keys, gathered only from sources the user already controls (``nix`` and
``nix.conf``), never from the cache.

Edge: the cache over HTTP (through :class:`vega.client.http.Http`), and ``nix`` through an injected
process runner.

Spec: cli.md §1.6 (trusted keys), §10.2 (narinfo, tenant discovery), §10.3 (tenant key), §10.4
step 6 (NAR bytes); protocol.md §3, §6.1, §6.2.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from vega.client.http import Http, Response
from vega.core import nixbase32
from vega.core.compression import Decompressor, parse_compression
from vega.core.hashes import format_nix_hash
from vega.core.narinfo import NarInfo
from vega.core.signing import PublicKey, parse_public_key
from vega.errors import FormatError, NetworkError, VegaError

__all__ = [
    "MAX_NAR_BYTES",
    "BinaryCache",
    "NarCheck",
    "Runner",
    "is_tenant_scope",
    "load_trusted_keys",
    "nix_conf_files",
    "parse_trusted_keys",
    "run_process",
    "select_trusted_key",
    "signature_names",
]

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[bytes]"]
"""Runs argv and returns its exit status and output (a fake in tests)."""

MAX_NAR_BYTES = 1 << 40
"""Absolute cap on a downloaded (compressed) NAR; see :meth:`BinaryCache.check_nar`."""

_CONF_LINE = re.compile(r"^\s*(extra-)?trusted-public-keys\s*=\s*(.+)$")
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9][A-Za-z0-9._-]{0,99}|owner:[0-9]+")
_TENANT_SCOPE = re.compile(
    r"/tenant/[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9][A-Za-z0-9._-]{0,99}|/tenant/owner:[0-9]+"
)
_MAX_TENANTS = 50
_URL_SAFE = "/:@!$&'()*+,;=-._~"


def run_process(argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    """The real runner: run ``argv`` with a 30 s limit; a missing program exits 127."""
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=30, check=False)
    except (FileNotFoundError, PermissionError) as e:
        return subprocess.CompletedProcess(list(argv), 127, b"", str(e).encode())
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(argv), 124, b"", b"timed out")


# -- trusted keys (cli.md §1.6) ----------------------------------------------------------------------


def nix_conf_files(home: Path) -> tuple[Path, ...]:
    """The nix.conf files read for trusted keys, in order."""
    return (Path("/etc/nix/nix.conf"), home / ".config" / "nix" / "nix.conf")


def parse_trusted_keys(
    tokens: Iterable[str], into: dict[str, PublicKey] | None = None
) -> dict[str, PublicKey]:
    """Add every token that parses as a ``name:base64`` 32-byte public key (later names overwrite)."""
    keys = {} if into is None else into
    for token in tokens:
        if ":" not in token:
            continue
        try:
            key = parse_public_key(token)
        except FormatError:
            continue
        keys[key.name] = key
    return keys


def _nix_config_tokens(run: Runner) -> list[str]:
    done = run(["nix", "config", "show", "trusted-public-keys"])
    if done.returncode == 0:
        return done.stdout.decode("utf-8", "replace").split()
    # Nix < 2.19 has no `nix config`; `nix show-config` prints the same setting.
    done = run(["nix", "show-config"])
    if done.returncode != 0:
        return []
    tokens: list[str] = []
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        name, eq, value = line.partition("=")
        if eq and name.strip() == "trusted-public-keys":
            tokens.extend(value.split())
    return tokens


def load_trusted_keys(run: Runner, conf_files: Sequence[Path]) -> dict[str, PublicKey]:
    """Keys the user trusts: ``nix config show trusted-public-keys``, then the nix.conf files.

    Unreadable files and a missing or failing ``nix`` are skipped silently (the caller reports "no
    trusted public key" if nothing matches).
    """
    keys = parse_trusted_keys(_nix_config_tokens(run))
    for path in conf_files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            m = _CONF_LINE.match(line)
            if m:
                parse_trusted_keys(m.group(2).split(), keys)
    return keys


def select_trusted_key(sigs: Sequence[str], trusted: Mapping[str, PublicKey]) -> PublicKey | None:
    """The trusted key of the first ``Sig`` (in line order) whose key name the user trusts."""
    for name in signature_names(sigs):
        if name in trusted:
            return trusted[name]
    return None


def signature_names(sigs: Sequence[str]) -> list[str]:
    """Key names of the ``Sig`` values: text before the first ``:``, trimmed, non-empty, in order."""
    return [n for n in (s.partition(":")[0].strip() for s in sigs) if n]


def is_tenant_scope(base_url: str) -> bool:
    """Whether the base URL's path is a tenant base (cli.md §10.2)."""
    return _TENANT_SCOPE.fullmatch(urlsplit(base_url).path.rstrip("/")) is not None


# -- the cache --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NarCheck:
    """The outcome of re-hashing a NAR (cli.md §10.4 step 6)."""

    ok: bool
    """The uncompressed bytes hash to the narinfo's NarHash (and NarSize matches)."""
    checked: bool
    """The bytes were fetched and hashed at all (False: unsupported compression or fetch failed)."""
    detail: str
    """The hash on success; otherwise what went wrong."""

    def to_json(self) -> dict[str, object]:
        """The ``nar`` object of ``vega verify --json``."""
        return {"ok": self.ok, "checked": self.checked, "detail": self.detail}


class BinaryCache:
    """One cache base URL (already validated and normalised, no trailing ``/``)."""

    def __init__(self, http: Http, base_url: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")

    def url(self, relative: str) -> str:
        """``<base>/<relative>``; the narinfo's URL is taken as relative to the base (protocol.md §3)."""
        return f"{self.base_url}/{relative.lstrip('/')}"

    def narinfo(self, hash_part: str) -> Response:
        """``GET <base>/<hash>.narinfo``, returned whatever its status (the flow decides)."""
        return self.http.get(self.url(f"{hash_part}.narinfo"))

    def tenants(self, hash_part: str) -> tuple[str, ...]:
        """Tenants caching ``hash_part`` per ``/api/status/<hash>``; empty on any failure (§10.2)."""
        try:
            resp = self.http.get(self.url(f"api/status/{hash_part}"))
            obj = resp.json() if resp.ok else None
        except VegaError:
            return ()
        found = obj.get("tenants") if isinstance(obj, dict) else None
        if not isinstance(found, list):
            return ()
        good = [t for t in found if isinstance(t, str) and _TENANT_ID.fullmatch(t)]
        return tuple(dict.fromkeys(good))[:_MAX_TENANTS]

    def tenant_key(self) -> str | None:
        """The ``publicKey`` published at ``<base>/key``, or None (tenant bases only; §6.2)."""
        try:
            resp = self.http.get(self.url("key"))
            obj = resp.json() if resp.ok else None
        except VegaError:
            return None
        key = obj.get("publicKey") if isinstance(obj, dict) else None
        return key if isinstance(key, str) else None

    def check_nar(self, info: NarInfo, max_bytes: int | None = None) -> NarCheck:
        """Fetch ``info.url``, decompress it as ``info.compression`` names, and compare with NarHash.

        The decompressed stream is capped at the signed NarSize, so a bomb or an over-long NAR
        stops early; the download itself is capped at ``max_bytes`` (default: NarSize plus the
        worst expansion of any codec, never the cache's unsigned FileSize). Never raises for a
        failed check; a fetch or stream problem is ``checked=False``.
        """
        if max_bytes is None:
            max_bytes = min(MAX_NAR_BYTES, info.nar_size + info.nar_size // 16 + (1 << 20))
        try:
            codec = Decompressor(parse_compression(info.compression), max_output=info.nar_size)
        except FormatError:
            return NarCheck(
                ok=False,
                checked=False,
                detail=f"unsupported compression '{info.compression[:40]}' for local check",
            )
        digest = hashlib.sha256()
        try:
            with self.http.get_stream(self.url(quote(info.url, safe=_URL_SAFE)), max_bytes) as resp:
                if not resp.ok:
                    return NarCheck(ok=False, checked=False, detail=f"NAR fetch failed (HTTP {resp.status})")
                for chunk in resp.iter_bytes():
                    codec.feed_to(chunk, digest.update)
                codec.finish()
        except (NetworkError, FormatError) as e:
            if codec.total > info.nar_size:
                return NarCheck(
                    ok=False, checked=True, detail=f"content exceeds the signed NarSize {info.nar_size}"
                )
            return NarCheck(ok=False, checked=False, detail=f"NAR stream error: {e.message}")
        actual = "sha256:" + nixbase32.encode(digest.digest())
        expected = format_nix_hash(info.nar_hash)
        if actual != expected:
            return NarCheck(ok=False, checked=True, detail=f"signed {expected}, content {actual}")
        if codec.total != info.nar_size:
            return NarCheck(
                ok=False, checked=True, detail=f"signed NarSize {info.nar_size}, content {codec.total} bytes"
            )
        return NarCheck(ok=True, checked=True, detail=actual)
