"""``vega-reproduce``: rebuild a locked installable independently and attest what came out.

One target (agent.md §10.2): the containment check for a sub-flake, the locked installable
(§10.3; through a source mirror when ``VEGA_GITHUB_MIRRORS`` names one), ``nix build`` in pure
evaluation with the sandbox on and Vega removed from the substituters (the rebuild must not
depend on what it checks), then per output: the expectation lines, the upload through the
pipeline shared with ``vega push``, and the attestation with the provenance attr. A failed
build is reported to ``/api/repro/dispatch-failed`` with the candidate hash, the failure's class
and a redacted excerpt.

Pull mode (``--from-queue``): claim candidates from ``GET /api/repro/queue`` and reproduce each.

Spec: agent.md §10, §11; protocol.md §4.5, §8; changes-0.19.md (failure classes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from vega.client.agent.failure import classify_failure, excerpt
from vega.client.agent.flakeref import Mirrors, check_contained, github_owner_repo
from vega.client.agent.session import Session
from vega.client.agent.settings import Target, check_target
from vega.client.nix import PathInfo, parse_path_info
from vega.client.push import PackedNar, PipelineHooks, PushOptions, attest_body, upload_pipeline
from vega.core.api import AttestResult, DispatchFailedBody, DispatchReason, FailureClass, ReproQueueResponse
from vega.core.hashes import HashAlgorithm, parse_nix_hash
from vega.errors import ConfigError, FormatError, NixError, VegaError

__all__ = ["ReproOutcome", "reproduce_one", "reproduce_queue", "substituters_without"]

_UNRESOLVABLE: Final = re.compile(r"^\s*error:[^\n]*does not provide attribute", re.I | re.M)
_REV40: Final = re.compile(r"^[0-9a-fA-F]{40}$")


@dataclass(slots=True)
class ReproOutcome:
    """What one reproduction found."""

    outputs: int = 0
    agreed: int = 0
    diverged: int = 0


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def substituters_without(session: Session, control_plane: str) -> str:
    """The configured substituters minus every one on the control plane's origin.

    If nix cannot say what is configured, none at all (the rebuild must never substitute from
    Vega, and an unknown list might name it).
    """
    try:
        doc = json.loads(session.nix.run("show-config", "--json"))
        value = doc["substituters"]["value"]
        configured = [str(s) for s in value] if isinstance(value, list) else str(value).split()
    except (NixError, ValueError, KeyError, TypeError):
        return ""
    vega = _origin(control_plane)
    return " ".join(s for s in configured if _origin(s) != vega)


def _contain(session: Session, mirrors: Mirrors, target: Target) -> None:
    dir_ = target.dir or ""
    if github_owner_repo(target.flake_ref) is None or not _REV40.fullmatch(target.rev):
        raise ConfigError(
            f"subflake dir {target.dir!r} needs a canonical github:<owner>/<repo> ref and a 40-hex rev"
        )
    expr = mirrors.fetch_tree_expr(target.flake_ref, target.rev) or ""
    src = session.nix.run("eval", *session.nix.options, "--raw", "--expr", expr).decode().strip()
    if not src.startswith("/nix/store/"):
        raise ConfigError(f"fetchTree gave {src[:120]!r}, not a store path")
    check_contained(session.store_root + src, dir_)


def _report(session: Session, target: Target, installable: str, error: NixError) -> None:
    """Best effort: ``POST /api/repro/dispatch-failed`` with the reason, class and excerpt."""
    if target.hash is None:
        return
    probe_log = ""
    try:
        session.probe_nix.run(
            "eval", *session.nix.options, "--raw", "--no-write-lock-file", "--", f"{installable}.outPath"
        )
    except NixError as e:
        probe_log = e.stderr_tail
    except VegaError:
        probe_log = ""
    unresolvable = _UNRESOLVABLE.search(probe_log) is not None
    reason: DispatchReason = "unresolvable" if unresolvable else "build-failed"
    diagnosis: FailureClass = (
        "eval" if unresolvable else "timeout" if error.timed_out else classify_failure(error.stderr_tail)
    )
    text = excerpt(probe_log if unresolvable else error.stderr_tail, session.tokens.secrets())
    body = DispatchFailedBody(target.hash, reason, diagnosis, text)
    suffix = ""
    try:
        session.uploader.post("/api/repro/dispatch-failed", body.to_json(), "report reproduction failure")
    except VegaError:
        suffix = " (report failed to send)"
    session.output.line(f"Reported {reason} for {target.hash} ({diagnosis}){suffix}")


def _expected_nar_hash(text: str) -> str:
    try:
        return str(parse_nix_hash(text, HashAlgorithm.SHA256))
    except FormatError:
        return text


def reproduce_one(session: Session, mirrors: Mirrors, control_plane: str, target: Target) -> ReproOutcome:
    """Reproduce one target (agent.md §10.2 steps 3-8).

    Raises:
        ConfigError: the target is unsafe or its sub-flake escapes the source.
        VegaError: the build failed (after the failure report), or an upload or attestation did.
    """
    check_target(target)
    out = session.output
    if target.dir:
        _contain(session, mirrors, target)
    installable = mirrors.installable(target.flake_ref, target.attr, target.rev, target.dir)
    out.line(f"Reproducing {installable} ...")
    options = [
        "--option", "substituters", substituters_without(session, control_plane),
        "--option", "sandbox", "true",
    ]  # fmt: skip
    try:
        built = session.build_nix.build(installable, options)
        outputs = [p.absolute for p in built]
        infos = parse_path_info(session.nix.run("path-info", "--json", *session.nix.options, "--", *outputs))
        closure = parse_path_info(
            session.nix.run("path-info", "--json", "--recursive", *session.nix.options, "--", *outputs)
        )
    except NixError as e:
        _report(session, target, installable, e)
        what = "timed out" if e.timed_out else f"exited with code {e.returncode}"
        raise VegaError(
            f"reproduction of {installable} failed: nix {e.argv[1] if len(e.argv) > 1 else ''} {what}"
        ) from None
    expected_hash = _expected_nar_hash(target.expect_nar_hash) if target.expect_nar_hash else None
    outcome = ReproOutcome(outputs=len(infos))
    for info in infos:
        path = info.path.absolute
        if target.expect_store_path and target.expect_store_path != path:
            out.line(f"[mismatch] built {path}, expected {target.expect_store_path}")
        if expected_hash is not None:
            if str(info.nar_hash) == expected_hash:
                out.line(f"[reproduced] {path}")
            else:
                outcome.diverged += 1
                out.line(f"[DIVERGED] {path}")
                out.line(f"  expected {expected_hash}")
                out.line(f"  rebuilt  {info.nar_hash}")

    tops = {info.path for info in infos}
    # Every dependency this machine rebuilt is reproduced too (a shared-tier path needs its
    # closure in the shared tier, ADR 0011); substituted ones (not ``ultimate``) are not ours.
    rebuilt = dependencies_first([i for i in closure if i.ultimate and i.path not in tops])

    def publish(info: PathInfo, packed: PackedNar) -> AttestResult:
        attr = target.attr if info.path in tops else ""
        return session.uploader.attest(attest_body(info, packed, attr=attr))

    def done(info: PathInfo, _packed: PackedNar, result: AttestResult, _resumed: bool) -> None:
        reason = result.decision.shared.reason
        if info.path not in tops:
            return
        if result.published_shared:
            outcome.agreed += 1
            out.line(f"[shared] {info.path.absolute} ({reason})")
        else:
            out.line(f"[pending] {info.path.absolute} (shared tier: {reason})")

    upload_pipeline(
        session.uploader,
        [*rebuilt, *infos],
        PushOptions(jobs=1, pack_slots=1),
        session.work_dir,
        PipelineHooks(publish=publish, done=done),
        store_root=session.store_root,
    )
    if rebuilt:
        out.line(f"Also attested {len(rebuilt)} dependency path(s) rebuilt here.")
    out.line(f"Done. {outcome.agreed} promoted, {outcome.diverged} diverged, of {outcome.outputs} output(s).")
    return outcome


def dependencies_first(infos: list[PathInfo]) -> list[PathInfo]:
    """``infos`` ordered so that each path comes after the ones it refers to (among ``infos``)."""
    by_path = {i.path: i for i in infos}
    ordered: list[PathInfo] = []
    placed: set[object] = set()
    entered: set[object] = set()  # a reference cycle (never from Nix) cannot loop forever
    for root in sorted(by_path, key=str):
        stack: list[tuple[PathInfo, bool]] = [(by_path[root], False)]
        while stack:
            info, children_done = stack.pop()
            if info.path in placed:
                continue
            if children_done:
                placed.add(info.path)
                ordered.append(info)
                continue
            if info.path in entered:
                continue
            entered.add(info.path)
            stack.append((info, True))
            for ref in info.references:
                if ref in by_path and ref not in placed and ref != info.path:
                    stack.append((by_path[ref], False))
    return ordered


def reproduce_queue(session: Session, mirrors: Mirrors, control_plane: str, limit: int) -> int:
    """Claim up to ``limit`` candidates from ``GET /api/repro/queue`` and reproduce each.

    Returns:
        2 when any output diverged, else 1 when any candidate failed, else 0.

    Raises:
        VegaError: the queue could not be read.
    """
    out = session.output
    doc = session.probe.get_json(f"{control_plane}/api/repro/queue?limit={max(1, min(limit, 1000))}")
    queue = ReproQueueResponse.from_json(doc)
    out.line(f"Queue: {len(queue.candidates)} candidate(s) awaiting reproduction.")
    diverged = failed = 0
    for c in queue.candidates:
        target = Target(
            flake_ref=c.flake_ref,
            attr=c.attr,
            rev=c.rev,
            dir=c.dir,
            expect_store_path=c.store_path,
            expect_nar_hash=c.nar_hash,
            hash=c.hash,
        )
        try:
            outcome = reproduce_one(session, mirrors, control_plane, target)
        except VegaError as e:
            failed += 1
            out.log(f"error: {c.store_path}: {e.message}")
            continue
        diverged += outcome.diverged
    out.line(f"Queue done: {len(queue.candidates)} candidate(s), {diverged} diverged, {failed} failed.")
    return 2 if diverged else (1 if failed else 0)
