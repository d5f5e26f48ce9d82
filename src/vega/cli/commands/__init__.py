"""One module per ``vega`` subcommand, each with ``register(subparsers)`` and ``run(args)``.

The shared shape of a subcommand (its help line, description, examples epilog, ``run`` and, for
those that print a report, ``--json``) is :func:`add_command`.

Spec: cli.md §1 (global conventions: ``--help`` with examples, ``--json``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["add_command"]


def add_command(
    sub: Any,
    name: str,
    *,
    summary: str,
    description: str,
    examples: str,
    run: Callable[[argparse.Namespace], int],
    json_flag: bool = False,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to ``sub`` and return its parser for any further arguments.

    Args:
        sub: The ``add_subparsers()`` object of the ``vega`` parser.
        name: The subcommand as typed.
        summary: The one-line help shown in ``vega --help``.
        description: The paragraph shown in ``vega <name> --help``.
        examples: The epilog, printed as written.
        run: The function ``main`` dispatches to.
        json_flag: Whether to add ``--json`` ("print one JSON object").
    """
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)
    return p
