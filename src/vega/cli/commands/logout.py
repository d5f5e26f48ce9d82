"""``vega logout``: remove this machine's credential (no server call).

Spec: cli.md §4.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]

_EXAMPLES = """\
examples:
  vega logout        delete the stored owner credential
"""


def register(sub: Any) -> None:
    """Add the ``logout`` subcommand."""
    p = sub.add_parser(
        "logout",
        help="remove this machine's owner credential",
        description="Delete the stored owner credential. Nothing is sent to the control plane.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Delete the credential file and say whether there was one."""
    from vega.cli import style
    from vega.client import account
    from vega.client.settings import read_settings

    settings = read_settings()
    if account.logout(settings):
        style.success("Logged out; credential removed.", settings.environ)
    else:
        style.info("No credential to remove.")
    return 0
