"""The transparency-log verifier that remembers (issue 3, client side), used by verify and MCP.

Given a narinfo whose signature verified under the shared key, it answers three questions with
at most 3 requests to the log (normally 1 or 2), reporting each as a :class:`Check`:

``checkpoint``  the tree head is signed by the user's key (the STH, or a checkpoint note bound
                to it; ADR 0007) and consistent with the checkpoint this machine remembered
                (:mod:`vega.client.logstate`): a fork or rollback is a distinct, loud failure,
                never retried;
``promotion``   a promotion leaf binds this narinfo and is proven included at that head;
``revocation``  no revocation leaf for this build is in the log: every entry of the build was
                returned, or the lookup's signed list of its promotions and revocations (ADR
                0012) verifies and matches the proven entries; otherwise "unknown", never clean.

New endpoints: ``/log/lookup/<hash>`` (every entry of the build, proven at one checkpoint) and,
when the log grew since last time, ``/log/proof/consistency``. A server without ``/log/lookup``
gets the original algorithm (``/log/sth``, a newest-first scan of ``/log/entry/<i>``, and
``/log/proof/inclusion``), with the same remembered-checkpoint check, flagged ``legacy``.

Spec: issue 3, issue 14; cli.md §10.4 steps 3-5; protocol.md §2.7, §5; docs/log-api.md;
ADR 0007, 0012.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from vega.client.logclient import LogClient, LookupAnswer
from vega.client.logstate import LogState, RememberedCheckpoint
from vega.core import merkle, tlog
from vega.core.checkpoint import parse_checkpoint
from vega.core.hashes import format_nix_hash
from vega.core.narinfo import NarInfo, fingerprint
from vega.core.note import ALG_ED25519, VerifierKey, parse_note, verify_note
from vega.core.signing import PublicKey, is_valid_signature
from vega.errors import FormatError, LogForkError, VerificationError

__all__ = ["Check", "LogVerdict", "Transparency", "verify_in_log"]


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
class LogVerdict:
    """What the log said: the evidence, and the ``checkpoint``, ``promotion``, ``revocation`` checks."""

    transparency: Transparency
    """The evidence (cli.md §10.4 fields plus fork, revocation and fallback)."""
    checks: tuple[Check, ...]
    """The three checks, in order."""
    notices: tuple[str, ...]
    """Lines for the user (the original-endpoint fallback)."""


class _LogRun:
    """The mutable state of one log verification."""

    def __init__(
        self,
        log: LogClient,
        state: LogState,
        hash_part: str,
        log_keys: Sequence[VerifierKey],
        max_scan: int,
        original_servers: set[str],
    ) -> None:
        self.log = log
        self.state = state
        self.hash_part = hash_part
        self.base_url = log.base_url
        self.log_keys = log_keys
        self.max_scan = max_scan
        self.original_servers = original_servers
        self.checks: list[Check] = []
        self.notices: list[str] = []


def verify_in_log(
    log: LogClient,
    state: LogState,
    info: NarInfo,
    key: PublicKey,
    *,
    log_keys: Sequence[VerifierKey] = (),
    max_scan: int = 10000,
    original_servers: set[str] | None = None,
) -> LogVerdict:
    """Check the build of ``info`` in the log served by ``log``, advancing ``state``.

    Args:
        log: the log's read API (the cache base).
        state: the remembered checkpoints.
        info: the narinfo (its signature already verified under ``key``).
        key: the user's shared key (``vega-cache-1``); it signs the STHs.
        log_keys: checkpoint-note verifier keys the user trusts (optional).
        max_scan: entries the original algorithm may scan.
        original_servers: bases known to lack ``/log/lookup`` (shared across a run; updated).

    Raises:
        ApiError, FormatError, NetworkError: the log could not be read (the caller reports it).
    """
    run = _LogRun(
        log,
        state,
        info.store_path.hash_part,
        log_keys,
        max_scan,
        original_servers if original_servers is not None else set(),
    )
    t = _check_log(run, info, key)
    return LogVerdict(transparency=t, checks=tuple(run.checks), notices=tuple(run.notices))


def _check_log(run: _LogRun, info: NarInfo, key: PublicKey) -> Transparency:
    logc = run.log
    known_original = run.base_url in run.original_servers
    lookup = None if known_original else logc.lookup(run.hash_part)
    if lookup is None:
        run.original_servers.add(run.base_url)
        return _check_log_legacy(run, logc, info, key)

    # 3. the checkpoint: signed, and consistent with what this machine remembers
    t, head = _lookup_head(run, lookup, key)
    if head is not None and _older_than_remembered(run, head):
        # NOTE: a concurrent verification may have remembered a checkpoint newer than the one this
        # lookup was answered at. The older checkpoint is never accepted: ask once for the current
        # one; a server that rolled back answers older again and is refused by _remember.
        fresh = logc.lookup(run.hash_part)
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
    statement = _event_statement(run, lookup, head, key)
    if t.revoked:
        return t
    if statement is not None:
        # NOTE: the answer claimed completeness and the claim does not hold up: never "unrevoked".
        run.checks[-1] = Check(name="revocation", ok=False, detail=f"unknown: {statement}")
        return replace(t, revoked=True)
    if lookup.truncated and lookup.events is None:
        # NOTE: a revocation may sit among the entries not returned; never report "unrevoked" then.
        run.checks[-1] = Check(
            name="revocation", ok=False, detail=f"{note}; a revocation cannot be ruled out"
        )
        t = replace(t, revoked=True)
    elif lookup.events is not None:
        run.checks[-1] = Check(
            name="revocation",
            ok=True,
            detail=f"no revocation in the log (signed list of {len(lookup.events.indexes)} "
            f"promotion and revocation entries at size {head.size})",
        )
    return t


def _event_statement(
    run: _LogRun, lookup: LookupAnswer, head: RememberedCheckpoint, key: PublicKey
) -> str | None:
    """Check the lookup's signed list of promotions and revocations (ADR 0012); None when it holds.

    It holds when there is none, or when it is signed by the user's key for this build at the
    trusted checkpoint, and names exactly the promotion and revocation entries returned, each
    proven included. Otherwise the reason.
    """
    events = lookup.events
    if events is None:
        return None
    message = tlog.events_message(run.hash_part, head.size, head.root_hash, events.indexes)
    if not is_valid_signature(key, message, events.signature):
        return f"the log's list of promotions and revocations is not signed by {key.name}"
    returned = {e.index: e for e in lookup.entries if _is_event(e.data)}
    if set(events.indexes) != set(returned):
        return "the log's signed list of promotions and revocations does not match the entries it sent"
    for e in returned.values():
        try:
            merkle.verify_inclusion(merkle.leaf_hash(e.data), e.index, head.size, e.proof, head.root_hash)
        except VerificationError:
            return f"entry #{e.index} has an invalid inclusion proof"
    return None


def _lookup_head(
    run: _LogRun, lookup: LookupAnswer, key: PublicKey
) -> tuple[Transparency, RememberedCheckpoint | None]:
    """The trusted tree head of a lookup answer, or None (the reason in ``note``)."""
    try:
        sth: tlog.SignedTreeHead | None = tlog.SignedTreeHead.from_json(lookup.sth)
    except FormatError:
        sth = None
    sth_ok = sth is not None and _sth_ok(sth, key)
    t = Transparency(sth_verified=sth_ok, scanned=len(lookup.entries))
    try:
        head = _checkpoint_head(lookup.checkpoint_note, sth, sth_ok, key, run.log_keys)
    except (FormatError, VerificationError) as e:
        return replace(t, note=e.message), None
    return replace(
        t, sth_verified=True, log_id=head.origin, size=head.size, root_hex=head.root_hash.hex()
    ), head


def _older_than_remembered(run: _LogRun, head: RememberedCheckpoint) -> bool:
    remembered = run.state.load(head.origin)
    return remembered is not None and head.size < remembered.size


def _check_log_legacy(run: _LogRun, logc: LogClient, info: NarInfo, key: PublicKey) -> Transparency:
    """The original's algorithm (cli.md §10.4 steps 3-5), with the remembered-checkpoint check added."""
    sth = tlog.SignedTreeHead.from_json(logc.sth())
    sth_ok = _sth_ok(sth, key)
    remembered = run.state.load(_sth_identity(key)) if sth_ok else None
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
        if not t.consistency_ok:
            # As on the new path: after a fork nothing the log says is evidence (issue 14).
            _fail_rest(run, "the log is not consistent with the remembered checkpoint")
            return replace(t, note=fallback)
    else:
        run.checks.append(Check(name="checkpoint", ok=False, detail="the STH signature does not verify"))
    limit = min(max(run.max_scan, 0) or 10000, size)
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
    run: _LogRun,
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


def _fail_rest(run: _LogRun, why: str) -> None:
    run.checks.append(Check(name="promotion", ok=False, detail=f"not checked: {why}"))
    run.checks.append(Check(name="revocation", ok=False, detail=f"not checked: {why}"))


def _remember(run: _LogRun, logc: LogClient, head: RememberedCheckpoint, t: Transparency) -> Transparency:
    """Advance the remembered checkpoint, demanding a consistency proof; a fork is never softened."""

    def prove(old: RememberedCheckpoint) -> None:
        if old.size == 0:
            return  # every tree extends the empty tree
        answer = logc.consistency(old.size, head.size)
        merkle.verify_consistency(old.size, head.size, answer.proof, old.root_hash, head.root_hash)

    try:
        old = run.state.advance(head, prove)
    except LogForkError as e:
        run.checks.append(Check(name="checkpoint", ok=False, detail=e.message))
        remembered = run.state.load(head.origin)
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


def _is_event(data: bytes) -> bool:
    """A promotion or revocation of any build (as leniently as the server indexes them)."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("event") in ("promotion", "revocation")


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
