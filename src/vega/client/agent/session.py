"""What both agents run on: nix (with the OIDC variables stripped), the control plane, output.

Spec: agent.md §6 (nix), §7.3 (the control-plane client), §11 (no OIDC variable reaches a child).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx2

from vega.client.agent.github import warning
from vega.client.agent.oidc import TokenProvider
from vega.client.agent.settings import OidcRequest, child_environ
from vega.client.http import Http, HttpLimits
from vega.client.nix import Nix, SubprocessRunner
from vega.client.upload import UploadClient, UploadLimits

__all__ = ["Output", "Session", "open_session"]


@dataclass(slots=True)
class Output:
    """Line-buffered stdout/stderr shared by worker threads."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def line(self, text: str) -> None:
        """One line on stdout."""
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def log(self, text: str) -> None:
        """One line on stderr (nix's build logs)."""
        with self._lock:
            self.err.write(text + "\n")
            self.err.flush()

    def warn(self, message: str) -> None:
        """One escaped ``::warning::`` line on stderr (agent.md §9)."""
        with self._lock:
            warning(message, self.err)


@dataclass(slots=True, kw_only=True)
class Session:
    """The adapters of one agent run."""

    nix: Nix
    """nix with the store option (if any) on every call; children get no OIDC variable."""
    build_nix: Nix
    """The same, with the build timer (``nix build`` only)."""
    probe_nix: Nix
    """The same, stopped after 120 s (the reproducer's evaluator probe, agent.md §6.4)."""
    uploader: UploadClient
    """The control plane (bearer: the token provider)."""
    probe: Http
    """HEAD/GET probes: 15 s, one try."""
    tokens: TokenProvider
    """The job's OIDC JWTs."""
    output: Output
    """Where lines go."""
    work_dir: Path
    """The run's temp directory."""
    store_root: str
    """Where store paths really are (a chroot store's directory, else empty)."""


def open_session(
    client: httpx2.Client,
    *,
    url: str,
    audience: str,
    request: OidcRequest,
    limits: UploadLimits,
    build_timeout_s: float | None,
    nix_store: str | None,
    work_dir: Path,
    output: Output,
    environ: Mapping[str, str] | None = None,
    nix_program: str = "nix",
    tail_lines: int = 20,
    now_s: Callable[[], float],
) -> Session:
    """Build the adapters; mint the first token at once (fail fast without ``id-token: write``).

    Raises:
        AuthError: the token service variables are missing or the token service refused.
        NetworkError: the token service could not be reached.
    """
    env = child_environ(environ)
    options = ("--store", nix_store) if nix_store else ()
    tokens = TokenProvider(Http(client, HttpLimits(timeout_s=60.0)), request, audience, now_s)
    tokens.get()
    return Session(
        nix=Nix(
            SubprocessRunner(output.log, env=env, tail_lines=tail_lines), program=nix_program, options=options
        ),
        build_nix=Nix(
            SubprocessRunner(output.log, env=env, timeout_s=build_timeout_s, tail_lines=tail_lines),
            program=nix_program,
            options=options,
        ),
        probe_nix=Nix(
            SubprocessRunner(None, env=env, timeout_s=120.0, max_stdout=4 << 20, tail_lines=tail_lines),
            program=nix_program,
            options=options,
        ),
        uploader=UploadClient(client, url, tokens, limits, now_ms=lambda: int(now_s() * 1000)),
        probe=Http(client, HttpLimits(timeout_s=15.0, tries=1)),
        tokens=tokens,
        output=output,
        work_dir=work_dir,
        store_root=nix_store or "",
    )
