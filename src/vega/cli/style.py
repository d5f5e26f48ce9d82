"""Terminal output helpers of cli.md §1.1: success, info, warn, fail, key/value, JSON lines.

Colour is decided once per stream: on a TTY, unless ``NO_COLOR`` is set;
``FORCE_COLOR`` turns it on anywhere. ``--json`` output never carries colour.

Spec: cli.md §1.1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

__all__ = [
    "MARK",
    "emit_json",
    "fail",
    "info",
    "is_interactive",
    "key_values",
    "success",
    "use_colour",
    "warn",
]

MARK = "\u2726"

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


def _paint(text: str, code: str, stream: TextIO, environ: Mapping[str, str]) -> str:
    return f"{code}{text}{_RESET}" if use_colour(stream, environ) else text


def success(message: str, environ: Mapping[str, str], stream: TextIO | None = None) -> None:
    """Print ``✦ <message>`` to stdout, the star in green."""
    out = stream or sys.stdout
    print(f"{_paint(MARK, _GREEN, out, environ)} {message}", file=out)


def info(message: str, stream: TextIO | None = None) -> None:
    """Print a plain line to stdout."""
    print(message, file=stream or sys.stdout)


def warn(message: str, environ: Mapping[str, str], stream: TextIO | None = None) -> None:
    """Print ``warning: <message>`` to stderr."""
    err = stream or sys.stderr
    print(f"{_paint('warning', _YELLOW, err, environ)}: {message}", file=err)


def fail(
    message: str,
    environ: Mapping[str, str],
    next_steps: Sequence[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Print ``error: <message>`` and, when given, a blank line, ``Try:`` and each step."""
    err = stream or sys.stderr
    print(f"{_paint('error', _RED, err, environ)}: {message}", file=err)
    if next_steps:
        print("", file=err)
        print("Try:", file=err)
        for step in next_steps:
            print(f"  {step}", file=err)


def key_values(
    rows: Sequence[tuple[str, str]], environ: Mapping[str, str], stream: TextIO | None = None
) -> None:
    """Print aligned ``  key: value`` rows, keys grey."""
    out = stream or sys.stdout
    if not rows:
        return
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        label = f"{key}:".ljust(width)
        print(f"  {_paint(label, _GREY, out, environ)} {value}", file=out)


def emit_json(obj: object, stream: TextIO | None = None) -> None:
    """Print one compact JSON object per line, non-ASCII unescaped."""
    out = stream or sys.stdout
    out.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")
    out.flush()
