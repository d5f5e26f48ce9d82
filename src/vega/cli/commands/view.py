"""``vega view``: your personal view's substituter and keys, as nix.conf lines or JSON.

``--rotate`` replaces the view token (the old one stops working at once); ``--write [FILE]``
adds the lines to your nix.conf idempotently and shows the diff (``--dry-run``: only the diff).

Spec: cli.md §16; protocol.md §4.7; issue 8.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vega.cli import style
from vega.cli.commands import add_command
from vega.errors import ConfigError

__all__ = ["default_nix_conf", "register", "run"]

_EXAMPLES = """\
examples:
  vega view                          the nix.conf lines of your personal view
  vega view --format json            the same as one JSON object
  vega view --write                  add them to ~/.config/nix/nix.conf (shows the diff)
  vega view --write --dry-run        only show what would change
  vega view --rotate --write         new token (the old one stops working), nix.conf updated
"""


def register(sub: Any) -> None:
    """Add the ``view`` subcommand."""
    p = add_command(
        sub,
        "view",
        summary="your personal view: nix.conf lines for the shared tier plus builders you trust",
        description=(
            "Print the substituter and keys of your personal view: the shared tier (builds Vega "
            "independently reproduced) plus the builds your trust edges resolve, re-signed with a "
            "view key only you trust. The substituter URL is a secret capability."
        ),
        examples=_EXAMPLES,
        run=run,
    )
    p.add_argument("--format", default="nix-conf", help="nix-conf (default) or json")
    p.add_argument("--rotate", action="store_true", help="issue a new token; the old one stops working")
    p.add_argument(
        "--write",
        nargs="?",
        const="",
        metavar="FILE",
        help="add the lines to FILE (default: your nix.conf under XDG_CONFIG_HOME)",
    )
    p.add_argument("--dry-run", action="store_true", help="with --write: show the diff, change nothing")
    p.add_argument("--url", help="the control plane (default: the last login's)")


def default_nix_conf(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/nix/nix.conf``, else ``~/.config/nix/nix.conf``."""
    xdg = environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg else Path(environ.get("HOME", str(Path.home()))) / ".config"
    return base / "nix" / "nix.conf"


def run(args: argparse.Namespace) -> int:
    """Get the view, check it, print or write it."""
    import httpx2

    from vega.client.credentials import credential_for
    from vega.client.http import Http
    from vega.client.settings import read_settings, system_clock_ms
    from vega.client.trust import UPSTREAM, UPSTREAM_KEY, get_view, nix_conf_edit, view_lines

    settings = read_settings(url=args.url)
    cred = credential_for(settings.config_dir, settings.url, system_clock_ms())
    with httpx2.Client(headers={"user-agent": "vega-cli"}) as client:
        view = get_view(Http(client, settings.http), cred, rotate=args.rotate)
    env = settings.environ
    base = f"{cred.url}{view.substituter}"
    if args.rotate:
        style.warn("your view token was rotated: the old substituter URL no longer works", env)
    if args.write is not None:
        path = Path(args.write) if args.write else default_nix_conf(env)
        if path.is_symlink():
            raise ConfigError(
                f"{path} is a symlink (managed by home-manager or NixOS?); refusing to replace it",
                next_steps=["vega view  (and add the printed lines to your Nix configuration)"],
            )
        before = path.read_text(encoding="utf-8") if path.exists() else ""
        edit = nix_conf_edit(before, cred.url, view_lines(cred.url, view))
        if not edit.changed:
            style.success(f"{path} already has your view; nothing changed.", env)
            return 0
        print(edit.diff(str(path)), end="")
        if args.dry_run:
            style.info("(dry run: nothing written)")
            return 0
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.vega-tmp")
        tmp.write_text(edit.after, encoding="utf-8")
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        tmp.replace(path)
        style.success(f"Updated {path}.", env)
        return 0
    if args.format == "json":
        style.emit_json(
            {
                "substituter": base,
                "viewKey": view.public_key,
                "sharedKey": view.shared_key,
                "substituters": f"{base} {UPSTREAM}",
                "trustedPublicKeys": f"{view.public_key} {view.shared_key} {UPSTREAM_KEY}",
            }
        )
        return 0
    if args.format != "nix-conf":
        raise ConfigError(f"unknown --format: {args.format}", next_steps=["vega view --format nix-conf"])
    style.success(f"Vega view for {cred.login}", env)
    print()
    style.info("Add these lines to your nix.conf (or run: vega view --write):")
    print()
    for line in view_lines(cred.url, view):
        style.info(f"  {line}")
    print()
    style.info("  shared-reproduced  builds Vega independently reproduced (signed by the shared key)")
    style.info("  social             builds your trust graph resolves (signed by your view key)")
    style.info("  tenant             your own namespace (vega push)")
    style.info("The view key is yours alone, and the substituter URL is a secret: do not share it.")
    return 0
