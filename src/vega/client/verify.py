"""``vega verify``: is this build what the cache signed, promoted in the public log, and unrevoked?

For one target the checks run in this order, and every one is reported (questions return
reports; a failed check never raises):

1. ``store-path``  the narinfo's StorePath has the requested hash;
2. ``signature``   some ``Sig`` verifies under a key the user already trusts: ``--public-key``,
                   else the keys of their Nix configuration (cli.md §1.6). A key the cache
                   serves (a tenant base's ``/key``, the control plane's ``/api/info``
                   ``sharedKey``) is used only with ``trust_fetched_key`` (``--trust-fetched-key``)
                   and is reported as "fetched, not pinned" (issue 12; a departure from
                   cli.md §10.3, which used the tenant key unasked);
3. ``checkpoint``  the log's tree head is signed by that key and consistent with the
                   checkpoint this machine remembered (:mod:`vega.client.transparency`,
                   :mod:`vega.client.logstate`); a fork or rollback is a distinct, loud failure;
4. ``promotion``   a promotion leaf binds this narinfo and is included under the checkpoint;
5. ``revocation``  no revocation leaf for this build;
6. ``nar``         the NAR re-hashes to NarHash (every compression a narinfo may name).

Checks 3-5 run only for the shared key (``vega-cache-1``), and only when the narinfo carries a
signature of that name: a build served only with a tenant signature (say, found by tenant
discovery) is reported plainly as not promoted to the shared tier, without asking the log. The
log is always read at the control-plane root, also when the cache base is a tenant base
(protocol.md §3: log endpoints under tenant bases may 404). With the log's new endpoints a
verification costs at most 5 HTTP requests: narinfo, lookup (asked again once only if its answer
is older than what a concurrent verification remembered), consistency (only when the log grew
since last time) and NAR. With an original server (no ``/log/lookup``) it falls back to
``/log/sth``, a newest-first scan of ``/log/entry/<i>`` and ``/log/proof/inclusion``, and the
report says so (``legacy``).

Several targets, or a whole closure (``recursive``: the narinfo References), are verified
concurrently by :func:`verify_many`.

Spec: cli.md §10 (all), §1.6; protocol.md §2.5, §2.7, §3, §5; issue 3 (client), issue 5.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx2

from vega.client.cache import (
    BinaryCache,
    NarCheck,
    Runner,
    is_tenant_scope,
    load_trusted_keys,
    nix_conf_files,
    run_process,
    select_trusted_key,
    signature_names,
)
from vega.client.deadline import new_client
from vega.client.http import Http, HttpLimits, Response, require_safe_url
from vega.client.logclient import LogClient
from vega.client.logstate import LogState, default_state_dir
from vega.client.revocations import fetch_revocation_status, pinned_shared_key, revocation_check
from vega.client.settings import system_clock_ms
from vega.client.transparency import Check, Transparency, verify_in_log
from vega.core.hashes import format_nix_hash
from vega.core.narinfo import NarInfo, parse_narinfo, verify_narinfo_signature
from vega.core.note import VerifierKey
from vega.core.revocations import RevocationStatus
from vega.core.signing import SHARED_KEY_NAME, PublicKey, format_public_key, key_scope, parse_public_key
from vega.errors import ConfigError, FormatError, NetworkError, VegaError, VerificationError

__all__ = [
    "ERROR_CODES",
    "FETCHED_NOT_PINNED",
    "Check",
    "Transparency",
    "VerifyContext",
    "VerifyOptions",
    "VerifyReport",
    "control_plane_root",
    "is_view_scope",
    "open_context",
    "parse_target",
    "verify_many",
    "verify_target",
]

log = logging.getLogger(__name__)

_FETCHING = threading.Lock()

_HASH = re.compile(r"[0-9a-z]{32}")

FETCHED_NOT_PINNED = "fetched, not pinned"
"""How a report names a key it took from the cache itself (:attr:`VerifyReport.key_source`)."""


def parse_target(text: str) -> str:
    """The store-path hash of a target: ``/nix/store/<hash>-name``, a base name, a hash, ``<hash>.narinfo``.

    Raises:
        ConfigError: not a store path or hash (cli.md §10.1, verbatim).
    """
    base = text.removesuffix(".narinfo").rsplit("/", 1)[-1].split("-", 1)[0]
    if not _HASH.fullmatch(base):
        raise ConfigError(
            f"'{text}' is not a store path or hash",
            next_steps=("vega verify /nix/store/<hash>-name", "vega verify <hash>"),
        )
    return base


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyOptions:
    """The user's choices (cli.md §10 flags)."""

    public_key: PublicKey | None = None
    """``--public-key``: overrides every other key source."""
    check_nar: bool = True
    """False with ``--no-nar``."""
    allow_signature_only: bool = False
    """``--allow-signature-only``."""
    max_scan: int = 10000
    """``--max-scan``: entries the original linear scan may read."""
    log_keys: tuple[VerifierKey, ...] = ()
    """Checkpoint-note verifier keys the user trusts (optional; see :func:`_checkpoint_identity`)."""
    tenant_discovery: bool = True
    """On a 404 at a root base, look for the build in a tenant (cli.md §10.2); MCP and assess: off."""
    trust_fetched_key: bool = False
    """``--trust-fetched-key``: with no key of the user's own for a build, use the one the cache
    publishes (a tenant base's ``/key``, else the control plane's ``/api/info`` ``sharedKey``),
    reported as "fetched, not pinned" (issue 12). Off by default; MCP and assess never set it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyContext:
    """The edges a verification uses (injected; tests pass Starlette's TestClient)."""

    client: httpx2.Client
    """The HTTP client."""
    base_url: str
    """The cache base, validated and normalised (cli.md §1.3)."""
    trusted_keys: Mapping[str, PublicKey]
    """The user's trusted keys by name (cli.md §1.6)."""
    state: LogState
    """The remembered checkpoints."""
    limits: HttpLimits = field(default_factory=HttpLimits)
    """Timeouts, caps, retries."""
    sleep: Callable[[float], None] = time.sleep
    """Back-off sleep (tests pass a no-op)."""
    original_servers: set[str] = field(default_factory=set, repr=False, compare=False)
    """Bases found to lack ``/log/lookup`` during this run, so later paths skip the probe."""
    now_ms: Callable[[], int] = system_clock_ms
    """Wall clock, epoch milliseconds (the revocation list's 6-hour freshness rule)."""
    revocation_lists: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    """Signed revocation lists fetched during this run, by control-plane origin (asked once)."""
    fetched_keys: dict[str, PublicKey | None] = field(default_factory=dict, repr=False, compare=False)
    """Keys fetched from the cache during this run (``--trust-fetched-key``), by URL (asked once)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """Everything one verification found; the verdict follows cli.md §10.5."""

    target: str
    """The argument as given."""
    hash: str
    """The store-path hash."""
    base_url: str
    """The cache base used (a tenant base after discovery)."""
    store_path: str | None = None
    """The narinfo's StorePath."""
    nar_hash: str | None = None
    """The narinfo's NarHash."""
    references: tuple[str, ...] = ()
    """The narinfo's References (base names), for ``--recursive``."""
    signature_ok: bool = False
    """Some Sig verified under the chosen key."""
    key_name: str | None = None
    """The chosen key's name."""
    key_source: str | None = None
    """Where the chosen key came from: ``--public-key``, ``nix.conf`` (the user's Nix
    configuration) or :data:`FETCHED_NOT_PINNED` (served by the cache, ``--trust-fetched-key``)."""
    fetched_key: str | None = None
    """The fetched key, ``<name>:<base64>``, and where it came from, when ``key_source`` is fetched."""
    scope: str | None = None
    """``shared``, ``scoped`` or ``upstream``."""
    transparency: Transparency | None = None
    """The log's evidence (shared scope only)."""
    nar: NarCheck | None = None
    """The NAR re-hash (None with ``--no-nar``)."""
    checks: tuple[Check, ...] = ()
    """Every check, in order."""
    notices: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    """Things the user must know about the trust used (a cache-published key), for stderr."""
    """Lines to show in grey (tenant switch, original-endpoint fallback)."""
    error: str | None = None
    """A failure that stopped the verification early (no narinfo, no key, log unreachable)."""
    next_steps: tuple[str, ...] = ()
    """``Try:`` lines for ``error``."""
    requests: int = 0
    """HTTP requests this verification sent."""
    allow_signature_only: bool = False
    """Copied from the options, for :attr:`exit_ok`."""
    nar_skipped: bool = False
    """``--no-nar`` was given."""
    log_note: str | None = None
    """Why the log was not asked for a shared-key verification (no signature of that key)."""
    revocation: RevocationStatus | None = None
    """What the signed revocation list said (changes-0.19.md), when it was asked."""

    @property
    def revoked(self) -> bool:
        """The signed revocation list names this build: fails every route.

        The log's own revocation check already fails the shared route through ``checks``.
        """
        return self.revocation is not None and self.revocation.status == "revoked"

    error_code: str | None = None
    """What kind of failure ``error`` is (:data:`ERROR_CODES`), for machine consumers (MCP, assess)."""

    @property
    def tenant_scope(self) -> bool:
        """The base URL is a tenant base."""
        return is_tenant_scope(self.base_url)

    @property
    def fully_verified(self) -> bool:
        """Signature ok, shared scope, found, and every log check (cli.md §10.4, plus the new ones)."""
        t = self.transparency
        return (
            self.error is None
            and self.signature_ok
            and self.scope == "shared"
            and t is not None
            and t.found
            and t.sth_verified
            and t.leaf_hash_ok
            and t.inclusion_ok
            and t.binding_ok
            and t.consistency_ok
            and not t.revoked
            and all(c.ok or c.skipped for c in self.checks if c.name != "nar")
        )

    @property
    def nar_ok(self) -> bool:
        """NAR skipped, or checked and matching."""
        return self.nar_skipped or (self.nar is not None and self.nar.ok)

    @property
    def verified(self) -> bool:
        """Fully verified and the NAR is ok."""
        return self.fully_verified and self.nar_ok

    @property
    def tenant_ok(self) -> bool:
        """Tenant base, scoped signature, NAR checked and ok (``--no-nar`` cannot satisfy it)."""
        return (
            self.error is None
            and self.tenant_scope
            and self.signature_ok
            and self.scope == "scoped"
            and self.nar is not None
            and self.nar.checked
            and self.nar.ok
            and self._path_ok
            and not self.revoked
        )

    @property
    def view_ok(self) -> bool:
        """A personal view base (``/u/<token>``), a ``vega-view-*`` signature, NAR checked and ok.

        A social binding (issue 8): the user's own view key vouches for it, not a reproduction.
        """
        return (
            self.error is None
            and is_view_scope(self.base_url)
            and self.signature_ok
            and (self.key_name or "").startswith("vega-view-")
            and self.nar is not None
            and self.nar.checked
            and self.nar.ok
            and self._path_ok
            and not self.revoked
        )

    @property
    def signature_only_ok(self) -> bool:
        """Signature ok, NAR ok, not shared scope, not found in the log."""
        found = self.transparency is not None and self.transparency.found
        return (
            self.error is None
            and self.signature_ok
            and self.nar_ok
            and self.scope not in (None, "shared")
            and not found
            and self._path_ok
            and not self.revoked
        )

    @property
    def exit_ok(self) -> bool:
        """cli.md §10.5: verified, or tenant ok, or allowed signature-only."""
        return (
            self.verified
            or self.tenant_ok
            or self.view_ok
            or (self.allow_signature_only and self.signature_only_ok)
        )

    @property
    def _path_ok(self) -> bool:
        return any(c.name == "store-path" and c.ok for c in self.checks)

    def to_json(self) -> dict[str, object]:
        """The ``--json`` object of cli.md §10.5, with ``checks`` and the new fields added."""
        t = self.transparency or Transparency(note=_not_logged_note(self))
        out: dict[str, object] = {
            "hash": self.hash,
            "storePath": self.store_path,
            "narHash": self.nar_hash,
            "signature": {
                "ok": self.signature_ok,
                "keyName": self.key_name,
                "scope": self.scope,
                "keySource": self.key_source,
            },
            "transparency": t.to_json(),
        }
        if not self.nar_skipped:
            out["nar"] = (
                self.nar or NarCheck(ok=False, checked=False, detail=self.error or "not checked")
            ).to_json()
        out.update(
            verified=self.verified,
            exitOk=self.exit_ok,
            url=self.base_url,
            checks=[c.to_json() for c in self.checks],
            requests=self.requests,
            notices=list(self.notices),
            warnings=list(self.warnings),
        )
        if self.revocation is not None:
            out["revocation"] = {"status": self.revocation.status, "detail": self.revocation.detail}
        if self.error is not None:
            out["error"] = self.error
        return out


def _not_logged_note(report: VerifyReport) -> str | None:
    if report.log_note is not None:
        return report.log_note
    if report.scope == "upstream":
        return f"mirrored upstream path, signed by {report.key_name}; this is not a Vega trust statement"
    if report.scope == "scoped" and (report.key_name or "").startswith("vega-view-"):
        return (
            f"social binding: signed by your view key {report.key_name} because a builder you trust "
            "attested it; not reproduced by Vega and not in the global transparency log"
        )
    if report.scope == "scoped":
        return "signature-only: scoped builds are not in the global transparency log"
    return None


@contextlib.contextmanager
def open_context(
    url: str,
    environ: Mapping[str, str],
    *,
    read_nix_keys: bool = True,
    run: Runner = run_process,
    limits: HttpLimits | None = None,
) -> Iterator[VerifyContext]:
    """The real edges for verification, for ``vega verify`` and MCP.

    A validated URL, an HTTP client, the user's trusted keys (cli.md §1.6) and the remembered
    checkpoints under the XDG state dir.

    Args:
        url: the cache base, validated and normalised per cli.md §1.3 (``::1`` allowed).
        environ: the environment (``HOME``, ``XDG_STATE_HOME``).
        read_nix_keys: False when ``--public-key`` makes the trusted keys irrelevant.
        run: the process runner for ``nix config show``.
        limits: timeouts, caps and retries.

    Raises:
        ConfigError: the URL is not https (or loopback).
    """
    base = require_safe_url(url)
    home = Path(environ.get("HOME", "") or Path.home())
    trusted = load_trusted_keys(run, nix_conf_files(home)) if read_nix_keys else {}
    limits = limits or HttpLimits()
    with new_client(timeout=limits.timeout_s, follow_redirects=False) as client:
        yield VerifyContext(
            client=client,
            base_url=base,
            trusted_keys=trusted,
            state=LogState(default_state_dir(environ)),
            limits=limits,
        )


# -- one target -------------------------------------------------------------------------------------


class _Run:
    """The mutable state of one verification while it runs."""

    def __init__(self, ctx: VerifyContext, options: VerifyOptions, target: str, hash_part: str) -> None:
        self.ctx = ctx
        self.options = options
        self.http = Http(ctx.client, ctx.limits, sleep=ctx.sleep)
        self.report = VerifyReport(
            target=target,
            hash=hash_part,
            base_url=ctx.base_url,
            allow_signature_only=options.allow_signature_only,
            nar_skipped=not options.check_nar,
        )
        self.checks: list[Check] = []
        self.notices: list[str] = []
        self.warnings: list[str] = []
        self.stage = "narinfo"
        """Which step is running, to classify a failure (:func:`_error_code`)."""

    def finish(self, **changes: object) -> VerifyReport:
        return replace(
            self.report,
            checks=tuple(self.checks),
            notices=tuple(self.notices),
            warnings=tuple(self.warnings),
            requests=self.http.requests,
            **changes,  # type: ignore[arg-type]
        )


def verify_target(ctx: VerifyContext, target: str, options: VerifyOptions | None = None) -> VerifyReport:
    """Verify one build; never raises for a failed check or an unreachable cache (see ``error``).

    Raises:
        ConfigError: ``target`` is not a store path or hash.
    """
    options = options or VerifyOptions()
    run = _Run(ctx, options, target, parse_target(target))
    try:
        return _verify(run)
    except VegaError as e:
        log.debug("verify %s stopped", target, exc_info=True)
        return run.finish(error=e.message, next_steps=e.next_steps, error_code=_error_code(run.stage, e))


ERROR_CODES = ("NOT_IN_CACHE", "CACHE_UNREACHABLE", "NARINFO_MALFORMED", "NO_TRUSTED_KEY", "LOG_UNAVAILABLE")
"""The kinds of :attr:`VerifyReport.error_code` (the MCP tool-error codes of mcp.md §4.2, extended)."""


def _error_code(stage: str, e: VegaError) -> str:
    if stage == "narinfo":
        return "CACHE_UNREACHABLE" if isinstance(e, NetworkError) else "NOT_IN_CACHE"
    if stage == "key":
        return "NO_TRUSTED_KEY"
    return "LOG_UNAVAILABLE"


def _verify(run: _Run) -> VerifyReport:
    hash_part = run.report.hash
    cache, raw = _find_narinfo(run, BinaryCache(run.http, run.report.base_url), hash_part)
    try:
        info = parse_narinfo(raw.body)
    except FormatError as e:
        run.checks.append(Check(name="store-path", ok=False, detail=f"malformed narinfo: {e.message}"))
        return run.finish(
            error=f"malformed narinfo for {hash_part}: {e.message}", error_code="NARINFO_MALFORMED"
        )
    run.report = replace(
        run.report,
        base_url=cache.base_url,
        store_path=info.store_path.absolute,
        nar_hash=format_nix_hash(info.nar_hash),
        references=tuple(str(r) for r in info.references),
    )

    # 1. the narinfo is for the requested path
    path_ok = info.store_path.hash_part == hash_part
    run.checks.append(
        Check(
            name="store-path",
            ok=path_ok,
            detail=info.store_path.absolute
            if path_ok
            else f"asked for {hash_part}, the narinfo is for {info.store_path.absolute}",
        )
    )

    # 2. signature under a key the user trusts
    run.stage = "key"
    key = _resolve_key(run, cache, info)
    run.stage = "log"
    sig_ok, sig_detail = True, f"signed by {key.name}"
    try:
        verify_narinfo_signature(info, {key.name: key})
    except VerificationError as e:
        sig_ok, sig_detail = False, e.message
    scope = key_scope(key.name)
    run.checks.append(Check(name="signature", ok=sig_ok, detail=f"{sig_detail} ({scope})"))
    run.report = replace(run.report, signature_ok=sig_ok, key_name=key.name, scope=scope)

    # 3-5. the transparency log (shared key only, when the narinfo has a signature by it)
    names = signature_names(info.sigs)
    if scope == "shared" and key.name not in names:
        note = _no_shared_signature_note(run, key.name, names)
        run.report = replace(run.report, log_note=note)
        for name in ("checkpoint", "promotion", "revocation"):
            run.checks.append(Check(name=name, ok=False, skipped=True, detail=note))
    elif scope == "shared":
        verdict = verify_in_log(
            LogClient(run.http, control_plane_root(run.report.base_url)),
            run.ctx.state,
            info,
            key,
            log_keys=run.options.log_keys,
            max_scan=run.options.max_scan,
            original_servers=run.ctx.original_servers,
        )
        run.checks.extend(verdict.checks)
        run.notices.extend(verdict.notices)
        run.report = replace(run.report, transparency=verdict.transparency)
    else:
        note = _not_logged_note(run.report) or ""
        for name in ("checkpoint", "promotion", "revocation"):
            run.checks.append(Check(name=name, ok=False, skipped=True, detail=note))

    # 5'. the original's signed revocation list, where the proven log check is absent (changes-0.19.md)
    _check_revocation_list(run, info)

    # 6. the NAR bytes (even when the signature failed: cli.md §10.4)
    if run.options.check_nar:
        nar = cache.check_nar(info)
        run.checks.append(Check(name="nar", ok=nar.ok, detail=nar.detail))
        run.report = replace(run.report, nar=nar)
    else:
        run.checks.append(Check(name="nar", ok=False, skipped=True, detail="not checked (--no-nar)"))
    return run.finish()


def _check_revocation_list(run: _Run, info: NarInfo) -> None:
    """Ask the signed revocation list unless our log's proven revocation check ran."""
    t = run.report.transparency
    if t is not None and not t.legacy:
        return
    key = pinned_shared_key(run.options.public_key, run.ctx.trusted_keys)
    root = control_plane_root(run.report.base_url)
    status = fetch_revocation_status(run.http, root, key, info, run.ctx.now_ms(), run.ctx.revocation_lists)
    k = next((i for i, c in enumerate(run.checks) if c.name == "revocation"), None)
    log_check = run.checks[k] if t is not None and k is not None else None
    check = revocation_check(status, shared_scope=t is not None, log_check=log_check)
    if k is None:
        run.checks.append(check)
    else:
        run.checks[k] = check
    if t is not None and not check.ok:
        t = replace(t, revoked=True)
    run.report = replace(run.report, revocation=status, transparency=t)


def control_plane_root(base_url: str) -> str:
    """Where the log lives for a cache base: the root of a tenant base, else the base itself.

    protocol.md §3: the log endpoints are the control plane's; under a tenant base they may 404.
    """
    if not is_tenant_scope(base_url):
        return base_url
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def _no_shared_signature_note(run: _Run, key_name: str, names: Sequence[str]) -> str:
    """Why a shared-key verification of a narinfo without a shared signature stops before the log."""
    if not names or any(key_scope(n) != "scoped" for n in names):
        signed_by = ", ".join(names) or "nothing"
        return f"not promoted to the shared tier: no {key_name} signature (signed by: {signed_by})"
    base = run.report.base_url
    if is_tenant_scope(base) and base == run.ctx.base_url:
        root = control_plane_root(base)
        return (
            f"only a tenant signature exists at this tenant base; the shared tier is at {root} "
            f"(vega verify {run.report.hash} --url {root})"
        )
    return "not promoted to the shared tier: only a tenant signature exists"


def _find_narinfo(run: _Run, cache: BinaryCache, hash_part: str) -> tuple[BinaryCache, Response]:
    """cli.md §10.2: the narinfo snapshot, at the base itself or at the one tenant caching the build."""
    first = cache.narinfo(hash_part)
    if first.ok:
        return cache, first
    if is_view_scope(cache.base_url):  # a personal view says why it serves nothing (issue 8)
        why = _view_reason(first.body)
        raise VerificationError(
            f"no build found for {hash_part} (HTTP {first.status})" + (f": {why}" if why else "")
        )
    if first.status != 404 or is_tenant_scope(cache.base_url) or not run.options.tenant_discovery:
        raise VerificationError(f"no build found for {hash_part} (HTTP {first.status})")
    tenants = cache.tenants(hash_part)
    if not tenants:
        raise VerificationError(f"no build found for {hash_part} (HTTP 404)")
    if len(tenants) > 1:
        raise VerificationError(
            f"{hash_part} is cached in multiple tenants; verify a specific one:",
            next_steps=tuple(f"vega verify {hash_part} --url {cache.base_url}/tenant/{t}" for t in tenants),
        )
    tenant = BinaryCache(run.http, f"{cache.base_url}/tenant/{tenants[0]}")
    resp = tenant.narinfo(hash_part)
    if not resp.ok:
        raise VerificationError(f"no build found for {hash_part} (HTTP {resp.status})")
    run.notices.append(f"not in the shared cache; verifying the tenant build at {tenant.base_url}")
    return tenant, resp


_VIEW_SCOPE = re.compile(r"/u/[A-Za-z0-9_-]+")


def is_view_scope(base_url: str) -> bool:
    """Whether the base URL's path is a personal view (``/u/<token>``, protocol.md §3)."""
    return _VIEW_SCOPE.fullmatch(urlsplit(base_url).path.rstrip("/")) is not None


def _view_reason(body: bytes) -> str | None:
    """The ``reason`` string of a view's 404 body, capped (never the raw body: cli.md §1.4)."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    reason = obj.get("reason") if isinstance(obj, dict) else None
    return reason[:200] if isinstance(reason, str) else None


def _resolve_key(run: _Run, cache: BinaryCache, info: NarInfo) -> PublicKey:
    """--public-key; the first trusted key in Sig order; with ``trust_fetched_key``, the cache's key.

    cli.md §10.3, except that a key the cache publishes is never used unasked (issue 12).
    """
    if run.options.public_key is not None:
        run.report = replace(run.report, key_source="--public-key")
        return run.options.public_key
    chosen = select_trusted_key(info.sigs, run.ctx.trusted_keys)
    if chosen is not None:
        run.report = replace(run.report, key_source="nix.conf")
        return chosen
    names = signature_names(info.sigs)
    root = control_plane_root(cache.base_url)
    if run.options.trust_fetched_key:
        where, key = _fetched_key(run, cache)
        if key is not None and key.name in names:
            run.report = replace(
                run.report, key_source=FETCHED_NOT_PINNED, fetched_key=f"{format_public_key(key)} ({where})"
            )
            run.warnings.append(
                f"using {key.name} {FETCHED_NOT_PINNED}: it was served by {where}, so this checks the "
                "cache against itself; pin it (trusted-public-keys in nix.conf, or --public-key) "
                "after comparing it out of band"
            )
            return key
    fetch_hint = (
        f"vega verify {run.report.hash} --trust-fetched-key   # a self check only: the cache vouches "
        "for its own key (reported as fetched, not pinned)"
    )
    where = f"{root} publishes its shared key at {root}/api/info"
    if is_tenant_scope(cache.base_url):
        where += f", this tenant's key at {cache.base_url}/key"
    raise VerificationError(
        f"no trusted public key found for this build (it is signed by: {', '.join(names) or 'nothing'}).",
        next_steps=(
            "add the signing key to trusted-public-keys in nix.conf after comparing it with its owner "
            "out of band (`vega doctor` shows the shared key's fingerprint)",
            f"vega verify {run.report.hash} --public-key '{SHARED_KEY_NAME}:<base64>'   # {where}",
            *(() if run.options.trust_fetched_key else (fetch_hint,)),
        ),
    )


def _fetched_key(run: _Run, cache: BinaryCache) -> tuple[str, PublicKey | None]:
    """The key the cache publishes for ``cache``'s base: a tenant's ``/key``, else ``/api/info``."""
    if is_tenant_scope(cache.base_url):
        where = f"{cache.base_url}/key"
    else:
        where = f"{control_plane_root(cache.base_url)}/api/info"
    with _FETCHING:  # the verifications of a closure ask once
        if where not in run.ctx.fetched_keys:
            text = (
                cache.tenant_key() if is_tenant_scope(cache.base_url) else _info_shared_key(run.http, where)
            )
            key: PublicKey | None = None
            if text is not None:
                try:
                    key = parse_public_key(text)
                except FormatError:
                    key = None
            run.ctx.fetched_keys[where] = key
        return where, run.ctx.fetched_keys[where]


def _info_shared_key(http: Http, url: str) -> str | None:
    """``sharedKey`` of a control plane's ``/api/info`` (protocol.md §1), or None."""
    try:
        resp = http.get(url, {"accept": "application/json"})
        obj = resp.json() if resp.ok else None
    except VegaError:
        return None
    text = obj.get("sharedKey") if isinstance(obj, dict) else None
    return text if isinstance(text, str) else None


# -- many targets -----------------------------------------------------------------------------------


def verify_many(
    ctx: VerifyContext,
    targets: Sequence[str],
    options: VerifyOptions | None = None,
    *,
    recursive: bool = False,
    workers: int = 8,
    on_done: Callable[[VerifyReport], None] | None = None,
    on_found: Callable[[int], None] | None = None,
) -> list[VerifyReport]:
    """Verify several targets (and with ``recursive`` their whole closure) concurrently.

    Args:
        ctx: the edges.
        targets: store paths or hashes (each checked by :func:`parse_target` first).
        options: the user's choices.
        recursive: also verify every reference of every verified narinfo, transitively.
        workers: concurrent verifications.
        on_done: called (from the calling thread) with each report as it completes.
        on_found: called with the number of paths known so far, whenever it grows.

    Returns:
        One report per distinct path, in the order they were discovered.

    Raises:
        ConfigError: a target is not a store path or hash (before anything is fetched).
    """
    options = options or VerifyOptions()
    hashes = [parse_target(t) for t in targets]
    order: dict[str, str] = {}
    for h, t in zip(hashes, targets, strict=True):
        order.setdefault(h, t)
    results: dict[str, VerifyReport] = {}
    if on_found is not None:
        on_found(len(order))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vega-verify") as pool:
        pending: dict[Future[VerifyReport], str] = {
            pool.submit(verify_target, ctx, t, options): h for h, t in order.items()
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                h = pending.pop(fut)
                report = fut.result()
                results[h] = report
                if on_done is not None:
                    on_done(report)
                if not recursive:
                    continue
                grew = False
                for ref in report.references:
                    rh = ref.split("-", 1)[0]
                    if rh not in order:
                        order[rh] = f"/nix/store/{ref}"
                        pending[pool.submit(verify_target, ctx, order[rh], options)] = rh
                        grew = True
                if grew and on_found is not None:
                    on_found(len(order))
    return [results[h] for h in order]
