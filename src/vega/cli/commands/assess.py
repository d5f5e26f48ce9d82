"""``vega assess --added-paths FILE|-``: one allow/warn/deny for the store paths a change adds.

The same change assessment as the MCP tool ``vega_assess_change`` (:mod:`vega.mcp.assess`: the
verify core of ``vega verify`` on every path), on the command line. The input is a JSON array of
store paths or an object with an ``added`` array (what ``vega gate --json`` prints, once that
command exists). Exit 0 on allow or warn, 1 on deny or bad input.

Spec: cli.md §13, §18; mcp.md §5.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from vega.cli import style

if TYPE_CHECKING:
    from vega.mcp.tools import ToolContext

__all__ = ["MAX_INPUT_CHARS", "execute", "parse_added_paths", "read_added_paths", "register", "run"]

DEFAULT_URL = "https://vega-cache.dev"
MAX_INPUT_CHARS = 8_388_608
"""The largest ``--added-paths`` input (cli.md §13)."""

_EXAMPLES = """\
examples:
  vega assess --added-paths added.json            added.json: ["/nix/store/<hash>-name", ...]
  vega assess --added-paths - --json < added.json  the vega.verdict.v1 envelope, paths on stdin
"""


def register(sub: Any) -> None:
    """Add the ``assess`` subcommand."""
    p = sub.add_parser(
        "assess",
        help="one allow/warn/deny for the store paths a change adds (read-only)",
        description=(
            "Verify every store path a dependency change adds, as vega verify does, and give one "
            "verdict: deny if a proof refutes any path, warn if any cannot be verified, else allow."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--added-paths",
        required=True,
        metavar="FILE",
        help="JSON: an array of store paths, or an object with an 'added' array; '-' for stdin",
    )
    p.add_argument("--url", default=DEFAULT_URL, help="cache URL; default %(default)s")
    p.add_argument("--public-key", metavar="KEY", help="key to verify against, '<name>:<base64>'")
    p.add_argument("--max-paths", type=int, default=50, metavar="N", help="paths verified at most (50)")
    p.add_argument("--json", action="store_true", help="the vega.verdict.v1 envelope as one line")
    p.set_defaults(run=run)


def parse_added_paths(text: str) -> list[str]:
    """The paths of ``--added-paths`` JSON: a bare array, or an object's ``added`` array.

    Non-string entries are dropped.

    Raises:
        ConfigError: anything else (cli.md §13).
    """
    import json

    from vega.errors import ConfigError

    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        obj = obj.get("added")
    if not isinstance(obj, list):
        raise ConfigError(
            "invalid --added-paths input",
            next_steps=("""vega assess --added-paths added.json   # ["/nix/store/<hash>-name", ...]""",),
        )
    return [p for p in obj if isinstance(p, str)]


def read_added_paths(name: str, stdin: TextIO | None = None) -> str:
    """The text of ``--added-paths``: a file, or stdin for ``-``, at most :data:`MAX_INPUT_CHARS`.

    Raises:
        ConfigError: unreadable, or too long (cli.md §13 texts).
    """
    from vega.errors import ConfigError

    if name == "-":
        stream = stdin or sys.stdin
        try:
            text = stream.read(MAX_INPUT_CHARS + 1)
        except (OSError, UnicodeDecodeError):
            raise ConfigError("could not read -") from None
        if len(text) > MAX_INPUT_CHARS:
            raise ConfigError("could not read -", next_steps=(f"input exceeds {MAX_INPUT_CHARS} bytes",))
        return text
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read(MAX_INPUT_CHARS + 1)
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"could not read {name}") from None
    if len(text) > MAX_INPUT_CHARS:
        raise ConfigError(f"--added-paths input exceeds {MAX_INPUT_CHARS} bytes")
    return text


def run(args: argparse.Namespace) -> int:
    """Read the input, build the real context (pinned URL, trusted keys, state dir) and assess."""
    from vega.client.settings import read_environ
    from vega.client.verify import VerifyOptions, open_context
    from vega.core.signing import parse_public_key
    from vega.errors import ConfigError, FormatError
    from vega.mcp.tools import ToolContext

    paths = parse_added_paths(read_added_paths(args.added_paths))
    public = None
    if args.public_key is not None:
        try:
            public = parse_public_key(args.public_key)
        except FormatError:
            raise ConfigError("--public-key is not a valid '<name>:<base64>' key") from None
    if args.max_paths < 1:
        raise ConfigError("--max-paths must be a positive integer")
    environ = read_environ()
    options = VerifyOptions(public_key=public, max_scan=2000)
    with open_context(args.url, environ, read_nix_keys=public is None) as vctx:
        return execute(args, ToolContext(verify=vctx, options=options), paths, environ)


def execute(
    args: argparse.Namespace,
    ctx: ToolContext,
    paths: list[str],
    environ: Mapping[str, str],
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Assess ``paths`` with ``ctx`` and render; the exit code (tests call this directly)."""
    from dataclasses import replace

    from vega.mcp.assess import CLI_BOUNDS, assess_change

    out = out or sys.stdout
    err = err or sys.stderr
    envelope = assess_change(ctx, paths, replace(CLI_BOUNDS, max_paths=args.max_paths))
    verdict = envelope["verdict"]
    if args.json:
        style.emit_json(envelope, out)
        return 1 if verdict == "deny" else 0
    evidence: Any = envelope["evidence"]
    for p in evidence["paths"]:
        style.info(f"  {p['verdict']}  {p['path']}  [{', '.join(p['reasonCodes'])}]", out)
    counts = evidence["summary"]["verdicts"]
    closure = evidence["addedClosure"]
    line = f"{closure['assessed']}/{closure['count']} assessed, {counts['deny']} deny, {counts['warn']} warn"
    codes = ", ".join(str(c) for c in envelope["reasonCodes"])  # type: ignore[attr-defined]
    actions = [str(a) for a in envelope["nextActions"]]  # type: ignore[attr-defined]
    if verdict == "allow":
        style.success(f"change assessment: allow ({line})", environ, out)
        return 0
    if verdict == "warn":
        style.warn(f"change assessment: warn ({line}) [{codes}]", environ, err)
        for action in actions:
            style.info(f"  {action}", err)
        return 0
    style.fail(f"change assessment: deny ({line}) [{codes}]", environ, actions, err)
    return 1
