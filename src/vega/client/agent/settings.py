"""The agents' environment inputs, parsed as the specs say.

Numbers follow JavaScript ``Number()`` (:func:`vega.client.upload.js_number`); "seconds" values
use ``envSeconds`` (finite and > 0, else the default); flags are on only for exactly ``"true"``.
The control-plane URL must be https (loopback aside): checked before any token is minted.

The OIDC request variables are not read here: :func:`take_oidc_request` removes them from the
process environment first (agent.md §11).

Spec: agent.md §3 (attest), §10.1 (reproduce); changes-0.19.md (``VEGA_EXCLUDE``,
``VEGA_MAX_NAR_BYTES``); docs/agents.md (``VEGA_NIX_STORE``, ``VEGA_GITHUB_MIRRORS``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Final

from vega.client.agent.flakeref import Mirrors
from vega.client.http import require_safe_url
from vega.client.nix import build_timeout_s
from vega.client.upload import UploadLimits, env_seconds, js_number
from vega.core.api import is_safe_attr, is_safe_dir
from vega.errors import ConfigError

__all__ = [
    "OIDC_REQUEST_VARS",
    "AttestSettings",
    "OidcRequest",
    "ReproduceSettings",
    "Target",
    "attest_settings",
    "check_target",
    "child_environ",
    "parse_exclude",
    "parse_max_nar_bytes",
    "reproduce_settings",
    "take_oidc_request",
    "upload_concurrency",
]

OIDC_REQUEST_VARS: Final = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
DEFAULT_UPSTREAM: Final = "https://cache.nixos.org"
_SIZE: Final = re.compile(r"^\s*([0-9]+)\s*(?:([KMGT])(?:i?B)?|B)?\s*$", re.IGNORECASE)
_UNITS: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True, slots=True, repr=False)
class OidcRequest:
    """The Actions token service, held in memory only (never in any environment)."""

    url: str | None
    token: str | None

    def __repr__(self) -> str:
        return "OidcRequest(<redacted>)"


def take_oidc_request(environ: MutableMapping[str, str]) -> OidcRequest:
    """Read ``ACTIONS_ID_TOKEN_REQUEST_URL``/``_TOKEN`` and delete both from ``environ`` (§11)."""
    url = environ.pop(OIDC_REQUEST_VARS[0], None)
    token = environ.pop(OIDC_REQUEST_VARS[1], None)
    return OidcRequest(url or None, token or None)


def child_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a child process gets: ``environ`` (default ``os.environ``) minus the OIDC variables."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k not in OIDC_REQUEST_VARS}


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name) == "true"


def _words(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(environ.get(name, "").split())


def _control_plane(environ: Mapping[str, str]) -> tuple[str, str]:
    raw = environ.get("VEGA_URL", "")
    if not raw:
        raise ConfigError(
            "VEGA_URL is required (the control-plane URL)",
            next_steps=["set the action's control-plane input, or VEGA_URL in the job's env"],
        )
    try:
        url = require_safe_url(raw)
    except ConfigError as e:
        raise ConfigError(
            f"VEGA_URL: {e.message}", next_steps=["use an https:// control-plane URL (http only on loopback)"]
        ) from None
    return url, environ.get("VEGA_AUDIENCE") or raw


def upload_concurrency(value: str | None, paths: int) -> int:
    """``Number(v) || 4``, floored, at least 1 and at most ``paths`` (agent.md §3, §7.7)."""
    n = js_number(value) if value is not None else 0.0
    if math.isnan(n) or n == 0:
        n = 4.0
    workers = max(1, math.floor(n)) if math.isfinite(n) else (1 if n < 0 else max(1, paths))
    return min(workers, max(1, paths))


def parse_exclude(value: str | None) -> tuple[str, ...]:
    """``VEGA_EXCLUDE``: comma-separated globs matched against a store path's name.

    Raises:
        ConfigError: a pattern with a ``/`` (names have none, so it could never match).
    """
    out = []
    for piece in (value or "").split(","):
        pattern = piece.strip()
        if not pattern:
            continue
        if "/" in pattern:
            raise ConfigError(
                f"VEGA_EXCLUDE: {pattern!r} contains '/': patterns match a store path's name"
                " (the part after <hash>-), e.g. *.erofs"
            )
        out.append(pattern)
    return tuple(out)


def parse_max_nar_bytes(value: str | None) -> int | None:
    """``VEGA_MAX_NAR_BYTES``: bytes, or a binary suffix (``25G``); unset, empty or ``0``: no limit.

    Raises:
        ConfigError: anything else (a malformed value never means "no limit").
    """
    if value is None or not value.strip():
        return None
    m = _SIZE.fullmatch(value)
    if m is None:
        raise ConfigError(
            f"VEGA_MAX_NAR_BYTES: expected a number of bytes such as 1073741824 or 1G, got {value[:40]!r}"
        )
    n = int(m.group(1)) * _UNITS[(m.group(2) or "").upper()]
    return n or None


def _stall_warn(value: str | None) -> float:
    n = js_number(value) if value is not None else 0.0
    return 300.0 if math.isnan(n) or n == 0 else n


def _nix_store(environ: Mapping[str, str]) -> str | None:
    store = environ.get("VEGA_NIX_STORE", "")
    if not store:
        return None
    if not store.startswith("/") or store.rstrip("/") == "":
        raise ConfigError(
            "VEGA_NIX_STORE: expected the absolute directory of a chroot store (nix --store DIR),"
            f" got {store[:80]!r}"
        )
    return store.rstrip("/")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Common:
    url: str
    """The control plane, normalised."""
    audience: str
    """OIDC audience."""
    limits: UploadLimits
    """HTTP deadlines and PUT stall window."""
    build_timeout_s: float | None
    """Per-build kill timer."""
    nar_stall_s: float
    """``VEGA_NAR_STALL_SECONDS``."""
    nix_store: str | None
    """``VEGA_NIX_STORE``: a chroot store directory for every nix call (None: the system store)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestSettings(_Common):
    """``vega-attest``'s inputs (agent.md §3, changes-0.19.md)."""

    installable: str
    workspace: str
    repository: str | None
    skip_upstream: bool
    upstream: str
    reuse_cache: bool
    extra_substituters: tuple[str, ...]
    extra_trusted_public_keys: tuple[str, ...]
    upload_concurrency: str | None
    """Raw ``VEGA_UPLOAD_CONCURRENCY`` (clamped per build to its path count)."""
    stall_warn_s: float
    exclude: tuple[str, ...]
    max_nar_bytes: int | None


def _common(environ: Mapping[str, str]) -> dict[str, object]:
    url, audience = _control_plane(environ)
    return {
        "url": url,
        "audience": audience,
        "limits": UploadLimits.from_environ(environ),
        "build_timeout_s": build_timeout_s(environ),
        "nar_stall_s": env_seconds(environ.get("VEGA_NAR_STALL_SECONDS"), 600.0),
        "nix_store": _nix_store(environ),
    }


def attest_settings(argv_installable: str | None, environ: Mapping[str, str], cwd: str) -> AttestSettings:
    """Parse ``vega-attest``'s argv[1] and environment.

    Raises:
        ConfigError: a flag-like installable, no or a plaintext ``VEGA_URL``, a malformed
            ``VEGA_MAX_NAR_BYTES``, ``VEGA_EXCLUDE`` or ``VEGA_NIX_STORE``.
    """
    installable = argv_installable if argv_installable is not None else ".#"
    if installable.startswith("-"):
        raise ConfigError(f"refusing installable that looks like a flag: {installable}")
    common = _common(environ)
    return AttestSettings(
        installable=installable,
        workspace=environ.get("GITHUB_WORKSPACE") or cwd,
        repository=environ.get("GITHUB_REPOSITORY") or None,
        skip_upstream=_flag(environ, "VEGA_SKIP_UPSTREAM"),
        upstream=environ.get("VEGA_UPSTREAM") or DEFAULT_UPSTREAM,
        reuse_cache=_flag(environ, "VEGA_REUSE_CACHE"),
        extra_substituters=_words(environ, "VEGA_EXTRA_SUBSTITUTERS"),
        extra_trusted_public_keys=_words(environ, "VEGA_EXTRA_TRUSTED_PUBLIC_KEYS"),
        upload_concurrency=environ.get("VEGA_UPLOAD_CONCURRENCY"),
        stall_warn_s=_stall_warn(environ.get("VEGA_STALL_WARN_SECONDS")),
        exclude=parse_exclude(environ.get("VEGA_EXCLUDE")),
        max_nar_bytes=parse_max_nar_bytes(environ.get("VEGA_MAX_NAR_BYTES")),
        **common,  # type: ignore[arg-type]
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What one reproduction rebuilds, and what it expects."""

    flake_ref: str
    attr: str
    rev: str
    dir: str | None = None
    expect_store_path: str | None = None
    expect_nar_hash: str | None = None
    hash: str | None = None
    """Candidate hash for failure reports (None: failures are not reported)."""


def check_target(target: Target) -> Target:
    """The reproducer's input validation (agent.md §10.1).

    Raises:
        ConfigError: an unsafe attr or dir, or a missing flake ref or rev.
    """
    if not is_safe_attr(target.attr):
        raise ConfigError(f"refusing unsafe flake attr: {json.dumps(target.attr)}")
    if not target.flake_ref:
        raise ConfigError("VEGA_FLAKE_REF is required")
    if not target.rev:
        raise ConfigError("VEGA_REV is required")
    if target.dir and not is_safe_dir(target.dir):
        raise ConfigError(f"refusing unsafe subflake dir: {json.dumps(target.dir)}")
    return target


@dataclass(frozen=True, slots=True, kw_only=True)
class ReproduceSettings(_Common):
    """``vega-reproduce``'s inputs (agent.md §10.1 and docs/agents.md)."""

    target: Target | None
    """The single target (None in queue mode)."""
    mirrors: Mirrors


def reproduce_settings(environ: Mapping[str, str], *, from_queue: bool) -> ReproduceSettings:
    """Parse ``vega-reproduce``'s environment.

    Raises:
        ConfigError: a missing or unsafe input (agent.md §10.1), a plaintext ``VEGA_URL``.
    """
    common = _common(environ)
    target = None
    if not from_queue:
        target = check_target(
            Target(
                flake_ref=environ.get("VEGA_FLAKE_REF", ""),
                attr=environ.get("VEGA_ATTR", ""),
                rev=environ.get("VEGA_REV", ""),
                dir=environ.get("VEGA_DIR") or None,
                expect_store_path=environ.get("VEGA_EXPECT_STORE_PATH") or None,
                expect_nar_hash=environ.get("VEGA_EXPECT_NARHASH") or None,
                hash=(environ.get("VEGA_HASH") or "").strip() or None,
            )
        )
    return ReproduceSettings(
        target=target,
        mirrors=Mirrors.parse(environ.get("VEGA_GITHUB_MIRRORS")),
        **common,  # type: ignore[arg-type]
    )
