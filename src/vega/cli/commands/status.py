"""``vega status``: identity and control-plane reachability, with the probe's latency.

Spec: cli.md §6 (exit 0 always).
"""

from __future__ import annotations

import argparse
from typing import Any

from vega.cli import style
from vega.cli.commands import add_command

__all__ = ["register", "run"]

_EXAMPLES = """\
examples:
  vega status           enrolment and whether the control plane answers
  vega status --json    the same as one JSON object
"""


def register(sub: Any) -> None:
    """Add the ``status`` subcommand."""
    add_command(
        sub,
        "status",
        summary="show enrolment and control-plane reachability",
        description="Show who this machine is enrolled as and probe the control plane (timed).",
        examples=_EXAMPLES,
        run=run,
        json_flag=True,
    )


def run(args: argparse.Namespace) -> int:
    """Probe and print; always exit 0."""
    from vega.client import account
    from vega.client.settings import read_settings

    settings = read_settings()
    with account.open_account(settings) as ctx:
        report = account.status(ctx)
    if args.json:
        style.emit_json(report.to_json())
        return 0
    cred = report.credential
    if cred is None:
        identity = "not enrolled"
    elif report.expired:
        identity = f"expired (was {cred.login})"
    else:
        identity = f"{cred.login}  ({cred.namespace})"
    reach = "yes" if report.reachable else "no"
    style.success("Vega status", settings.environ)
    style.key_values(
        [
            ("Identity", identity),
            ("Control plane", report.control_plane),
            ("Reachable", f"{reach} ({report.latency_ms}ms)"),
        ],
        settings.environ,
    )
    if not report.enrolled:
        style.info("")
        style.info("Run `vega login` to enrol or renew.")
    return 0
