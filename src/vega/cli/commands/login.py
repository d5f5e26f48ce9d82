"""``vega login``: enrol this machine as a repository owner (GitHub device flow).

Spec: cli.md §3.
"""

from __future__ import annotations

import argparse
from typing import Any

from vega.cli import style
from vega.cli.commands import add_command

__all__ = ["register", "run"]

_EXAMPLES = """\
examples:
  vega login                                  enrol with https://vega-cache.dev (or $VEGA_URL)
  vega login --url https://cache.example.org  enrol with another control plane
  vega login --url http://127.0.0.1:8080      a local development server
"""


def register(sub: Any) -> None:
    """Add the ``login`` subcommand."""
    p = add_command(
        sub,
        "login",
        summary="enrol this machine as a repository owner (GitHub device flow)",
        description="Sign in with GitHub (device flow) and store an owner credential for this machine.",
        examples=_EXAMPLES,
        run=run,
    )
    p.add_argument("--url", help="control plane (default: $VEGA_URL, else https://vega-cache.dev)")
    p.add_argument("--control-plane", dest="control_plane", metavar="URL", help="alias of --url")


def run(args: argparse.Namespace) -> int:
    """Run the device flow, enrol, save the credential, print the summary."""
    from vega.client import account
    from vega.client.credentials import format_expiry_date
    from vega.client.github import DeviceCode
    from vega.client.settings import read_settings

    settings = read_settings(url=args.url, control_plane=args.control_plane, use_env_url=True)
    env = settings.environ

    def show(code: DeviceCode) -> None:
        style.info("")
        style.info(f"  Open {code.verification_uri} and enter code:  {code.user_code}")
        style.info("")
        style.info("  Waiting for authorization...")

    with account.open_account(settings) as ctx:
        result = account.login(ctx, show)
    cred = result.credential
    style.info("")
    style.success(f"Enrolled as {cred.login}", env)
    style.key_values(
        [
            ("Namespace", cred.namespace),
            ("Control plane", cred.url),
            ("Credential", str(result.path)),
            ("Expires", format_expiry_date(cred.expires_at_ms)),
        ],
        env,
    )
    style.info("")
    style.info("Next:")
    style.info("  vega push .#my-package    build locally and publish to your namespace")
    style.info("  vega verify <store path>  check a build: signature, log inclusion and NAR hash")
    return 0
