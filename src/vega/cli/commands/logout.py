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
  vega logout        delete the stored owner credential
"""


def register(sub: Any) -> None:
    """Add the ``logout`` subcommand."""
    add_command(
        sub,
        "logout",
        summary="remove this machine's owner credential",
        description="Delete the stored owner credential. Nothing is sent to the control plane.",
        examples=_EXAMPLES,
        run=run,
    )


def run(args: argparse.Namespace) -> int:
    """Delete the credential file and say whether there was one."""
    from vega.client import account
    from vega.client.settings import read_settings

    settings = read_settings()
    if account.logout(settings):
        style.success("Logged out; credential removed.", settings.environ)
    else:
        style.info("No credential to remove.")
    return 0
