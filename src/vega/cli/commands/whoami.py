"""``vega whoami``: show the enrolled identity (no network).

Spec: cli.md §5.
"""

from __future__ import annotations

import argparse
from typing import Any

from vega.cli import style
from vega.cli.commands import add_command

__all__ = ["register", "run"]

_EXAMPLES = """\
examples:
  vega whoami           who this machine is enrolled as
  vega whoami --json    the same as one JSON object
"""


def register(sub: Any) -> None:
    """Add the ``whoami`` subcommand."""
    add_command(
        sub,
        "whoami",
        summary="show the identity this machine is enrolled as",
        description="Show the stored owner credential's identity. Makes no network request.",
        examples=_EXAMPLES,
        run=run,
        json_flag=True,
    )


def run(args: argparse.Namespace) -> int:
    """Load the credential strictly and print it."""
    from vega.client import account
    from vega.client.credentials import format_expiry_date
    from vega.client.settings import read_settings, system_clock_ms

    settings = read_settings()
    cred = account.whoami(settings, system_clock_ms())
    if args.json:
        style.emit_json(
            {
                "login": cred.login,
                "userId": cred.user_id,
                "namespace": cred.namespace,
                "controlPlane": cred.url,
                "expiresAt": cred.expires_at_ms,
            }
        )
        return 0
    style.success(f"Enrolled as {cred.login}", settings.environ)
    style.key_values(
        [
            ("Namespace", cred.namespace),
            ("User id", cred.user_id),
            ("Control plane", cred.url),
            ("Expires", format_expiry_date(cred.expires_at_ms)),
        ],
        settings.environ,
    )
    return 0
