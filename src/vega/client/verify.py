"""``vega verify``: is this build what the cache signed, promoted in the public log, and unrevoked?

For one target the checks run in this order, and every one is reported (questions return
reports; a failed check never raises):

1. ``store-path``  the narinfo's StorePath has the requested hash;
2. ``signature``   some ``Sig`` verifies under a key the user already trusts (never a key
                   served by the cache, except the tenant case of cli.md §10.3, which says so);
3. ``checkpoint``  the log's tree head is signed by that key and consistent with the
                   checkpoint this machine remembered (:mod:`vega.client.logstate`); a fork or
                   rollback is a distinct, loud failure;
4. ``promotion``   a promotion leaf binds this narinfo and is included under the checkpoint;
5. ``revocation``  no revocation leaf for this build;
6. ``nar``         the NAR re-hashes to NarHash (every compression a narinfo may name).

Checks 3-5 run only for the shared key (``vega-cache-1``). With the log's new endpoints a
verification costs at most 4 HTTP requests: narinfo, lookup, consistency (only when the log
grew since last time) and NAR. With an original server (no ``/log/lookup``) it falls back to
``/log/sth``, a newest-first scan of ``/log/entry/<i>`` and ``/log/proof/inclusion``, and the
report says so (``legacy``).

Several targets, or a whole closure (``recursive``: the narinfo References), are verified
concurrently by :func:`verify_many`.

Spec: cli.md §10 (all), §1.6; protocol.md §2.5, §2.7, §3, §5; issue 3 (client), issue 5.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

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
from vega.client.http import Http, HttpLimits, Response, require_safe_url
from vega.client.logclient import LogClient, LookupAnswer
from vega.client.logstate import LogState, RememberedCheckpoint, default_state_dir
from vega.core import merkle, tlog
from vega.core.checkpoint import parse_checkpoint
from vega.core.hashes import format_nix_hash
from vega.core.narinfo import NarInfo, fingerprint, parse_narinfo, verify_narinfo_signature
from vega.core.note import ALG_ED25519, VerifierKey, parse_note, verify_note
from vega.core.signing import SHARED_KEY_NAME, PublicKey, key_scope, parse_public_key
from vega.errors import ConfigError, FormatError, LogForkError, VegaError, VerificationError

__all__ = [
    "Check",
    "Transparency",
    "VerifyContext",
    "VerifyOptions",
    "VerifyReport",
    "open_context",
    "parse_target",
    "verify_many",
    "verify_target",
]

log = logging.getLogger(__name__)

_HASH = re.compile(r"[0-9a-z]{32}")
_SHARED_KEY_URL = "https://vega-cache.dev"


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
class Check:
    """One check of a verification."""

    name: str
    """``store-path``, ``signature``, ``checkpoint``, ``promotion``, ``revocation`` or ``nar``."""
    ok: bool
    """Whether it passed (a skipped check is not ok)."""
    detail: str
    """What was checked, or why it failed; the spec's wording where it has one."""
    skipped: bool = False
    """It did not apply (e.g. the log for a non-shared key, the NAR with ``--no-nar``)."""

    def to_json(self) -> dict[str, object]:
        """``{"name","ok","detail","skipped"}``."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "skipped": self.skipped}


@dataclass(frozen=True, slots=True, kw_only=True)
class Transparency:
    """What the transparency log said about the build (cli.md §10.4 fields plus the new ones)."""

    found: bool = False
    """A promotion leaf binding this narinfo was found."""
    index: int | None = None
    """Its index."""
    sth_verified: bool = False
    """The tree head is signed by the shared key (STH, or the checkpoint note bound to it)."""
    leaf_hash_ok: bool = False
    """The leaf hash is SHA-256(0x00 ‖ data) of the entry served."""
    inclusion_ok: bool = False
    """The leaf is included under the signed root."""
    binding_ok: bool = False
    """The leaf binds this narinfo (protocol.md §5.2)."""
    scanned: int = 0
    """Entries read (the original's linear scan; with lookup: entries returned)."""
    note: str | None = None
    """Why nothing was found, or what the fallback did."""
    consistency_ok: bool = False
    """The tree head is consistent with the remembered one (or is the first seen)."""
    fork: bool = False
    """A fork or rollback was detected."""
    revoked: bool = False
    """A revocation leaf for this build is in the log."""
    legacy: bool = False
    """The server lacks the new endpoints; the original STH and linear scan were used."""
    log_id: str = ""
    """The identity the checkpoint is remembered under (origin, or ``sth:<key>``)."""
    size: int = 0
    """The tree size verified."""
    root_hex: str = ""
    """The root hash verified."""
    previous_size: int | None = None
    """The remembered size it was checked against (None: first use)."""
    previous_root_hex: str = ""
    """The remembered root, hex (for the fork evidence; empty on first use)."""

    def to_json(self) -> dict[str, object]:
        """The ``transparency`` object of ``--json`` (spec fields first, then the new ones)."""
        out: dict[str, object] = {
            "found": self.found,
            "index": self.index,
            "sthVerified": self.sth_verified,
            "leafHashOk": self.leaf_hash_ok,
            "inclusionOk": self.inclusion_ok,
            "bindingOk": self.binding_ok,
            "scanned": self.scanned,
        }
        if self.note is not None:
            out["note"] = self.note
        out.update(
            consistencyOk=self.consistency_ok,
            fork=self.fork,
            revoked=self.revoked,
            legacy=self.legacy,
            log=self.log_id,
            size=self.size,
            rootHash=self.root_hex,
            previousSize=self.previous_size,
            previousRootHash=self.previous_root_hex or None,
        )
        return out


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
        )

    @property
    def exit_ok(self) -> bool:
        """cli.md §10.5: verified, or tenant ok, or allowed signature-only."""
        return self.verified or self.tenant_ok or (self.allow_signature_only and self.signature_only_ok)

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
            "signature": {"ok": self.signature_ok, "keyName": self.key_name, "scope": self.scope},
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
        if self.error is not None:
            out["error"] = self.error
        return out


def _not_logged_note(report: VerifyReport) -> str | None:
    if report.scope == "upstream":
        return f"mirrored upstream path, signed by {report.key_name}; this is not a Vega trust statement"
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
    with httpx2.Client(timeout=limits.timeout_s, follow_redirects=False) as client:
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
        return run.finish(error=e.message, next_steps=e.next_steps)


def _verify(run: _Run) -> VerifyReport:
    hash_part = run.report.hash
    cache, raw = _find_narinfo(run, BinaryCache(run.http, run.report.base_url), hash_part)
    try:
        info = parse_narinfo(raw.body)
    except FormatError as e:
        run.checks.append(Check(name="store-path", ok=False, detail=f"malformed narinfo: {e.message}"))
        return run.finish(error=f"malformed narinfo for {hash_part}: {e.message}")
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
    key = _resolve_key(run, cache, info)
    sig_ok, sig_detail = True, f"signed by {key.name}"
    try:
        verify_narinfo_signature(info, {key.name: key})
    except VerificationError as e:
        sig_ok, sig_detail = False, e.message
    scope = key_scope(key.name)
    run.checks.append(Check(name="signature", ok=sig_ok, detail=f"{sig_detail} ({scope})"))
    run.report = replace(run.report, signature_ok=sig_ok, key_name=key.name, scope=scope)

    # 3-5. the transparency log (shared key only)
    if scope == "shared":
        transparency = _check_log(run, info, key)
        run.report = replace(run.report, transparency=transparency)
    else:
        note = _not_logged_note(run.report) or ""
        for name in ("checkpoint", "promotion", "revocation"):
            run.checks.append(Check(name=name, ok=False, skipped=True, detail=note))

    # 6. the NAR bytes (even when the signature failed: cli.md §10.4)
    if run.options.check_nar:
        nar = cache.check_nar(info)
        run.checks.append(Check(name="nar", ok=nar.ok, detail=nar.detail))
        run.report = replace(run.report, nar=nar)
    else:
        run.checks.append(Check(name="nar", ok=False, skipped=True, detail="not checked (--no-nar)"))
    return run.finish()


def _find_narinfo(run: _Run, cache: BinaryCache, hash_part: str) -> tuple[BinaryCache, Response]:
    """cli.md §10.2: the narinfo snapshot, at the base itself or at the one tenant caching the build."""
    first = cache.narinfo(hash_part)
    if first.ok:
        return cache, first
    if first.status != 404 or is_tenant_scope(cache.base_url):
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


def _resolve_key(run: _Run, cache: BinaryCache, info: NarInfo) -> PublicKey:
    """cli.md §10.3: --public-key; the first trusted key in Sig order; a tenant's published key."""
    if run.options.public_key is not None:
        return run.options.public_key
    chosen = select_trusted_key(info.sigs, run.ctx.trusted_keys)
    if chosen is not None:
        return chosen
    names = signature_names(info.sigs)
    if is_tenant_scope(cache.base_url):
        published = cache.tenant_key()
        if published is not None:
            try:
                key = parse_public_key(published)
            except FormatError:
                key = None
            if key is not None and key.name in names:
                run.warnings.append(
                    f"using the cache-published tenant key {key.name}; pin it with --public-key "
                    "for third-party verification"
                )
                return key
    raise VerificationError(
        f"no trusted public key found for this build (it is signed by: {', '.join(names) or 'nothing'}).",
        next_steps=(
            "add the signing key to trusted-public-keys in nix.conf",
            f"vega verify {run.report.hash} --public-key '{SHARED_KEY_NAME}:<base64>'"
            f"   # the shared key is published at {_SHARED_KEY_URL}",
        ),
    )


# -- the transparency-log verifier (issue 3, client side) ---------------------------------------------


def _check_log(run: _Run, info: NarInfo, key: PublicKey) -> Transparency:
    logc = LogClient(run.http, run.report.base_url)
    known_original = run.report.base_url in run.ctx.original_servers
    lookup = None if known_original else logc.lookup(run.report.hash)
    if lookup is None:
        run.ctx.original_servers.add(run.report.base_url)
        return _check_log_legacy(run, logc, info, key)

    # 3. the checkpoint: signed, and consistent with what this machine remembers
    t, head = _lookup_head(run, lookup, key)
    if head is not None and _older_than_remembered(run, head):
        # NOTE: a concurrent verification may have remembered a checkpoint newer than the one this
        # lookup was answered at. The older checkpoint is never accepted: ask once for the current
        # one; a server that rolled back answers older again and is refused by _remember.
        fresh = logc.lookup(run.report.hash)
        if fresh is not None:
            lookup = fresh
            t, head = _lookup_head(run, lookup, key)
    if head is None:
        run.checks.append(Check(name="checkpoint", ok=False, detail=f"checkpoint not trusted: {t.note}"))
        _fail_rest(run, "the checkpoint is not trusted")
        return replace(t, note=None)
    t = _remember(run, logc, head, t)
    if not t.consistency_ok:
        _fail_rest(run, "the log is not consistent with the remembered checkpoint")
        return t

    # 4-5. the build's entries, each proven included at that checkpoint
    promotion: tuple[int, bool] | None = None
    revocations: list[int] = []
    bad_proofs: list[int] = []
    for entry in lookup.entries:
        revoking, binding = _is_revocation(entry.data, info), _binds(entry.data, info)
        if not (revoking or binding):
            continue
        try:
            merkle.verify_inclusion(
                merkle.leaf_hash(entry.data), entry.index, head.size, entry.proof, head.root_hash
            )
            included = True
        except VerificationError:
            included = False
            bad_proofs.append(entry.index)
        if revoking:
            revocations.append(entry.index)
        elif promotion is None:
            promotion = (entry.index, included)
    note = None
    if lookup.truncated:
        note = f"the log returned only the oldest {len(lookup.entries)} entries for this build"
    t = _record_entries(run, t, promotion, revocations, bad_proofs, note)
    if lookup.truncated and not t.revoked:
        # NOTE: a revocation may sit among the entries not returned; never report "unrevoked" then.
        run.checks[-1] = Check(
            name="revocation", ok=False, detail=f"{note}; a revocation cannot be ruled out"
        )
        t = replace(t, revoked=True)
    return t


def _lookup_head(
    run: _Run, lookup: LookupAnswer, key: PublicKey
) -> tuple[Transparency, RememberedCheckpoint | None]:
    """The trusted tree head of a lookup answer, or None (the reason in ``note``)."""
    try:
        sth: tlog.SignedTreeHead | None = tlog.SignedTreeHead.from_json(lookup.sth)
    except FormatError:
        sth = None
    sth_ok = sth is not None and _sth_ok(sth, key)
    t = Transparency(sth_verified=sth_ok, scanned=len(lookup.entries))
    try:
        head = _checkpoint_head(lookup.checkpoint_note, sth, sth_ok, key, run.options.log_keys)
    except (FormatError, VerificationError) as e:
        return replace(t, note=e.message), None
    return replace(
        t, sth_verified=True, log_id=head.origin, size=head.size, root_hex=head.root_hash.hex()
    ), head


def _older_than_remembered(run: _Run, head: RememberedCheckpoint) -> bool:
    remembered = run.ctx.state.load(head.origin)
    return remembered is not None and head.size < remembered.size


def _check_log_legacy(run: _Run, logc: LogClient, info: NarInfo, key: PublicKey) -> Transparency:
    """The original's algorithm (cli.md §10.4 steps 3-5), with the remembered-checkpoint check added."""
    sth = tlog.SignedTreeHead.from_json(logc.sth())
    sth_ok = _sth_ok(sth, key)
    remembered = run.ctx.state.load(_sth_identity(key)) if sth_ok else None
    if remembered is not None and sth.tree_size < remembered.size:
        # NOTE: as in _check_log: ask once for the current head; an older one is never accepted.
        sth = tlog.SignedTreeHead.from_json(logc.sth())
        sth_ok = _sth_ok(sth, key)
    size = sth.tree_size
    fallback = "server lacks /log/lookup: used the original /log/sth and a linear scan"
    t = Transparency(sth_verified=sth_ok, legacy=True, size=size, root_hex=sth.root_hash.hex())
    run.notices.append(fallback)
    if sth_ok:
        head = RememberedCheckpoint(
            origin=_sth_identity(key),
            size=size,
            root_hash=sth.root_hash,
            note=json.dumps(sth.to_json(), separators=(",", ":")),
        )
        t = replace(t, log_id=head.origin)
        t = _remember(run, logc, head, t)
    else:
        run.checks.append(Check(name="checkpoint", ok=False, detail="the STH signature does not verify"))
    limit = min(max(run.options.max_scan, 0) or 10000, size)
    found: tuple[int, bytes] | None = None
    revocations: list[int] = []
    scanned = 0
    for n in range(limit):
        i = size - 1 - n
        scanned = n + 1
        entry = logc.entry(i)
        if _is_revocation(entry.data, info):
            revocations.append(i)
        elif _binds(entry.data, info):
            found = (i, entry.data)
            break
    t = replace(t, scanned=scanned)
    if found is None:
        note = (
            f"no matching promotion leaf in the most recent {limit} of {size} entries"
            if limit < size
            else f"no promotion leaf for this build in the log ({size} entries)"
        )
        t = _record_entries(run, t, None, revocations, [], f"{note}; {fallback}")
        return t
    index, data = found
    proof = logc.inclusion(index, size)
    leaf_hash = merkle.leaf_hash(data)
    leaf_ok = proof.leaf_hash_hex == leaf_hash.hex()
    try:
        if proof.size != size:
            raise VerificationError(f"inclusion proof is for size {proof.size}, the STH has {size}")
        merkle.verify_inclusion(leaf_hash, index, size, proof.proof, sth.root_hash)
        included = True
    except VerificationError:
        included = False
    t = replace(t, leaf_hash_ok=leaf_ok)
    if not sth_ok or not t.consistency_ok:
        _fail_rest(run, "the tree head is not trusted")
        return replace(t, found=True, index=index, binding_ok=True, inclusion_ok=included, note=fallback)
    t = _record_entries(run, t, (index, included and leaf_ok), revocations, [], fallback)
    return replace(t, leaf_hash_ok=leaf_ok)


def _record_entries(
    run: _Run,
    t: Transparency,
    promotion: tuple[int, bool] | None,
    revocations: Sequence[int],
    bad_proofs: Sequence[int],
    note: str | None,
) -> Transparency:
    if promotion is None:
        detail = note or f"no promotion leaf for this build in the log ({t.size} entries)"
        run.checks.append(Check(name="promotion", ok=False, detail=detail))
        t = replace(t, note=detail)
    else:
        index, included = promotion
        run.checks.append(
            Check(
                name="promotion",
                ok=included,
                detail=f"entry #{index} binds this narinfo and is included at size {t.size}"
                if included
                else f"entry #{index} binds this narinfo but its inclusion proof does not verify",
            )
        )
        t = replace(
            t, found=True, index=index, binding_ok=True, leaf_hash_ok=True, inclusion_ok=included, note=note
        )
    if revocations:
        listed = ", ".join(f"#{i}" for i in revocations[:5])
        run.checks.append(Check(name="revocation", ok=False, detail=f"revoked in the log (entry {listed})"))
        t = replace(t, revoked=True)
    elif bad_proofs:
        run.checks.append(
            Check(
                name="revocation",
                ok=False,
                detail=f"entries {', '.join(f'#{i}' for i in bad_proofs[:5])} have invalid inclusion proofs",
            )
        )
        t = replace(t, revoked=True)
    else:
        run.checks.append(Check(name="revocation", ok=True, detail="no revocation in the log"))
    return t


def _fail_rest(run: _Run, why: str) -> None:
    run.checks.append(Check(name="promotion", ok=False, detail=f"not checked: {why}"))
    run.checks.append(Check(name="revocation", ok=False, detail=f"not checked: {why}"))


def _remember(run: _Run, logc: LogClient, head: RememberedCheckpoint, t: Transparency) -> Transparency:
    """Advance the remembered checkpoint, demanding a consistency proof; a fork is never softened."""

    def prove(old: RememberedCheckpoint) -> None:
        if old.size == 0:
            return  # every tree extends the empty tree
        answer = logc.consistency(old.size, head.size)
        merkle.verify_consistency(old.size, head.size, answer.proof, old.root_hash, head.root_hash)

    try:
        old = run.ctx.state.advance(head, prove)
    except LogForkError as e:
        run.checks.append(Check(name="checkpoint", ok=False, detail=e.message))
        remembered = run.ctx.state.load(head.origin)
        return replace(
            t,
            fork=True,
            consistency_ok=False,
            previous_size=None if remembered is None else remembered.size,
            previous_root_hex="" if remembered is None else remembered.root_hash.hex(),
        )
    if old is None:
        detail = f"{head.origin} size {head.size}, first checkpoint remembered for this log"
    elif old.size == head.size:
        detail = f"{head.origin} size {head.size}, same as remembered"
    else:
        detail = f"{head.origin} size {head.size}, consistent with remembered size {old.size}"
    run.checks.append(Check(name="checkpoint", ok=True, detail=detail))
    return replace(
        t,
        consistency_ok=True,
        previous_size=None if old is None else old.size,
        previous_root_hex="" if old is None else old.root_hash.hex(),
    )


def _sth_ok(sth: tlog.SignedTreeHead, key: PublicKey) -> bool:
    try:
        tlog.verify_sth(sth, key)
    except VerificationError:
        return False
    return True


def _sth_identity(key: PublicKey) -> str:
    """The log identity when only the STH is authenticated: the signing key's name and fingerprint."""
    return f"sth:{key.name}+{hashlib.sha256(key.key).hexdigest()[:16]}"


def _checkpoint_head(
    note_text: str,
    sth: tlog.SignedTreeHead | None,
    sth_ok: bool,
    key: PublicKey,
    log_keys: Sequence[VerifierKey],
) -> RememberedCheckpoint:
    """Decide whether to trust the checkpoint note, and under which log identity.

    Trusted when signed by a known log key (then its origin names the log), or when bound to an
    STH signed by the shared key (same size and root; then the key names the log).

    Raises:
        FormatError: the note or checkpoint is malformed.
        VerificationError: neither way trusts it.
    """
    note = parse_note(note_text)
    cp = parse_checkpoint(note.text)
    candidates = [*log_keys, VerifierKey(cp.origin, key.key, ALG_ED25519)]
    try:
        verify_note(note, candidates)
    except VerificationError:
        pass
    else:
        return RememberedCheckpoint(origin=cp.origin, size=cp.size, root_hash=cp.root_hash, note=note_text)
    if sth is None or not sth_ok:
        raise VerificationError(f"neither the checkpoint note nor the STH is signed by {key.name}")
    if (sth.tree_size, sth.root_hash) != (cp.size, cp.root_hash):
        raise VerificationError(
            f"the checkpoint (size {cp.size}) does not match the signed STH (size {sth.tree_size})"
        )
    return RememberedCheckpoint(
        origin=_sth_identity(key), size=cp.size, root_hash=cp.root_hash, note=note_text
    )


def _binds(data: bytes, info: NarInfo) -> bool:
    """protocol.md §5.2: a promotion of exactly this narinfo (lenient about other fields)."""
    return tlog.leaf_binds_narinfo(
        data, info.store_path.absolute, format_nix_hash(info.nar_hash), fingerprint(info)
    )


def _is_revocation(data: bytes, info: NarInfo) -> bool:
    """A revocation of this store path.

    NOTE: lenient on purpose (any JSON object with the two string fields), so that a server
    adding fields to revocations cannot hide one from this check.
    """
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(obj, dict)
        and obj.get("event") == "revocation"
        and obj.get("storePath") == info.store_path.absolute
    )


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
