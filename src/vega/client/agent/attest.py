"""``vega-attest``: build what the job declares, publish the novel closure, attest every output.

Order of operations (agent.md §4): settings and the OIDC variables are taken before anything
else; ``vega.yaml`` is read and validated; builds are resolved; foreign builds are warned about;
the first token is minted; then per build: ``nix build`` (one evaluation), the closure, the
skip-upstream partition, the ``VEGA_EXCLUDE``/``VEGA_MAX_NAR_BYTES`` exclusions, the secret scan
of every path about to be published, and the upload pipeline shared with ``vega push``
(:func:`vega.client.push.upload_pipeline`) with the resume probe, ``/api/cache/attest`` and one
result line per path; the stall watchdog watches it. At the end: ``Done.`` and the host-config
lines.

Spec: agent.md §4, §4.1, §5, §7, §8, §9; changes-0.19.md.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vega.client.agent.config import Build, VegaConfig, flatten_flake_show, parse_config, resolve_builds
from vega.client.agent.flakeref import own_repo_subflake_dir
from vega.client.agent.secrets import scan_store_path
from vega.client.agent.session import Session
from vega.client.agent.settings import AttestSettings, upload_concurrency
from vega.client.agent.watchdog import Watchdog, human_bytes
from vega.client.nix import PathInfo
from vega.client.push import (
    PackedNar,
    PipelineHooks,
    PushOptions,
    attest_body,
    fetch_key,
    host_config_lines,
    probe_all,
    upload_pipeline,
)
from vega.core.api import AttestResult, nar_url_for
from vega.core.hashes import NixHash
from vega.errors import ConfigError, NixError, VegaError

__all__ = ["AttestRun", "cache_build", "load_config", "run_attest"]


def load_config(workspace: str) -> VegaConfig | None:
    """``<workspace>/vega.yaml``: absent means no config; unreadable or invalid is fatal.

    Raises:
        ConfigError: the file cannot be read, or does not validate.
    """
    path = Path(workspace) / "vega.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"vega.yaml: cannot read {path}: {e}") from None
    return parse_config(text)


@dataclass(slots=True)
class AttestRun:
    """Counters of one run (tests read them)."""

    promoted: int = 0
    total: int = 0
    results: dict[str, AttestResult] = field(default_factory=dict)
    """Store path -> the server's answer."""


def _result_line(path: str, result: AttestResult) -> str:
    reason = result.decision.shared.reason
    if result.published_shared:
        return f"{'[shared]':<12}{path} ({reason})"
    if result.published_tenant:
        return f"{'[tenant]':<12}{path} (published; shared tier: {reason})"
    return f"{'[pending]':<12}{path} (shared tier: {reason})"


def _exclusions(
    session: Session,
    settings: AttestSettings,
    paths: Sequence[PathInfo],
    top: set[str],
) -> list[PathInfo]:
    """Drop paths matched by ``VEGA_EXCLUDE`` or over ``VEGA_MAX_NAR_BYTES``; log every skip."""
    out = session.output
    used: set[str] = set()
    keep: list[PathInfo] = []
    skipped: list[tuple[PathInfo, str]] = []
    for info in paths:
        name = info.path.name
        hit = next((p for p in settings.exclude if fnmatch.fnmatchcase(name, p)), None)
        if hit is not None:
            used.add(hit)
            skipped.append((info, f"VEGA_EXCLUDE {hit}"))
        elif settings.max_nar_bytes is not None and info.nar_size > settings.max_nar_bytes:
            skipped.append((info, f"NAR {human_bytes(info.nar_size)} > VEGA_MAX_NAR_BYTES"))
        else:
            keep.append(info)
    for pattern in settings.exclude:
        if pattern not in used:
            out.warn(f"VEGA_EXCLUDE pattern {pattern} matched no path of this build")
    if skipped:
        total = sum(i.nar_size for i, _ in skipped)
        out.line(
            f"Excluded {len(skipped)} path(s) ({human_bytes(total)} of NAR), neither uploaded nor attested:"
        )
        for info, why in skipped:
            out.line(f"  {info.path.absolute} ({why})")
            if info.path.absolute in top:
                out.warn(
                    f"excluded {info.path.absolute}, an output of this build: it is not attested"
                    " and loses its provenance"
                )
    return keep


def _secret_scan(session: Session, paths: Sequence[PathInfo], mode: str) -> None:
    if mode == "off":
        return
    found = 0
    for info in paths:
        for finding in scan_store_path(session.store_root + info.path.absolute, info.path.absolute):
            found += 1
            session.output.warn(finding.message())
    if found and mode == "deny":
        raise VegaError(
            f"secret scan: {found} possible secret(s) in paths about to be published; nothing was uploaded",
            next_steps=[
                "remove the secret from the build output",
                "or, if these are false positives, set `secret-scan: true` (warn) or `false` in vega.yaml",
            ],
        )


def cache_build(
    session: Session,
    settings: AttestSettings,
    config: VegaConfig | None,
    build: Build,
    sub_dir: str | None,
    resume_base: str | None,
    substituters: Sequence[str],
    trusted_keys: Sequence[str],
    run: AttestRun,
) -> None:
    """One build (agent.md §4.1).

    Raises:
        VegaError: the build, a probe-independent step, an upload or an attestation failed.
    """
    out = session.output
    out.line(f"Building {build.installable} ...")
    extra: list[str] = []
    if substituters:
        extra += ["--extra-substituters", " ".join(substituters)]
    if trusted_keys:
        extra += ["--extra-trusted-public-keys", " ".join(trusted_keys)]
    try:
        outputs = session.build_nix.build(build.installable, extra)
    except NixError as e:
        if e.timed_out and settings.build_timeout_s is not None:
            raise VegaError(f"nix build timed out after {settings.build_timeout_s / 60:g}m") from None
        raise VegaError(f"nix build exited with code {e.returncode}") from None  # its log went to stderr
    closure = session.nix.closure(outputs)
    top = {p.absolute for p in outputs}
    out.line(f"Closure has {len(closure)} path(s).")
    paths = list(closure)
    if settings.skip_upstream:
        upstream = settings.upstream.rstrip("/")
        there = probe_all(session.probe, [f"{upstream}/{i.path.hash_part}.narinfo" for i in paths])
        out.line(f"Skipping {sum(there)} path(s) in {upstream}.")
        paths = [i for i, up in zip(paths, there, strict=True) if not up]
    paths = _exclusions(session, settings, paths, top)
    _secret_scan(session, paths, config.secret_scan if config is not None else "warn")

    watchdog = Watchdog(settings.stall_warn_s, session.output.err, time.monotonic)
    no_continent = config is not None and not config.continent
    resumed: list[str] = []

    def already_uploaded(file_hash: NixHash) -> bool:
        """agent.md §7.2: only a 200 for the compressed object skips the PUT; errors fail open."""
        try:
            return session.probe.head(f"{resume_base}/{nar_url_for(file_hash)}").status == 200
        except VegaError:
            return False

    def publish(info: PathInfo, packed: PackedNar) -> AttestResult:
        is_top = info.path.absolute in top
        attr = build.attr if is_top and build.attr else None
        body = attest_body(info, packed, attr=attr, dir_=sub_dir if attr else None, no_continent=no_continent)
        return session.uploader.attest(body)

    def done(info: PathInfo, _packed: PackedNar, result: AttestResult, was_resumed: bool) -> None:
        watchdog.done(info.path.absolute)
        if was_resumed:
            resumed.append(info.path.absolute)
        if result.published_shared:
            run.promoted += 1
        run.results[info.path.absolute] = result
        out.line(_result_line(info.path.absolute, result))

    hooks = PipelineHooks(
        publish=publish,
        already_uploaded=already_uploaded if resume_base is not None else None,
        stage=lambda info, name: watchdog.stage(info.path.absolute, name),
        uploaded=lambda info, m, t: watchdog.progress(info.path.absolute, m, t),
        done=done,
    )
    options = PushOptions(jobs=upload_concurrency(settings.upload_concurrency, len(paths)))
    watchdog.start()
    try:
        upload_pipeline(
            session.uploader, paths, options, session.work_dir, hooks, store_root=session.store_root
        )
    finally:
        watchdog.stop()
    run.total += len(paths)
    if resumed:
        out.line(
            f"Resumed: {len(resumed)} NAR(s) already uploaded by a prior run;"
            " re-attested without re-uploading."
        )


def run_attest(session: Session, settings: AttestSettings, config: VegaConfig | None) -> AttestRun:
    """Steps 5-15 of agent.md §4 (the session has minted its first token already).

    Raises:
        VegaError: any step failed (the caller prints it and exits 1).
    """
    out = session.output

    def system() -> str:
        return (
            session.nix.run("eval", "--impure", "--raw", "--expr", "builtins.currentSystem").decode().strip()
        )

    def outputs() -> list[str]:
        raw = session.nix.run("flake", "show", "--json", "--", settings.workspace)
        try:
            return flatten_flake_show(json.loads(raw))
        except ValueError:
            raise VegaError("nix flake show --json: output is not JSON") from None

    builds = resolve_builds(config, settings.installable, settings.workspace, system, outputs, out.line)
    if config is not None:
        out.line(f"vega.yaml: building {len(builds)} declared output(s).")
    dirs: list[str | None] = []
    for build in builds:
        sub = own_repo_subflake_dir(build.installable, settings.workspace, settings.repository)
        dirs.append(sub)
        if sub is None:
            out.warn(
                f"{build.installable} is not this repository's flake: its attestation will be recorded as"
                f" github:{settings.repository or '<repository>'}#{build.attr} and cannot be reproduced"
                f" unless the repository's own flake builds that attribute, so it stays at tenant tier."
                f" Build .#{build.attr} instead."
            )
    resume_base = None
    if settings.repository:
        resume_base = f"{settings.url}/tenant/{settings.repository}"
    substituters: list[str] = []
    trusted: list[str] = []
    if resume_base is not None and (settings.reuse_cache or (config is not None and config.reuse_cache)):
        key = fetch_key(session.probe, resume_base)
        if key is not None:
            substituters.append(resume_base)
            trusted.append(key)
            out.line(f"Reusing prior pushes from {resume_base}")
    substituters += settings.extra_substituters
    trusted += settings.extra_trusted_public_keys
    if settings.extra_substituters:
        out.line(f"Extra substituters: {', '.join(settings.extra_substituters)}")
    run = AttestRun()
    for build, sub in zip(builds, dirs, strict=True):
        cache_build(session, settings, config, build, sub, resume_base, substituters, trusted, run)
    out.line(f"Done. {run.promoted}/{run.total} published to the shared cache.")
    if resume_base is not None:
        key = fetch_key(session.probe, resume_base)
        if key is not None:
            out.line("")
            for line in host_config_lines(resume_base, key):
                out.line(line)
    return run
