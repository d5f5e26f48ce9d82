"""``vega mcp``: serve the read-only Vega tools to AI coding agents over MCP stdio.

Spec: cli.md §14; mcp.md §1 (context fixed at start-up); docs/mcp.md (registering it with clients).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["parse_max_scan", "register", "run"]

DEFAULT_URL = "https://vega-cache.dev"

_EXAMPLES = """\
examples:
  vega mcp                                          the shared cache, keys from nix.conf
  vega mcp --public-key 'vega-cache-1:<base64>'     pin the trust anchor explicitly
  vega mcp --url http://127.0.0.1:8080 --public-key 'vega-cache-1:<base64>'

Register it with an MCP client as a stdio server: see docs/mcp.md.
"""


def register(sub: Any) -> None:
    """Add the ``mcp`` subcommand."""
    p = sub.add_parser(
        "mcp",
        help="serve read-only verification tools to AI agents (MCP over stdio)",
        description=(
            "Serve vega_verify, vega_risk, vega_reproduce and vega_assess_change over MCP stdio. "
            "Read-only: nothing is built, installed, trusted or written except the remembered log "
            "checkpoint. stdout carries MCP frames only; diagnostics go to stderr."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", default=DEFAULT_URL, help="the pinned cache URL; default %(default)s")
    p.add_argument("--public-key", metavar="KEY", help="the pinned trust anchor, '<name>:<base64>'")
    p.add_argument(
        "--max-scan", default="2000", metavar="N", help="log entries an original server's scan reads"
    )
    p.add_argument(
        "--max-paths", type=int, default=200, metavar="N", help="paths one vega_assess_change verifies"
    )
    p.add_argument(
        "--budget", type=float, default=60.0, metavar="SECONDS", help="time budget of one change assessment"
    )
    p.set_defaults(run=run)


def parse_max_scan(text: str) -> int:
    """cli.md §14: a positive integer.

    Raises:
        ConfigError: anything else.
    """
    from vega.errors import ConfigError

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError("--max-scan must be a positive integer")
    return value


def run(args: argparse.Namespace) -> int:
    """Parse the pinned context, then serve until stdin ends."""
    from dataclasses import replace

    from vega.client.settings import read_environ
    from vega.client.verify import VerifyOptions, open_context
    from vega.core.signing import parse_public_key
    from vega.errors import ConfigError, FormatError

    max_scan = parse_max_scan(str(args.max_scan))
    public = None
    if args.public_key is not None:
        try:
            public = parse_public_key(args.public_key)
        except FormatError:
            raise ConfigError("--public-key is not a valid '<name>:<base64>' key") from None
    if args.max_paths < 1:
        raise ConfigError("--max-paths must be a positive integer")
    if not args.budget > 0:
        raise ConfigError("--budget must be a positive number of seconds")
    try:
        import mcp.server.mcpserver  # noqa: F401 - the optional extra, checked before serving
    except ImportError as e:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            f"vega mcp needs the MCP SDK ({e.name or 'mcp'} is not installed)",
            next_steps=("pip install 'vega[mcp]'",),
        ) from None
    from vega.mcp.assess import MCP_BOUNDS
    from vega.mcp.server import serve
    from vega.mcp.tools import ToolContext

    options = VerifyOptions(public_key=public, max_scan=max_scan)
    bounds = replace(MCP_BOUNDS, max_paths=args.max_paths, budget_s=args.budget)
    with open_context(args.url, read_environ(), read_nix_keys=public is None) as vctx:
        return serve(ToolContext(verify=vctx, options=options), bounds)
