"""The whole Vega exception tree, readable in one screen.

::

    VegaError                      base; .message, .next_steps (the spec's "Try:" lines)
    ├── FormatError(ValueError)    input is not well-formed: store path, narinfo, NAR, JSON, key text
    ├── VerificationError          evidence does not check out: signature, tree head, proof, hash
    │   └── LogForkError           a log is not consistent with a checkpoint we remembered
    ├── ConfigError                settings or credential missing or invalid; bad flag combinations
    ├── NetworkError               transport failure after retries (the library error kept as __cause__)
    ├── ApiError                   the control plane answered non-2xx: .status, .error
    │   └── AuthError              401/403 after the one forced re-mint
    ├── NixError                   a tool exited non-zero: .argv, .returncode, .stderr_tail
    └── StorageError               the server's database or blob store failed (never shown to clients)

Rules (house-style.md §4.6): ``parse_*`` raises FormatError, ``verify_*`` raises
VerificationError, adapters translate library exceptions at the boundary.

Spec: cli.md §1.4 (safe-error rule), §18 (exit codes); protocol.md §4.0 (error contract).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ApiError",
    "AuthError",
    "ConfigError",
    "FormatError",
    "LogForkError",
    "NetworkError",
    "NixError",
    "StorageError",
    "VegaError",
    "VerificationError",
]


class VegaError(Exception):
    """Base of every error Vega raises on purpose."""

    def __init__(self, message: str, *, next_steps: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        """What went wrong, lower-case, no trailing period."""
        self.next_steps = tuple(next_steps)
        """Commands or actions to print under ``Try:``."""


class FormatError(VegaError, ValueError):
    """Input is not well-formed."""


class VerificationError(VegaError):
    """Evidence does not check out."""


class LogForkError(VerificationError):
    """A transparency log is not consistent with a checkpoint we already verified."""


class ConfigError(VegaError):
    """Settings or a credential are missing or invalid."""


class NetworkError(VegaError):
    """A transport failure, after retries."""


class ApiError(VegaError):
    """The control plane answered with a non-2xx status."""

    def __init__(
        self, message: str, *, status: int, error: str | None = None, next_steps: Sequence[str] = ()
    ) -> None:
        super().__init__(message, next_steps=next_steps)
        self.status = status
        """The HTTP status code."""
        self.error = error
        """The ``error`` string of the body, when there was one."""


class AuthError(ApiError):
    """Authentication or authorization failed."""


class NixError(VegaError):
    """A Nix command exited non-zero."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        stderr: bytes | str,
        *,
        next_steps: Sequence[str] = (),
        timed_out: bool = False,
    ) -> None:
        text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
        tail = _whole_lines_tail(text.strip(), 2000)
        block = _error_block(tail)
        program = argv[0] if argv else "nix"
        if len(argv) >= 2 and not argv[1].startswith("-"):
            program = f"{argv[0]} {argv[1]}"
        super().__init__(
            f"{program} exited with status {returncode}" + (f": {block}" if block else ""),
            next_steps=next_steps,
        )
        self.argv = tuple(argv)
        """The command that failed."""
        self.returncode = returncode
        """Its exit status."""
        self.stderr_tail = tail
        """The last part of what it wrote to stderr."""
        self.timed_out = timed_out
        """The runner's timer stopped it (nix exits 1 on SIGTERM, so the status cannot tell)."""


def _whole_lines_tail(text: str, limit: int) -> str:
    """The last lines of ``text`` that fit in ``limit`` characters, never a line cut in two.

    A single last line longer than ``limit`` is kept whole (it is the line that matters).
    """
    out: list[str] = []
    size = 0
    for line in reversed(text.splitlines()):
        if out and size + len(line) + 1 > limit:
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(reversed(out))


def _error_block(tail: str, max_lines: int = 30) -> str:
    """What matters in a nix stderr tail: from its last ``error:`` line on, whole lines.

    Nix prints its failure as ``error: <what>`` followed by indented detail (the builder's last
    log lines, the ``nix log`` hint); build logs before it are noise here. Without an ``error:``
    line, the last ``max_lines`` lines. The leading ``error: `` is dropped (the CLI adds its own).
    """
    lines = tail.splitlines()
    starts = [k for k, line in enumerate(lines) if line.startswith("error:")]
    block = lines[starts[-1] :] if starts else lines[-max_lines:]
    if len(block) > max_lines:
        block = [*block[:1], "  ...", *block[-(max_lines - 2) :]]
    if block and block[0].startswith("error:"):
        block[0] = block[0].removeprefix("error:").lstrip()
    return "\n".join(block)


class StorageError(VegaError):
    """The server's metadata database or blob store failed."""
