"""Terminal output helpers of cli.md §1.1: success, info, warn, fail, key/value, JSON lines.

Colour is decided once per stream: on a TTY, unless ``NO_COLOR`` is set;
``FORCE_COLOR`` turns it on anywhere. ``--json`` output never carries colour.

Every helper renders its text through :func:`vega.core.safetext.safe_text` (JSON through
:func:`~vega.core.safetext.safe_json`) before adding its own colour codes: messages carry
server strings (narinfo fields, key names, logins, error texts), and no server may drive the
terminal (issue 14). One printed message is capped at :data:`LINE_LIMIT` characters.

Spec: cli.md §1.1; issue 14.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from vega.core.safetext import safe_json, safe_text

__all__ = [
    "LINE_LIMIT",
    "MARK",
    "emit_json",
    "fail",
    "info",
    "is_interactive",
    "key_values",
    "safe",
    "success",
    "use_colour",
    "warn",
]

MARK = "\u2726"

LINE_LIMIT = 4000
"""The most characters of one printed message (or one JSON string) that reach the terminal."""

_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_RED = "\x1b[31m"
_GREY = "\x1b[90m"
_RESET = "\x1b[0m"


def use_colour(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether to colour ``stream``: FORCE_COLOR wins, then NO_COLOR, then TTY detection."""
    if environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    if "NO_COLOR" in environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def is_interactive(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether to show a live progress display on ``stream``: a terminal, and not under CI."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and environ.get("CI", "") in ("", "0", "false")


def safe(text: str) -> str:
    """``text`` as every helper here prints it: no controls or invisible characters, capped."""
    return safe_text(text, LINE_LIMIT)


def _paint(text: str, code: str, stream: TextIO, environ: Mapping[str, str]) -> str:
    return f"{code}{text}{_RESET}" if use_colour(stream, environ) else text


def success(message: str, environ: Mapping[str, str], stream: TextIO | None = None) -> None:
    """Print ``✦ <message>`` to stdout, the star in green."""
    out = stream or sys.stdout
    print(f"{_paint(MARK, _GREEN, out, environ)} {safe(message)}", file=out)


def info(message: str, stream: TextIO | None = None) -> None:
    """Print a plain line to stdout."""
    print(safe(message), file=stream or sys.stdout)


def warn(message: str, environ: Mapping[str, str], stream: TextIO | None = None) -> None:
    """Print ``warning: <message>`` to stderr."""
    err = stream or sys.stderr
    print(f"{_paint('warning', _YELLOW, err, environ)}: {safe(message)}", file=err)


def fail(
    message: str,
    environ: Mapping[str, str],
    next_steps: Sequence[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Print ``error: <message>`` and, when given, a blank line, ``Try:`` and each step.

    A message of several lines (a nix error block) keeps its lines, each made safe on its own.
    """
    err = stream or sys.stderr
    first, *rest = message.split("\n") or [""]
    print(f"{_paint('error', _RED, err, environ)}: {safe(first)}", file=err)
    for line in rest[:60]:
        print(safe(line), file=err)
    if next_steps:
        print("", file=err)
        print("Try:", file=err)
        for step in next_steps:
            print(f"  {safe(step)}", file=err)


def key_values(
    rows: Sequence[tuple[str, str]], environ: Mapping[str, str], stream: TextIO | None = None
) -> None:
    """Print aligned ``  key: value`` rows, keys grey."""
    out = stream or sys.stdout
    if not rows:
        return
    rows = [(safe(k), safe(v)) for k, v in rows]
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        label = f"{key}:".ljust(width)
        print(f"  {_paint(label, _GREY, out, environ)} {value}", file=out)


def emit_json(obj: object, stream: TextIO | None = None) -> None:
    """Print one compact JSON object per line, non-ASCII unescaped, every string made safe."""
    out = stream or sys.stdout
    clean = safe_json(obj, LINE_LIMIT)
    out.write(json.dumps(clean, separators=(",", ":"), ensure_ascii=False) + "\n")
    out.flush()
