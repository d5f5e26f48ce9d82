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

__all__ = ["COMMANDS", "PLANNED", "VegaArgumentParser", "build_parser", "entry", "main"]

log = logging.getLogger(__name__)

COMMANDS: tuple[str, ...] = (
    "nar",
    "init",
    "login",
    "logout",
    "whoami",
    "status",
    "verify",
    "doctor",
    "push",
    "watch_store",
    "cache",
    "assess",
    "mcp",
    "trust",
    "view",
)
"""Subcommand modules under ``vega.cli.commands``, registered in this order (help sorts them)."""

PLANNED: dict[str, str] = {
    "dashboard": "open the web dashboard (cli.md §17)",
    "diff": "diagnose a divergent build (cli.md §11)",
    "gate": "gate a closure against its lock file (cli.md §12)",
    "report": "report a build problem (cli.md §8)",
}
"""Commands of the spec that this version does not have yet: they say so instead of "invalid choice"."""

_EXAMPLES = """\
examples:
  vega login                             enrol this machine (GitHub device flow)
  vega push .#hello                      build and upload to your namespace
  vega watch-store                       push every new store path as it appears (Ctrl-C stops)
  vega verify /nix/store/...-hello       signature, log inclusion and NAR hash: proof, not trust
  vega status                            who you are and whether the control plane answers
  vega doctor                            check nix, zstd, your credential and nix.conf
  vega nar hash /nix/store/...-hello     NAR hash of a store path, as `nix hash path`
  vega nar ls dir.nar.zst                list a (compressed) NAR's entries
  vega assess --added-paths added.json   one allow/warn/deny for the store paths a change adds
  vega mcp --public-key 'vega-cache-1:<base64>'   serve the read-only tools to AI agents

Each command has its own examples: vega <command> --help
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


def _not_yet(name: str) -> int:
    """The answer for a command the spec promises but this version lacks."""
    sys.stderr.write(
        f"error: vega {name} ({PLANNED[name]}) is not available in vega {__version__} yet\n"
        "\nTry:\n  vega --help   (the commands this version has)\n"
    )
    return 1


def _parse(parser: VegaArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; an unknown option of a subcommand is reported with that subcommand's usage."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = _subparser(parser, getattr(args, "command", None))
        (sub or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            found: argparse.ArgumentParser = action.choices[name]
            return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vega`` with ``argv`` and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in PLANNED and first not in COMMANDS:
        return _not_yet(first)
    parser = build_parser()
    args = _parse(parser, argv)
    if getattr(args, "run", None) is None:
        if getattr(args, "command", None) is None:
            print(f"{style.MARK} Vega")
            parser.print_help()
            return 0
        parser.parse_args([*argv, "--help"])
        return 0  # pragma: no cover - --help exits
    try:
        return int(args.run(args))
    except VegaError as e:
        _json_error(args, e.message, e.next_steps)
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
        _json_error(args, str(e) or type(e).__name__, ())
        style.fail(str(e) or type(e).__name__, os.environ)
        return 1


def _json_error(args: argparse.Namespace, message: str, next_steps: Sequence[str]) -> None:
    """With ``--json``, a failure is also one JSON object on stdout, so a pipeline can parse it."""
    if getattr(args, "json", False):
        style.emit_json({"ok": False, "error": message, "try": list(next_steps), "exitCode": 1})


def entry() -> None:
    """Console-script entry point for ``vega``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
