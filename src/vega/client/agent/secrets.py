"""Client-side secret scan of store paths about to be published.

Six detectors (ASCII word boundaries, first match per detector per line), no entropy
heuristics. A finding carries the kind, the line and a redacted preview (at most the first six
characters of the match and ``…``); the secret itself is never printed, and the file path is
redacted the same way before it is shown (a derivation may name a file after a token).

The walk does not follow symlinks, skips empty files, files over 2 MiB and binary files (a NUL
byte), and stops after 50,000 files or 1,000 findings.

Spec: agent.md §8. This implementation scans every novel path about to be published (not only
the top outputs) and can deny the publish (``secret-scan: deny``, docs/adr/0016).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DETECTORS",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_FINDINGS",
    "FileFinding",
    "Finding",
    "redact",
    "redact_known_secrets",
    "scan_for_secrets",
    "scan_store_path",
    "scan_tree",
]

DETECTORS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("private-key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----", re.ASCII)),
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", re.ASCII)),
    ("github-token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", re.ASCII)),
    ("slack-token", re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b", re.ASCII)),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b", re.ASCII)),
    ("stripe-key", re.compile(r"\bsk_live_[0-9a-zA-Z]{24,}\b", re.ASCII)),
)
"""``(kind, pattern)`` in table order."""

MAX_FILE_BYTES: Final = 2 * 1024 * 1024
MAX_FILES: Final = 50_000
MAX_FINDINGS: Final = 1_000


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector's first match on one line."""

    kind: str
    """The detector."""
    line: int
    """1-based line number."""
    preview: str
    """The redacted match."""


@dataclass(frozen=True, slots=True)
class FileFinding:
    """A finding in a file of a scanned tree."""

    file: str
    """The file's path, already redacted."""
    finding: Finding
    """What was found."""

    def message(self) -> str:
        """The warning text (agent.md §8): names kind, file, line and preview, never the secret."""
        f = self.finding
        return (
            f"possible {f.kind} in {self.file}:{f.line} ({f.preview}). This output is about to be"
            " published to a cache from which it cannot be removed. If this is a false positive,"
            " set `secret-scan: false` in vega.yaml to silence the scan."
        )


def redact(match: str) -> str:
    """``***`` for a match of at most 8 characters, else its first 6 characters and ``…``."""
    return "***" if len(match) <= 8 else match[:6] + "\u2026"


def redact_known_secrets(text: str) -> str:
    """Replace every detector's matches in ``text`` with their redaction."""
    for _kind, pattern in DETECTORS:
        text = pattern.sub(lambda m: redact(m.group(0)), text)
    return text


def scan_for_secrets(text: str, limit: int = MAX_FINDINGS) -> list[Finding]:
    """Each detector's first match per line of ``text``, at most ``limit`` findings."""
    out: list[Finding] = []
    for number, line in enumerate(text.split("\n"), start=1):
        for kind, pattern in DETECTORS:
            m = pattern.search(line)
            if m is not None:
                out.append(Finding(kind, number, redact(m.group(0))))
                if len(out) >= limit:
                    return out
    return out


def _files(root: str) -> Iterator[str]:
    try:
        st = os.lstat(root)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode):
        yield root
        return
    if not stat.S_ISDIR(st.st_mode):
        return  # a symlink root is not followed
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    yield entry.path
            except OSError:
                continue
        stack.extend(reversed(subdirs))


def scan_store_path(root: str, shown_root: str | None = None) -> list[FileFinding]:
    """The findings of :func:`scan_tree`."""
    return scan_tree(root, shown_root)[0]


def scan_tree(root: str, shown_root: str | None = None) -> tuple[list[FileFinding], int]:
    """Scan the tree at ``root``: the findings and how many files were scanned.

    File paths in findings are shown under ``shown_root`` and redacted.

    Args:
        root: where the tree is on disk.
        shown_root: the name to print instead of ``root`` (the store path, when ``root`` is its
            location in a chroot store); ``None`` shows ``root``.
    """
    findings: list[FileFinding] = []
    scanned = 0
    for path in _files(root):
        if scanned >= MAX_FILES or len(findings) >= MAX_FINDINGS:
            break
        try:
            size = os.lstat(path).st_size
            if size == 0 or size > MAX_FILE_BYTES:
                continue
            with open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError:
            continue
        scanned += 1
        if b"\0" in data:
            continue
        text = data.decode("utf-8", "replace")
        shown = path if shown_root is None else shown_root + path[len(root) :]
        name = redact_known_secrets(shown)
        for finding in scan_for_secrets(text, MAX_FINDINGS - len(findings)):
            findings.append(FileFinding(name, finding))
    return findings, scanned
