"""Measuring helpers shared by the benchmarks: wall time and peak memory of a command.

Every benchmark prints its figure as a ratio against a peer measured in the same run
(usually real Nix), never as an absolute time alone.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    """One measured run of a command."""

    seconds: float
    peak_rss_mb: float


def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
    stdin: int | None = None,
) -> Run:
    """Run ``argv`` once; return wall time and the child's peak resident memory."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), env=dict(env) if env is not None else None, stdout=stdout, stdin=stdin
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}")
    return Run(seconds=elapsed, peak_rss_mb=usage.ru_maxrss / 1024)


def best_of(n: int, argv: Sequence[str], **kwargs: object) -> Run:
    """The fastest of ``n`` runs (and the largest peak memory seen)."""
    runs = [run_command(argv, **kwargs) for _ in range(n)]  # type: ignore[arg-type]
    return Run(seconds=min(r.seconds for r in runs), peak_rss_mb=max(r.peak_rss_mb for r in runs))


def report(name: str, ours: Run, peer: Run, peer_name: str, limit: float | None = None) -> str:
    """One line: our time, the peer's, the ratio, our peak memory, and the limit verdict."""
    ratio = ours.seconds / peer.seconds if peer.seconds > 0 else float("inf")
    verdict = "" if limit is None else ("  ok" if ratio <= limit else f"  OVER the {limit}x limit")
    return (
        f"{name}: vega {ours.seconds:.3f}s vs {peer_name} {peer.seconds:.3f}s = {ratio:.2f}x"
        f" (peak {ours.peak_rss_mb:.0f} MB){verdict}"
    )


def write_readme_section(readme: Path, section: str, body: str) -> None:
    """Replace (or append) the ``section`` heading's part of ``readme`` with ``body``, leaving the rest alone.

    ``body`` starts with the ``section`` heading line itself; the part replaced runs to the next
    ``## `` heading (or the end of the file).
    """
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    start = text.find(section + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(section))
        text = text[:start] + body + ("" if end < 0 else text[end:])
    readme.write_text(text)
