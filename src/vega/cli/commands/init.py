"""``vega init``: scaffold the GitHub Actions workflow that caches this repository to Vega.

Spec: cli.md §2.
"""

from __future__ import annotations

import argparse
from typing import Any

from vega.cli import style
from vega.cli.commands import add_command

__all__ = ["register", "run"]

_EXAMPLES = """\
examples:
  vega init                                    write .github/workflows/vega-cache.yml here
  vega init --attr packages.aarch64-linux.app  build another flake attribute
  vega init --print > my-workflow.yml          print the workflow instead of writing it
  vega init --dir ../other-repo --force        overwrite the workflow of another checkout
"""


def register(sub: Any) -> None:
    """Add the ``init`` subcommand."""
    from vega.client.scaffold import DEFAULT_ATTR

    p = add_command(
        sub,
        "init",
        summary="scaffold a GitHub Actions workflow that caches this repository to Vega",
        description=(
            "Write .github/workflows/vega-cache.yml: on each push to main, build the flake attribute "
            "and publish it to Vega, attested with the job's OIDC identity (no stored secret). Every "
            "action is pinned by commit SHA; the job gets only contents: read and id-token: write."
        ),
        examples=_EXAMPLES,
        run=run,
    )
    p.add_argument("--attr", default=DEFAULT_ATTR, help=f"flake attribute to build (default: {DEFAULT_ATTR})")
    p.add_argument("--dir", default=".", help="repository root to write into (default: .)")
    p.add_argument("--force", action="store_true", help="overwrite an existing workflow file")
    p.add_argument("--print", action="store_true", help="write the workflow to stdout instead of a file")
    p.add_argument("--json", action="store_true", help="print one JSON object after writing")


def run(args: argparse.Namespace) -> int:
    """Render, then print or write the workflow."""
    import sys
    from pathlib import Path

    from vega.client.scaffold import WORKFLOW_PATH, render_workflow, write_workflow
    from vega.client.settings import read_settings

    if args.print:
        sys.stdout.write(render_workflow(args.attr))
        return 0
    settings = read_settings()
    written = write_workflow(Path(args.dir), args.attr, force=args.force)
    if args.json:
        style.emit_json({"written": str(written.path), "attr": args.attr})
        return 0
    verb = "Replaced" if written.replaced else "Wrote"
    style.success(f"{verb} {WORKFLOW_PATH}", settings.environ)
    for line in (
        "",
        "Next:",
        f"  1. Check the installable in {WORKFLOW_PATH} (it builds {args.attr}).",
        "  2. Commit it on a branch and open a pull request:",
        f"       git switch -c add-vega-cache && git add {WORKFLOW_PATH}",
        '       git commit -m "ci: cache builds to Vega" && gh pr create --fill',
        "  3. Install the Vega GitHub App for check runs on each attested commit:",
        "       https://github.com/apps/vega-cache",
    ):
        style.info(line)  # one call a line: the terminal sanitiser turns a newline into a space
    return 0
