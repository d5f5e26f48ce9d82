"""``vega doctor``: the shared check list (also used by ``vega report``), each check a value.

Checks, in order (cli.md §7's six, plus issue 5's ``nix features`` and ``trusted keys``)::

    nix            `nix --version`                         ok <first line> | fail not found
    nix features   experimental-features from Nix's config  ok | warn nix-command / flakes off
    zstd           the in-process codec, then `zstd`        ok | warn not found
    auth           lenient credential load                  ok enrolled as <login> | warn
    control plane  GET <url>/nix-cache-info (5 s), timed    ok <url> (<ms>) | fail unreachable
                   then GET <url>/api/info when it answers (server version, shared key)
    substituter    cli.md §7's tenant-key/substituter rule  ok | warn
    trusted keys   Vega substituter without a Vega key;     ok | warn | fail (wrong shared key)
                   `vega-cache-1` not the expected value
    shared key     the control plane's /api/info sharedKey  ok pinned | warn not pinned (the
                   with its fingerprint (issue 12)          nix.conf line to add) | warn differs
    view           only when nix.conf has a <url>/u/<token>  ok | warn (token rotated or revoked)
                   substituter: GET <view>/nix-cache-info
    version        GitHub's latest release (4 s)            ok | warn newer release

Nix's configuration is read once, the way Nix itself sees it (``nix config show``, or ``nix
show-config`` on Nix < 2.19; when ``nix-command`` is disabled, again with
``--extra-experimental-features nix-command``). Keys are parsed with
:func:`vega.client.cache.parse_trusted_keys` (the verify flow's parser).

Departures, deliberate: ``zstd`` is ok when the in-process ``zstandard`` codec works, since ``vega
push`` compresses in process (ADR 0005) and never runs the ``zstd`` program; the control-plane
detail carries the probe's latency (issue 5); the substituter rule also warns when the configured
``/tenant/…`` substituters match none of the trusted tenant keys.

The flow never raises: every outcome is a :class:`Check`. Effects (process runner, HTTP client,
clocks, the credential path) come in a :class:`DoctorContext`.

Spec: cli.md §7 (checks, texts, JSON, exit code), §1.5 (lenient credential load), §1.6;
protocol.md §1 (published shared key), §2.6 (key-name classes), §3 (``/nix-cache-info``),
§9 (the releases call).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx2

import vega
from vega.client.cache import Runner, parse_trusted_keys, run_process
from vega.client.credentials import format_expiry_date, load_credential_lenient
from vega.client.deadline import new_client
from vega.client.http import Http, HttpLimits, safe_error
from vega.client.settings import DEFAULT_URL, Settings, system_clock_ms
from vega.core.safetext import safe_text
from vega.core.signing import (
    SHARED_KEY_NAME,
    PublicKey,
    format_public_key,
    is_printable_key,
    is_tenant_key_name,
    key_fingerprint,
    parse_public_key,
    safe_key_name_part,
)
from vega.errors import ConfigError, FormatError, NetworkError

__all__ = [
    "PUBLISHED_SHARED_KEY",
    "RELEASES_URL",
    "Check",
    "DoctorContext",
    "DoctorLimits",
    "DoctorReport",
    "Level",
    "NixConfig",
    "compare_versions",
    "open_doctor",
    "read_nix_config",
    "run_checks",
    "substituter_mismatch",
]

Level = Literal["ok", "warn", "fail"]
"""A check's outcome (cli.md §7)."""

PUBLISHED_SHARED_KEY = "vega-cache-1:cPagS1g69NQGwlBCyTTeKav/NhlN8a7ixuj2uLOkHrQ="
"""The default control plane's shared public key (protocol.md §1)."""
RELEASES_URL = "https://api.github.com/repos/Ad-Astra-Computing/vega-agent/releases/latest"
"""Where the latest release is announced (protocol.md §9)."""

_INSTALL_NIX = "https://nixos.org/download"
_FEATURES_FIX = 'add "experimental-features = nix-command flakes" to ~/.config/nix/nix.conf'
_OWNER_KEY = re.compile(r"vega-owner-([0-9]+)-1")


def _clean(text: str, limit: int = 200) -> str:
    """Untrusted text made safe to print (the one sanitiser, :func:`vega.core.safetext.safe_text`)."""
    return safe_text(text, limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One line of the doctor's report."""

    name: str
    """The check's name (cli.md §7: ``nix``, ``zstd``, ``auth``, ``control plane``, ...)."""
    level: Level
    """``ok``, ``warn`` or ``fail``."""
    detail: str
    """What was found."""
    fix: str | None = None
    """What to do about it, when there is something to do."""

    def to_json(self) -> dict[str, object]:
        """``{name, level, detail, fix?}`` (``fix`` only when present)."""
        out: dict[str, object] = {"name": self.name, "level": self.level, "detail": self.detail}
        if self.fix is not None:
            out["fix"] = self.fix
        return out


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Every check, in order."""

    checks: tuple[Check, ...]
    """The checks that ran."""

    @property
    def ok(self) -> bool:
        """No check failed (cli.md §7: exit 1 otherwise)."""
        return all(c.level != "fail" for c in self.checks)

    def to_json(self) -> dict[str, object]:
        """``{"ok": <no fail>, "checks": [...]}``."""
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks]}


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorLimits:
    """Deadlines and body caps of the doctor's requests (cli.md §7, protocol.md §9)."""

    control_plane_timeout_s: float = 5.0
    """Deadline of ``/nix-cache-info`` and ``/api/info``."""
    releases_timeout_s: float = 4.0
    """Deadline of the releases call."""
    max_info_bytes: int = 64 * 1024
    """Cap on ``/nix-cache-info`` and ``/api/info`` bodies."""
    max_release_bytes: int = 2 * 1024 * 1024
    """Cap on the release JSON (it lists every asset)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorContext:
    """The effects the checks use (real ones from :func:`open_doctor`, fakes in tests)."""

    run: Runner
    """Runs ``nix`` and ``zstd``."""
    client: httpx2.Client
    """Sends the control-plane and GitHub requests (wrapped in bounded :class:`Http`)."""
    credential_path: Path
    """The credential file (read leniently, its secret never shown)."""
    now_ms: Callable[[], int]
    """Wall clock, epoch milliseconds (credential expiry)."""
    monotonic: Callable[[], float] = time.monotonic
    """Clock for latencies and body-read deadlines, seconds."""
    zstd_codec: Callable[[], str | None] = lambda: _zstandard_version()
    """The in-process zstd codec's version, or None when it does not work."""
    version: str = vega.__version__
    """This client's version."""
    releases_url: str = RELEASES_URL
    """The releases API URL."""
    limits: DoctorLimits = DoctorLimits()
    """Deadlines and caps."""


def _zstandard_version() -> str | None:
    """The ``zstandard`` module's version when a compress/decompress round trip works."""
    try:
        import zstandard

        sample = b"vega doctor " * 8
        if zstandard.ZstdDecompressor().decompress(zstandard.ZstdCompressor().compress(sample)) != sample:
            return None  # pragma: no cover - a broken codec build
        return str(zstandard.__version__)
    except Exception:  # an import or codec failure is the finding, whatever it is
        return None


@contextmanager
def open_doctor(settings: Settings) -> Iterator[DoctorContext]:
    """The real context: subprocesses, an ``httpx2.Client``, the system clocks."""
    with new_client(headers={"user-agent": "vega-cli"}) as client:
        yield DoctorContext(
            run=run_process,
            client=client,
            credential_path=settings.credential_path,
            now_ms=system_clock_ms,
        )


# -- Nix's configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NixConfig:
    """The settings the checks need, as Nix reports them."""

    settings: Mapping[str, str]
    """Every ``name = value`` line of ``nix config show`` / ``nix show-config``."""
    nix_command: bool
    """Whether Nix answered without ``--extra-experimental-features nix-command``."""

    def words(self, name: str) -> tuple[str, ...]:
        """A setting's value, whitespace-split (empty when absent)."""
        return tuple(self.settings.get(name, "").split())


def _parse_settings(stdout: bytes) -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        name, eq, value = line.partition(" = ")
        if not eq:
            name, eq, value = line.partition("=")
        if eq and name.strip():
            settings[name.strip()] = value.strip()
    return settings


def read_nix_config(run: Runner) -> NixConfig | None:
    """Nix's effective configuration, or None when no form of the command works.

    Tries ``nix config show`` (Nix >= 2.19) then ``nix show-config``; if both fail, the same
    again with ``--extra-experimental-features nix-command`` (then ``nix_command`` is False).
    """
    for extra, enabled in (((), True), (("--extra-experimental-features", "nix-command"), False)):
        for sub in (("config", "show"), ("show-config",)):
            done = run(["nix", *extra, *sub])
            if done.returncode == 0:
                return NixConfig(settings=_parse_settings(done.stdout), nix_command=enabled)
    return None


# -- the checks ----------------------------------------------------------------------------------


def _check_nix(ctx: DoctorContext) -> tuple[Check, bool]:
    done = ctx.run(["nix", "--version"])
    if done.returncode == 127:
        return Check(name="nix", level="fail", detail="not found", fix=_INSTALL_NIX), False
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    if done.returncode != 0 or not lines:
        errors = done.stderr.decode("utf-8", "replace").strip().splitlines()
        tail = _clean(errors[-1].strip()) if errors else ""
        detail = f"`nix --version` exited {done.returncode}" + (f": {tail}" if tail else "")
        return Check(name="nix", level="fail", detail=detail, fix=_INSTALL_NIX), False
    return Check(name="nix", level="ok", detail=_clean(lines[0].strip())), True


def _check_features(config: NixConfig) -> Check:
    features = set(config.words("experimental-features"))
    # nix-command is on when Nix answered without the flag (some builds enable it without listing it)
    missing = [] if config.nix_command else ["nix-command"]
    if "flakes" not in features:
        missing.append("flakes")
    if not missing:
        return Check(name="nix features", level="ok", detail="nix-command flakes")
    needs = {
        "nix-command": "vega runs `nix build`, `nix path-info` and `nix config`",
        "flakes": "`vega push .#pkg` takes flake installables",
    }
    detail = "; ".join(f"{f} is not enabled ({needs[f]})" for f in missing)
    return Check(name="nix features", level="warn", detail=detail, fix=_FEATURES_FIX)


def _check_zstd(ctx: DoctorContext) -> Check:
    codec = ctx.zstd_codec()
    program = ctx.run(["zstd", "--version"]).returncode == 0
    if codec is not None:
        detail = "available" if program else f"available (in process, zstandard {codec})"
        return Check(name="zstd", level="ok", detail=detail)
    if program:
        return Check(
            name="zstd",
            level="warn",
            detail="the zstd program is installed but the in-process codec (zstandard) is not",
            fix="reinstall vega with its dependencies (the zstandard package)",
        )
    return Check(
        name="zstd",
        level="warn",
        detail="not found (needed by `vega push`)",
        fix="reinstall vega with its dependencies (the zstandard package); "
        "the zstd program alone does not help, vega compresses in process",
    )


def _check_auth(ctx: DoctorContext) -> tuple[Check, str]:
    cred = load_credential_lenient(ctx.credential_path)
    if cred is None:
        try:
            present = ctx.credential_path.exists()
        except OSError:
            present = False
        detail = f"malformed credential at {ctx.credential_path}" if present else "not enrolled"
        return Check(name="auth", level="warn", detail=detail, fix="vega login"), DEFAULT_URL
    if cred.is_expired(ctx.now_ms()):
        detail = f"credential expired {format_expiry_date(cred.expires_at_ms)}"
        return Check(name="auth", level="warn", detail=detail, fix="vega login"), cred.url
    who = _clean(cred.login, 100) or f"owner:{_clean(cred.user_id, 40)}"
    return Check(name="auth", level="ok", detail=f"enrolled as {who}"), cred.url


def _confirm_auth(ctx: DoctorContext, base: str, auth: Check) -> Check:
    """Ask the control plane about the credential: a tampered or revoked one is a failure."""
    from vega.client.account import check_credential

    cred = load_credential_lenient(ctx.credential_path)
    if cred is None:  # pragma: no cover - _check_auth just read it
        return auth
    http = Http(
        ctx.client,
        HttpLimits(
            timeout_s=ctx.limits.control_plane_timeout_s, tries=1, max_body_bytes=ctx.limits.max_info_bytes
        ),
        sleep=lambda _s: None,
        monotonic=ctx.monotonic,
    )
    verdict = check_credential(http, base, cred)
    if verdict == "invalid":
        return Check(
            name="auth",
            level="fail",
            detail=f"{base} refused the credential (tampered, revoked, or issued by another server)",
            fix=f"vega login --url {base}",
        )
    if verdict == "not checked":
        return Check(name="auth", level="ok", detail=f"{auth.detail} (not checked with the control plane)")
    return auth


@dataclass(frozen=True, slots=True)
class _ServerInfo:
    version: str | None
    shared_key: PublicKey | None


def _server_info(http: Http, base: str) -> _ServerInfo:
    """``/api/info``'s version and shared key, leniently (older servers have no such endpoint)."""
    try:
        resp = http.get(f"{base}/api/info", {"accept": "application/json"})
        obj = resp.json() if resp.ok else None
    except (NetworkError, ConfigError, FormatError):
        obj = None
    if not isinstance(obj, dict):
        return _ServerInfo(None, None)
    version = obj.get("version")
    shared: PublicKey | None = None
    text = obj.get("sharedKey")
    if isinstance(text, str):
        try:
            key = parse_public_key(text)
        except FormatError:
            key = None
        shared = key if key is not None and key.name == SHARED_KEY_NAME else None
    return _ServerInfo(_clean(version, 40) if isinstance(version, str) and version else None, shared)


def _network_reason(message: str) -> str:
    if "timed out" in message or "not read within" in message:
        return "timed out"
    if "over the" in message:
        return "answer too large"
    return "no connection"


def _check_control_plane(ctx: DoctorContext, base: str) -> tuple[Check, _ServerInfo]:
    http = Http(
        ctx.client,
        HttpLimits(
            timeout_s=ctx.limits.control_plane_timeout_s, tries=1, max_body_bytes=ctx.limits.max_info_bytes
        ),
        sleep=lambda _s: None,
        monotonic=ctx.monotonic,
    )
    start = ctx.monotonic()
    try:
        resp = http.get(f"{base}/nix-cache-info")
        reason = None if resp.ok else f"HTTP {safe_error(resp.status, resp.body)}"
    except (NetworkError, ConfigError) as e:
        reason = _network_reason(e.message)
    elapsed_ms = max(0, round((ctx.monotonic() - start) * 1000))
    none = _ServerInfo(None, None)
    if reason is not None:
        fix = "check the network, or `vega login --url <control plane>` to use another control plane"
        return Check(
            name="control plane", level="fail", detail=f"unreachable: {base} ({reason})", fix=fix
        ), none
    info = _server_info(http, base)
    server = f"; server {info.version}" if info.version else ""
    return Check(name="control plane", level="ok", detail=f"{base} ({elapsed_ms} ms{server})"), info


def _substituters(config: NixConfig) -> tuple[str, ...]:
    """Substituter URLs with one trailing ``/`` and any ``?query`` removed."""
    return tuple(s.partition("?")[0].removesuffix("/") for s in config.words("substituters"))


def _tenant_key_name_for(substituter: str, base: str) -> str | None:
    """The key name a ``<base>/tenant/<tenant>`` substituter's paths are signed with (§2.6)."""
    prefix = f"{base}/tenant/"
    if not substituter.startswith(prefix):
        return None
    tenant = substituter.removeprefix(prefix)
    return f"vega-{safe_key_name_part(tenant)}-1".lower() if tenant else None


def substituter_mismatch(key_names: Sequence[str], substituters: Sequence[str], base: str) -> str | None:
    """cli.md §7's mismatch text for trusted tenant keys vs substituters, or None when they agree.

    ``substituters`` are normalised (one trailing ``/`` removed). Beyond the spec's rule, tenant
    keys that none of the configured ``<base>/tenant/…`` substituters serve are reported too.
    """
    base = base.removesuffix("/")
    tenant = [n for n in key_names if is_tenant_key_name(n)]
    if not tenant:
        return None
    names = ", ".join(tenant)
    if any(s.startswith(f"{base}/u/") for s in substituters):
        return None
    served = {n for n in (_tenant_key_name_for(s, base) for s in substituters) if n}
    if served:
        unserved = [n for n in tenant if n.lower() not in served]
        if not unserved:
            return None
        return (
            f"{', '.join(unserved)} trusted but no matching {base}/tenant/ substituter is configured "
            f"(configured: {', '.join(sorted(s for s in substituters if s.startswith(base + '/tenant/')))})"
        )
    if base in substituters:
        return (
            f"{names} trusted but the substituter is the bare {base}, which serves only the shared "
            f"tier; tenant builds are under {base}/tenant/<owner>/<repo>"
        )
    return f"{names} trusted but no {base}/tenant/ substituter is configured"


def _substituter_fix(key_names: Sequence[str], base: str) -> str:
    for name in key_names:
        m = _OWNER_KEY.fullmatch(name)
        if m:
            return f'add "extra-substituters = {base}/tenant/owner:{m.group(1)}" to nix.conf'
    return (
        f'add the "extra-substituters = {base}/tenant/<owner>/<repo>" line `vega push` '
        "and the CI agent print to nix.conf"
    )


def _check_substituter(keys: Mapping[str, PublicKey], subs: Sequence[str], base: str) -> Check:
    mismatch = substituter_mismatch(list(keys), subs, base)
    if mismatch is not None:
        return Check(
            name="substituter",
            level="warn",
            detail=mismatch,
            fix=_substituter_fix([n for n in keys if is_tenant_key_name(n)], base),
        )
    if any(is_tenant_key_name(n) for n in keys):
        return Check(name="substituter", level="ok", detail="tenant keys and substituters agree")
    return Check(name="substituter", level="ok", detail="no tenant keys in the nix config")


def _check_trusted_keys(
    keys: Mapping[str, PublicKey], subs: Sequence[str], base: str, info: _ServerInfo
) -> Check:
    expected: PublicKey | None
    if base == DEFAULT_URL:
        expected, source = parse_public_key(PUBLISHED_SHARED_KEY), "the published key"
    else:
        expected, source = info.shared_key, "the control plane's /api/info"
    configured = keys.get(SHARED_KEY_NAME)
    if expected is not None and configured is not None and configured != expected:
        wanted = format_public_key(expected)
        return Check(
            name="trusted keys",
            level="fail",
            detail=f"{SHARED_KEY_NAME} is trusted with a value that differs from {source}; "
            f"Nix will refuse every shared-tier path from {base}",
            fix=f'replace it with "{wanted}" in trusted-public-keys',
        )
    vega_subs = [s for s in subs if s == base or s.startswith(f"{base}/")]
    vega_keys = sorted(n for n in keys if n.startswith("vega-"))
    if vega_subs and not vega_keys:
        value = format_public_key(expected) if expected is not None else ""
        return Check(
            name="trusted keys",
            level="warn",
            detail=f"{', '.join(vega_subs)} is a substituter but no vega-… key is trusted; "
            "Nix will refuse its signed paths",
            fix=(
                f'add "extra-trusted-public-keys = {value}" to nix.conf'
                if is_printable_key(value)
                else "add the control plane's vega-cache-1 key to trusted-public-keys"
            ),
        )
    if configured is not None and expected is not None:
        return Check(name="trusted keys", level="ok", detail=f"{SHARED_KEY_NAME} matches {source}")
    if vega_keys:
        return Check(name="trusted keys", level="ok", detail=f"trusted: {', '.join(vega_keys)}")
    return Check(name="trusted keys", level="ok", detail="no Vega substituter or key configured")


def _check_shared_key(keys: Mapping[str, PublicKey] | None, base: str, info: _ServerInfo) -> Check | None:
    """The shared key the control plane serves, its fingerprint, and how to pin it (never pinned here)."""
    key = info.shared_key
    if key is None:
        return None
    served = f"{base} signs its shared tier with {key.name} {key_fingerprint(key)}"
    line = f"extra-trusted-public-keys = {format_public_key(key)}"
    pinned = None if keys is None else keys.get(SHARED_KEY_NAME)
    if pinned == key:
        return Check(name="shared key", level="ok", detail=f"{served}, pinned in your nix config")
    fix = (
        f"compare the fingerprint with the server's operator (not with this server's own answer), "
        f'then add "{line}" to ~/.config/nix/nix.conf'
    )
    if pinned is not None:
        return Check(
            name="shared key",
            level="warn",
            detail=f"{served}; your nix config pins {SHARED_KEY_NAME} {key_fingerprint(pinned)} instead",
            fix=fix,
        )
    where = "not pinned" if keys is not None else "cannot tell whether it is pinned (nix config unreadable)"
    return Check(
        name="shared key",
        level="warn",
        detail=f"{served}; {where}, so vega verify and Nix do not trust it yet",
        fix=fix,
    )


def _check_view(ctx: DoctorContext, base: str, views: Sequence[str]) -> Check:
    """Whether the personal view(s) nix.conf points at still answer (issue 8); never prints a token."""
    http = Http(
        ctx.client,
        HttpLimits(
            timeout_s=ctx.limits.control_plane_timeout_s, tries=1, max_body_bytes=ctx.limits.max_info_bytes
        ),
        sleep=lambda _s: None,
        monotonic=ctx.monotonic,
    )
    shown = f"{base}/u/<token>"
    dead = 0
    for view in views:
        try:
            resp = http.get(f"{view}/nix-cache-info")
        except (NetworkError, ConfigError) as e:
            return Check(
                name="view", level="warn", detail=f"could not check {shown}: {_network_reason(e.message)}"
            )
        if resp.status == 404:
            dead += 1
        elif not resp.ok:
            return Check(name="view", level="warn", detail=f"could not check {shown} (HTTP {resp.status})")
    if dead:
        return Check(
            name="view",
            level="warn",
            detail=f"nix.conf points at a personal view ({shown}) whose token no longer works "
            "(rotated or revoked); Nix gets nothing from it",
            fix="vega view --write (puts your current view into nix.conf)",
        )
    return Check(name="view", level="ok", detail=f"your personal view at {shown} answers")


def _version_parts(text: str) -> list[int]:
    parts = []
    for part in text.strip().removeprefix("v").split("."):
        parts.append(int(part) if part.isdigit() and part.isascii() else 0)
    return parts


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, equal to or newer than ``b`` (cli.md §7's rule).

    A leading ``v`` is stripped; each ``.``-part is an integer (non-numeric counts as 0); missing
    parts are 0, so ``1.0 == 1.0.0`` and ``0.10.0 > 0.9.0``.
    """
    pa, pb = _version_parts(a), _version_parts(b)
    width = max(len(pa), len(pb))
    pa += [0] * (width - len(pa))
    pb += [0] * (width - len(pb))
    return (pa > pb) - (pa < pb)


def _check_version(ctx: DoctorContext) -> Check:
    ver = ctx.version
    http = Http(
        ctx.client,
        HttpLimits(
            timeout_s=ctx.limits.releases_timeout_s, tries=1, max_body_bytes=ctx.limits.max_release_bytes
        ),
        sleep=lambda _s: None,
        monotonic=ctx.monotonic,
    )
    try:
        resp = http.get(ctx.releases_url, {"accept": "application/vnd.github+json"})
    except (NetworkError, ConfigError):
        return Check(name="version", level="ok", detail=f"{ver} (offline)")
    if resp.status == 404:
        return Check(name="version", level="ok", detail=f"{ver} (no published releases yet)")
    if not resp.ok:
        return Check(name="version", level="ok", detail=f"{ver} (check unavailable)")
    try:
        obj = resp.json()
    except FormatError:
        obj = None
    tag = obj.get("tag_name") if isinstance(obj, dict) else None
    if isinstance(tag, str) and tag and compare_versions(tag, ver) > 0:
        return Check(
            name="version",
            level="warn",
            detail=f"{ver} (latest {_clean(tag, 40)})",
            fix="nix flake update vega-agent (flake input), "
            "or nix run --refresh github:Ad-Astra-Computing/vega-agent#vega",
        )
    return Check(name="version", level="ok", detail=f"{ver} (current)")


def run_checks(ctx: DoctorContext) -> DoctorReport:
    """Run every check in order and return the report (never raises for a finding)."""
    checks: list[Check] = []
    nix_check, nix_ok = _check_nix(ctx)
    checks.append(nix_check)
    config = read_nix_config(ctx.run) if nix_ok else None
    if config is not None:
        checks.append(_check_features(config))
    checks.append(_check_zstd(ctx))
    auth, url = _check_auth(ctx)
    base = url.removesuffix("/")
    plane, info = _check_control_plane(ctx, base)
    if auth.level == "ok" and plane.level == "ok":
        auth = _confirm_auth(ctx, base, auth)
    checks.extend((auth, plane))
    keys = None
    if config is not None:
        keys = parse_trusted_keys(config.words("trusted-public-keys"))
        subs = _substituters(config)
        checks.append(_check_substituter(keys, subs, base))
        checks.append(_check_trusted_keys(keys, subs, base, info))
        views = [sub for sub in subs if sub.startswith(f"{base}/u/")]
        if views and plane.level == "ok":
            checks.append(_check_view(ctx, base, views))
    shared = _check_shared_key(keys, base, info)
    if shared is not None:
        checks.append(shared)
    checks.append(_check_version(ctx))
    return DoctorReport(tuple(checks))
