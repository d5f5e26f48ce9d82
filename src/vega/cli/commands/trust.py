"""``vega trust add|remove|list``: accept another builder's outputs into your view, within a scope.

Spec: cli.md §15 (texts, confirmation rules, exit codes); protocol.md §4.8; issue 8.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vega.cli import style
from vega.cli.commands import add_command
from vega.errors import ConfigError

__all__ = ["register", "run_add", "run_list", "run_remove"]

_EXAMPLES = """\
examples:
  vega trust add octocat                       accept octocat's builds into your view
  vega trust add octocat --package hello       only the hello package
  vega trust add octocat --flake octocat/app   only CI builds of that repository
  vega trust add 583231 --org acme --yes       CI builds of any acme repo, no prompt
  vega trust remove octocat                    revoke it (takes effect at once)
  vega trust list --json                       every edge, revoked ones included
"""


def _scope_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("subject", metavar="SUBJECT", help="GitHub login, numeric id, or github:<login>")
    p.add_argument("--package", metavar="NAME", help="only store paths of this name")
    p.add_argument(
        "--flake", metavar="OWNER/REPO", help="only CI builds with provenance from this repository"
    )
    p.add_argument("--org", metavar="OWNER", help="only CI builds from any repository of this owner")
    p.add_argument("--url", help="the control plane (default: the last login's)")


def register(sub: Any) -> None:
    """Add ``trust`` with ``add``, ``remove`` and ``list``."""
    p = sub.add_parser(
        "trust",
        help="trust another builder's outputs in your view, within a scope",
        description=(
            "Manage your trust edges. An edge lets builds a builder attested (within its scope) be "
            "substituted through your personal view (vega view), signed with your own view key. "
            "Edges are yours alone, not transitive, and revocable at once. They grant no access "
            "to anybody's namespace."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(run=None)
    inner = p.add_subparsers(dest="trust_command", metavar="<add|remove|list>", parser_class=type(p))
    add = add_command(
        inner,
        "add",
        summary="trust a builder",
        description="Trust a builder's outputs (within a scope) in your personal view.",
        examples=_EXAMPLES,
        run=run_add,
    )
    _scope_flags(add)
    add.add_argument(
        "--accept-unreproducible",
        action="store_true",
        help="also accept builds Vega's reproducer diverged from",
    )
    add.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    rm = add_command(
        inner,
        "remove",
        summary="revoke trust in a builder",
        description="Revoke the edge (builder, scope); its bindings leave your view at once.",
        examples=_EXAMPLES,
        run=run_remove,
    )
    _scope_flags(rm)
    ls = add_command(
        inner,
        "list",
        summary="list your trust edges",
        description="List your active trust edges (--json: every edge as returned, revoked ones too).",
        examples=_EXAMPLES,
        run=run_list,
        json_flag=True,
    )
    ls.add_argument("--url", help="the control plane (default: the last login's)")


def _context(url: str | None) -> tuple[Any, Any, Any, Any]:
    import httpx2

    from vega.client.credentials import credential_for
    from vega.client.http import Http
    from vega.client.settings import read_settings, system_clock_ms

    settings = read_settings(url=url)
    cred = credential_for(settings.config_dir, settings.url, system_clock_ms())
    client = httpx2.Client(headers={"user-agent": "vega-cli"})
    return settings, cred, client, Http(client, settings.http)


def _confirm() -> bool:
    try:
        answer = input("Continue? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def run_add(args: argparse.Namespace) -> int:
    """Resolve, show the exact effect, confirm, ``POST /api/trust``."""
    from vega.client.trust import (
        discover_github_api,
        post_edge,
        resolve_subject,
        scope_from_flags,
        scope_label,
    )
    from vega.core.trust import TrustRequest

    scope = scope_from_flags(args.package, args.flake, args.org)
    settings, cred, client, http = _context(args.url)
    env = settings.environ
    with client:
        subject = resolve_subject(http, discover_github_api(http, cred.url), args.subject)
        label = scope_label(scope)
        style.success("You are about to trust builds from:", env)
        rows = [
            ("Builder", f"{subject.text} (id {subject.builder_id})"),
            ("Scope", label),
            ("Effect", "matching builds may be substituted into your view, signed with your view key"),
        ]
        if args.accept_unreproducible:
            rows.append(("Risk", "also accepts builds that Vega's reproducer diverged from"))
        style.key_values(rows, env)
        style.info("  This grants the builder no access to your namespace or to anybody else's;")
        style.info("  it only changes what your own view serves to you. Revoke with vega trust remove.")
        if not args.yes:
            if not sys.stdout.isatty() or not sys.stdin.isatty():
                raise ConfigError(
                    "aborted (no trust edge created).", next_steps=[f"vega trust add {args.subject} --yes"]
                )
            if not _confirm():
                raise ConfigError("aborted (no trust edge created).")
        request = TrustRequest(
            builder=subject.builder_id, scope=scope, accept_unreproducible=args.accept_unreproducible
        )
        post_edge(http, cred, request)
    style.success(f"You now trust builds from {subject.text} for {label}.", env)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """``POST /api/trust/revoke`` (no prompt)."""
    from vega.client.trust import (
        discover_github_api,
        post_edge,
        resolve_subject,
        scope_from_flags,
        scope_label,
    )
    from vega.core.trust import TrustRequest

    scope = scope_from_flags(args.package, args.flake, args.org)
    settings, cred, client, http = _context(args.url)
    with client:
        subject = resolve_subject(http, discover_github_api(http, cred.url), args.subject)
        post_edge(http, cred, TrustRequest(builder=subject.builder_id, scope=scope), revoke=True)
    style.success(f"Removed trust for {subject.text} ({scope_label(scope)}).", settings.environ)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """``GET /api/trust``; text shows active edges only."""
    from vega.client.trust import list_edges, scope_label

    settings, cred, client, http = _context(args.url)
    with client:
        edges, body = list_edges(http, cred)
    if args.json:
        style.emit_json(body)
        return 0
    active = [e for e in edges if e.active]
    if not active:
        style.info("You trust no builders yet. Add one with: vega trust add <github-user>")
        return 0
    style.success(f"{len(active)} trust edge(s):", settings.environ)
    for e in active:
        extra = " (accepts unreproducible builds)" if e.accept_unreproducible else ""
        style.info(f"  builder {e.builder}: {scope_label(e.scope)}{extra}")
    return 0
