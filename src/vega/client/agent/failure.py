"""Why a reproduction failed: a class and a redacted excerpt for the failure report.

The class is read from the failing build's log (nix's stderr), first match wins:
``out-of-space``, ``timeout``, ``impure-host-path``, ``sandbox-denied``, ``network``, ``eval``,
else ``other``. The excerpt is the end of the log (the build's own output and nix's ``error:`` lines), with
the known secret shapes and the job's own tokens redacted **before** it is cut to 2,048 UTF-8
bytes (so truncation can never leave half a secret visible).

Spec: changes-0.19.md, last section; agent.md §8 (redaction).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from vega.client.agent.secrets import redact_known_secrets
from vega.core.api import MAX_EXCERPT_BYTES, FailureClass

__all__ = ["classify_failure", "excerpt"]

_RULES: Final[tuple[tuple[FailureClass, re.Pattern[str]], ...]] = (
    ("out-of-space", re.compile(r"no space left on device|disk quota exceeded|out of disk space", re.I)),
    (
        "timeout",
        re.compile(
            r"timed out after|build timed out|timeout exceeded|exceeded the (?:maximum )?(?:build )?time",
            re.I,
        ),
    ),
    (
        "impure-host-path",
        re.compile(
            r"access to (?:absolute )?path '?/(?!nix/store)[^ ']*'? is forbidden"
            r"|(?:^|[\s'\"])/(?:usr|bin|sbin|lib|lib64|opt|etc|home|var)/[^\s:'\"]*:"
            r" (?:No such file|not found)",
            re.I | re.M,
        ),
    ),
    (
        "sandbox-denied",
        re.compile(
            r"operation not permitted|permission denied|sandbox(?:ing)? (?:is )?(?:denied|violation)", re.I
        ),
    ),
    (
        "network",
        re.compile(
            r"could not resolve host|couldn't resolve host|temporary failure in name resolution"
            r"|network is unreachable|connection refused|unable to download|failed to connect"
            r"|unable to access 'https?:|HTTP error \d{3}",
            re.I,
        ),
    ),
    (
        "eval",
        re.compile(
            r"does not provide attribute|undefined variable|syntax error|while evaluating"
            r"|error: attribute '[^']*' missing|infinite recursion|cannot coerce|evaluation aborted",
            re.I,
        ),
    ),
)


def classify_failure(log: str) -> FailureClass:
    """The failure's class from the build log (first rule that matches, else ``other``)."""
    for name, pattern in _RULES:
        if pattern.search(log):
            return name
    return "other"


def excerpt(log: str, secrets: Sequence[str] = (), limit: int = MAX_EXCERPT_BYTES) -> str:
    """A redacted excerpt of at most ``limit`` UTF-8 bytes (redaction first, then the cut)."""
    text = log
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = redact_known_secrets(text).strip()
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    cut = data[len(data) - limit + 3 :]  # room for a leading "…" (3 bytes)
    return "\u2026" + cut.decode("utf-8", "ignore")
