"""``vega cache list`` and ``vega cache delete``: what your namespace holds, and removing from it.

Spec: issue 12 ("the habits cachix and attic users bring"); docs/server-api.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from vega.cli import style
from vega.cli.commands import add_command

__all__ = ["register", "run_delete", "run_list"]

_EXAMPLES = """\
examples:
  vega cache list                         what your namespace serves, with sizes
  vega cache list --json                  the same as one JSON object
  vega cache delete /nix/store/<hash>-x   stop serving a path from your namespace
"""


def register(sub: Any) -> None:
    """Add ``cache`` with its ``list`` and ``delete`` subcommands."""
    p = sub.add_parser(
        "cache",
        help="list or delete what your namespace serves",
        description=(
            "Manage your own namespace (owner:<id>) on the control plane. Deleting stops serving a "
            "path from your namespace; the log's record of the push stays, and so does anything the "
            "shared tier serves."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(run=None)
    inner = p.add_subparsers(dest="cache_command", metavar="<list|delete>", parser_class=type(p))
    ls = add_command(
        inner,
        "list",
        summary="list your namespace",
        description="List the store paths your namespace serves, with their sizes and push times.",
        examples=_EXAMPLES,
        run=run_list,
        json_flag=True,
    )
    ls.add_argument("--url", help="the control plane (default: the last login's)")
    rm = add_command(
        inner,
        "delete",
        summary="stop serving paths from your namespace",
        description="Stop serving store paths from your namespace (a re-push serves them again).",
        examples=_EXAMPLES,
        run=run_delete,
        json_flag=True,
    )
    rm.add_argument("paths", nargs="+", metavar="PATH", help="/nix/store/<hash>-name, a base name or a hash")
    rm.add_argument("--url", help="the control plane (default: the last login's)")


def _context(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import httpx2

    from vega.client.credentials import credential_for
    from vega.client.http import Http
    from vega.client.settings import read_settings, system_clock_ms

    settings = read_settings(url=args.url)
    cred = credential_for(settings.config_dir, settings.url, system_clock_ms())
    client = httpx2.Client(headers={"user-agent": "vega-cli"})
    return settings, cred, (client, Http(client, settings.http))


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def run_list(args: argparse.Namespace) -> int:
    """Page through the namespace and print it."""
    from vega.client.namespace import list_namespace

    settings, cred, (client, http) = _context(args)
    with client:
        entries = list(list_namespace(http, cred))
    nar_bytes = sum(e.nar_size for e in entries)
    file_bytes = sum(e.file_size for e in entries)
    if args.json:
        style.emit_json(
            {
                "namespace": cred.namespace,
                "controlPlane": cred.url,
                "entries": [e.to_json() for e in entries],
                "count": len(entries),
                "narBytes": nar_bytes,
                "fileBytes": file_bytes,
            }
        )
        return 0
    from vega.client.credentials import format_expiry_date

    style.success(f"{cred.namespace} on {cred.url}: {len(entries)} path(s)", settings.environ)
    for e in entries:
        when = format_expiry_date(e.pushed_at_ms)
        style.info(f"  {e.store_path}  {_mib(e.nar_size)}  pushed {when}")  # a parsed store path
    style.info(f"  total {_mib(nar_bytes)} of NARs, {_mib(file_bytes)} stored")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete the named paths from the namespace."""
    from vega.cli.targets import resolve_local
    from vega.client.namespace import delete_paths
    from vega.client.verify import parse_target
    from vega.errors import ConfigError

    hashes = []
    for path in args.paths:
        try:
            hashes.append(parse_target(resolve_local(path)))
        except ConfigError as e:
            raise ConfigError(
                e.message, next_steps=["vega cache delete /nix/store/<hash>-name", "vega cache list"]
            ) from None
    settings, cred, (client, http) = _context(args)
    with client:
        result = delete_paths(http, cred, hashes)
    if args.json:
        style.emit_json({"namespace": cred.namespace, **result.to_json()})
        return 0
    style.success(f"Deleted {len(result.deleted)} path(s) from {cred.namespace}", settings.environ)
    for h in result.missing:
        style.info(f"  not in your namespace: {h}")
    return 0
