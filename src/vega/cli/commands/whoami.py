"""``vega whoami``: show the enrolled identity (no network).

Spec: cli.md §5.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from vega.cli import style
from vega.cli.commands import add_command
from vega.errors import ConfigError

if TYPE_CHECKING:
    from vega.client.credentials import Credential

__all__ = ["register", "run"]

_EXAMPLES = """\
examples:
  vega whoami           who this machine is enrolled as (the last login)
  vega whoami --url https://cache.example.org   with that control plane
  vega whoami --all     every control plane this machine is enrolled with
  vega whoami --json    the same as one JSON object
"""


def register(sub: Any) -> None:
    """Add the ``whoami`` subcommand."""
    p = add_command(
        sub,
        "whoami",
        summary="show the identity this machine is enrolled as",
        description="Show the stored owner credential's identity. Makes no network request.",
        examples=_EXAMPLES,
        run=run,
        json_flag=True,
    )
    p.add_argument("--url", help="the control plane to show the credential of (default: the last login)")
    p.add_argument("--all", action="store_true", help="every control plane this machine is enrolled with")


def _as_json(cred: Credential) -> dict[str, object]:
    return {
        "login": cred.login,
        "userId": cred.user_id,
        "namespace": cred.namespace,
        "controlPlane": cred.url,
        "expiresAt": cred.expires_at_ms,
    }


def run(args: argparse.Namespace) -> int:
    """Load the credential strictly and print it (or every one, leniently, with ``--all``)."""
    from vega.client import account
    from vega.client.credentials import all_credentials, format_expiry_date
    from vega.client.settings import read_settings, system_clock_ms

    settings = read_settings(url=args.url)
    if args.all:
        creds = all_credentials(settings.config_dir)
        now = system_clock_ms()
        if args.json:
            style.emit_json([{**_as_json(c), "expired": c.is_expired(now)} for c in creds])
            return 0 if creds else 1
        if not creds:
            raise ConfigError("not enrolled: this machine has no Vega credential.", next_steps=["vega login"])
        style.success(f"Enrolled with {len(creds)} control plane(s)", settings.environ)
        for c in creds:
            state = "expired" if c.is_expired(now) else f"expires {format_expiry_date(c.expires_at_ms)}"
            style.info(f"  {c.url}  {c.login} ({c.namespace}), {state}")
        return 0
    cred = account.whoami(settings, system_clock_ms())
    if args.json:
        style.emit_json(_as_json(cred))
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
