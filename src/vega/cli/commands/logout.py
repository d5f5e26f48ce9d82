"""``vega logout``: remove this machine's credential (no server call).

Spec: cli.md §4.
"""

from __future__ import annotations

import argparse
from typing import Any

from vega.cli import style
from vega.cli.commands import add_command

__all__ = ["register", "run"]

_EXAMPLES = """\
examples:
  vega logout                         delete the current owner credential
  vega logout --url https://cache.example.org   only that control plane's
  vega logout --all                   every control plane's
"""


def register(sub: Any) -> None:
    """Add the ``logout`` subcommand."""
    p = add_command(
        sub,
        "logout",
        summary="remove this machine's owner credential",
        description="Delete the stored owner credential. Nothing is sent to the control plane.",
        examples=_EXAMPLES,
        run=run,
    )
    p.add_argument("--url", help="the control plane whose credential to remove (default: the current one)")
    p.add_argument("--all", action="store_true", help="remove the credentials of every control plane")


def run(args: argparse.Namespace) -> int:
    """Delete the credential file and say whether there was one."""
    from vega.client import account
    from vega.client.settings import read_settings

    settings = read_settings(url=args.url)
    if account.logout(settings, everywhere=args.all):
        style.success("Logged out; credential removed.", settings.environ)
    else:
        style.info("No credential to remove.")
    return 0
