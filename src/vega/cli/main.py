"""The ``vega`` command line: the parser, dispatch, and the one error handler.

Subcommands live in ``vega.cli.commands.<name>``; each exposes
``register(subparsers)``, which sets ``run`` (``(args) -> int``) as a default.
Command modules import only argparse at module level, so ``vega --help``
stays fast; their ``run`` imports what it needs.

Spec: cli.md §1 (usage errors exit 1 with a hint; uncaught errors print
``error: <message>`` and exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from vega import __version__
from vega.cli import style
from vega.errors import VegaError

__all__ = ["COMMANDS", "VegaArgumentParser", "build_parser", "entry", "main"]

log = logging.getLogger(__name__)

COMMANDS: tuple[str, ...] = (
    "nar",
    "login",
    "logout",
    "whoami",
    "status",
    "verify",
    "doctor",
    "push",
    "assess",
    "mcp",
)
"""Subcommand modules under ``vega.cli.commands``, registered in this order (help sorts them)."""

_EXAMPLES = """\
examples:
  vega nar hash /nix/store/...-hello     NAR hash of a store path, as `nix hash path`
  vega nar dump ./dir > dir.nar          serialise a tree as a NAR
  vega nar restore ./out < dir.nar       restore a NAR safely
  vega nar ls dir.nar.zst                list a (compressed) NAR's entries
  vega gate .#app --json | vega assess --added-paths -    gate the paths a change adds
  vega mcp --public-key 'vega-cache-1:<base64>'           serve the read-only tools to AI agents
"""


class VegaArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors print a hint and exit 1 (cli.md §1)."""

    def error(self, message: str) -> NoReturn:
        """Print the parser's error and a hint, then exit 1."""
        self.print_usage(sys.stderr)
        command = self.prog.removeprefix("vega").strip() or "<command>"
        sys.stderr.write(f"error: {message}\n\nTry:\n  vega {command} --help\n")
        raise SystemExit(1)


class _SortedSubcommandsFormatter(argparse.RawDescriptionHelpFormatter):
    """Lists subcommands alphabetically in help (cli.md §1)."""

    def _iter_indented_subactions(self, action: argparse.Action):  # type: ignore[no-untyped-def]
        subactions = list(super()._iter_indented_subactions(action))
        if isinstance(action, argparse._SubParsersAction):
            subactions.sort(key=lambda a: a.dest)
        return iter(subactions)


def build_parser() -> VegaArgumentParser:
    """The whole ``vega`` parser with every subcommand registered."""
    parser = VegaArgumentParser(
        prog="vega",
        description="Vega: a reproducible-build Nix binary cache; every claim comes with a proof.",
        epilog=_EXAMPLES,
        formatter_class=_SortedSubcommandsFormatter,
    )
    parser.add_argument("-v", "--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=VegaArgumentParser)
    for name in COMMANDS:
        module = importlib.import_module(f"vega.cli.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vega`` with ``argv`` and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        if getattr(args, "command", None) is None:
            print(f"{style.MARK} Vega")
            parser.print_help()
            return 0
        parser.parse_args([*(argv or sys.argv[1:]), "--help"])
        return 0  # pragma: no cover - --help exits
    try:
        return int(args.run(args))
    except VegaError as e:
        style.fail(e.message, os.environ, e.next_steps)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``vega nar dump | head``); not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as e:  # cli.md §1: any uncaught error -> "error: <message>", exit 1
        log.debug("unexpected error", exc_info=True)
        style.fail(str(e) or type(e).__name__, os.environ)
        return 1


def entry() -> None:
    """Console-script entry point for ``vega``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
