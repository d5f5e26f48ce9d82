"""``vega status``: identity and control-plane reachability, with the probe's latency.

Spec: cli.md §6. Departures (issue 12): ``--url`` and ``$VEGA_URL`` choose the control plane
before the credential's URL; the credential is checked with the control plane
(``GET /api/owner/whoami``); exit 1 when the control plane is unreachable or refuses it.
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
    ).add_argument(
        "--url", help="control plane (default: $VEGA_URL, else the credential's, else the public one)"
    )


def run(args: argparse.Namespace) -> int:
    """Probe and print; exit 1 when the control plane is unreachable or refuses the credential."""
    from vega.client import account
    from vega.client.settings import read_settings

    settings = read_settings(url=args.url, use_env_url=True)
    with account.open_account(settings) as ctx:
        report = account.status(ctx)
    code = 0 if report.reachable and report.check != "invalid" and not report.corrupt else 1
    if args.json:
        style.emit_json(report.to_json())
        return code
    cred = report.credential
    if cred is None:
        identity = "invalid (the credential file is unreadable)" if report.corrupt else "not enrolled"
    elif report.expired:
        identity = f"expired (was {cred.login})"
    elif report.check == "invalid":
        identity = f"invalid (the control plane refused {cred.login}'s credential)"
    else:
        verdict = "" if report.check == "valid" else "  (not checked with the control plane)"
        identity = f"{cred.login}  ({cred.namespace}){verdict}"
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
        style.info(f"Run `vega login --url {report.control_plane}` to enrol or renew.")
    return code
