"""``vega doctor``: check this machine's Nix, credential, control plane and cache configuration.

Text: ``✦ Vega doctor``, then per check ``  <mark>  <name:14> <detail>`` (mark ``ok  ``/``warn``/
``fail``, coloured only when the colour rules allow) and ``        fix: <fix>`` under it.
``--json``: ``{"ok": ..., "checks": [...]}`` on one line. Exit 1 when a check is ``fail``.

Spec: cli.md §7, §18.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from vega.cli import style
from vega.cli.commands import add_command

if TYPE_CHECKING:
    from vega.client.doctor import DoctorReport

__all__ = ["register", "render", "run"]

_EXAMPLES = """\
examples:
  vega doctor           check Nix, zstd, the credential, the control plane and nix.conf traps
  vega doctor --json    the same as one JSON object: {"ok": ..., "checks": [...]}
"""

_MARKS = {"ok": ("ok  ", "\x1b[32m"), "warn": ("warn", "\x1b[33m"), "fail": ("fail", "\x1b[31m")}
_RESET = "\x1b[0m"


def register(sub: Any) -> None:
    """Add the ``doctor`` subcommand."""
    add_command(
        sub,
        "doctor",
        summary="diagnose this machine's Vega and Nix setup",
        description=(
            "Check that nix is installed with nix-command and flakes, zstd works, the credential is "
            "valid, the control plane answers, and nix.conf's substituters and trusted keys agree "
            "(e.g. a trusted tenant key without its /tenant/ substituter); also looks for a newer "
            "release. Exits 1 when a check fails."
        ),
        examples=_EXAMPLES,
        run=run,
        json_flag=True,
    )


def render(
    report: DoctorReport, as_json: bool, environ: Mapping[str, str], stream: TextIO | None = None
) -> int:
    """Print ``report`` (text or JSON) and return the exit code (1 when a check failed)."""
    import sys

    out = stream or sys.stdout
    if as_json:
        style.emit_json(report.to_json(), out)
        return 0 if report.ok else 1
    colour = style.use_colour(out, environ)
    style.success("Vega doctor", environ, out)
    for check in report.checks:
        mark, code = _MARKS[check.level]
        shown = f"{code}{mark}{_RESET}" if colour else mark
        name, detail = style.safe(check.name), style.safe(check.detail)
        print(f"  {shown}  {name.ljust(14)} {detail}", file=out)
        if check.fix is not None:
            print(f"        fix: {style.safe(check.fix)}", file=out)
    return 0 if report.ok else 1


def run(args: argparse.Namespace) -> int:
    """Run the checks and print them."""
    from vega.client import doctor
    from vega.client.settings import read_settings

    settings = read_settings()
    with doctor.open_doctor(settings) as ctx:
        report = doctor.run_checks(ctx)
    return render(report, bool(args.json), settings.environ)
