"""``vega verify TARGET...``: check builds against the cache's signature, the public log and the bytes.

One target prints the key/value block of cli.md §10.5; several targets (or ``--recursive``, the
whole closure) are verified concurrently with one progress display on a terminal (plain periodic
lines elsewhere, nothing but JSON with ``--json``) and print one line per path, then a summary.
Exit 0 iff every path's ``exitOk``.

Spec: cli.md §10 (options, checks, verdict, texts), §1.6 (trusted keys), §18 (exit codes).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from vega.cli import style
from vega.cli.targets import resolve_local
from vega.errors import VegaError

if TYPE_CHECKING:
    from vega.client.verify import VerifyContext, VerifyOptions, VerifyReport

__all__ = ["execute", "register", "run"]

DEFAULT_URL = "https://vega-cache.dev"

_EXAMPLES = """\
examples:
  vega verify /nix/store/<hash>-hello           signature, public log, and NAR bytes
  vega verify <hash> --json                     the result as one JSON object
  vega verify ./result --recursive              the whole closure, concurrently
  vega verify <hash> --url https://vega-cache.dev/tenant/<owner>/<repo>

keys:
  Only keys you trust are used: --public-key, else trusted-public-keys of your nix
  configuration. A key the cache serves (a tenant's /key, the control plane's
  /api/info) is used only with --trust-fetched-key, and reported as "fetched, not pinned".

exit status (the same as "exitOk" of --json):
  0  verified: shared-tier signature, in the public log, not revoked, NAR bytes match;
     or at a tenant base, the tenant signature and the NAR bytes check (a self check);
     or, with --allow-signature-only, a valid scoped/upstream signature with its NAR ok
  1  anything else, and always for a revoked path (in every scope)
"""


def register(sub: Any) -> None:
    """Add the ``verify`` subcommand."""
    p = sub.add_parser(
        "verify",
        help="verify builds: signature, transparency log, NAR bytes",
        description=(
            "Verify store paths against the cache: the narinfo's signature under a key you trust, "
            "the promotion in the transparency log (consistent with the log you saw before), "
            "no revocation, and the NAR bytes."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "targets", nargs="+", metavar="TARGET", help="/nix/store/<hash>-name, a base name, or a hash"
    )
    p.add_argument(
        "--url",
        help="cache base (may be a tenant base); default $VEGA_URL, else the control plane you are "
        f"logged in to, else {DEFAULT_URL}",
    )
    p.add_argument("--public-key", metavar="KEY", help="key to verify against, '<name>:<base64>'")
    p.add_argument(
        "--trust-fetched-key",
        action="store_true",
        help="with no key of yours for a build, use the key the cache itself serves (a tenant's "
        "/key, the control plane's /api/info); reported as 'fetched, not pinned'",
    )
    p.add_argument("--no-nar", action="store_true", help="skip re-deriving the NAR hash")
    p.add_argument(
        "--max-scan", default="10000", metavar="N", help="log entries an original server's scan reads"
    )
    p.add_argument(
        "--allow-signature-only",
        action="store_true",
        help="exit 0 for a valid scoped/upstream signature (never for a revoked path)",
    )
    p.add_argument("--recursive", action="store_true", help="also verify every path in the closure")
    p.add_argument(
        "--log-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="the log's checkpoint verifier key '<origin>+<id>+<base64>' (optional, repeatable)",
    )
    p.add_argument("--jobs", type=int, default=8, metavar="N", help="concurrent verifications (default 8)")
    p.add_argument("--json", action="store_true", help="one JSON object per path")
    p.set_defaults(run=run)


def _max_scan(text: str) -> int:
    """cli.md §10: non-positive or non-numeric means the default."""
    try:
        value = float(text)
    except ValueError:
        return 10000
    return int(value) if value == value and value >= 1 and value != float("inf") else 10000


def options_from(args: argparse.Namespace) -> VerifyOptions:
    """The flow's options from the parsed flags.

    Raises:
        ConfigError: ``--public-key`` or ``--log-key`` does not parse.
    """
    from vega.client.verify import VerifyOptions
    from vega.core.note import parse_verifier_key
    from vega.core.signing import parse_public_key
    from vega.errors import ConfigError, FormatError

    public = None
    if args.public_key is not None:
        try:
            public = parse_public_key(args.public_key)
        except FormatError:
            raise ConfigError("--public-key is not a valid '<name>:<base64>' key") from None
    log_keys = []
    for text in args.log_key:
        try:
            log_keys.append(parse_verifier_key(text))
        except FormatError as e:
            raise ConfigError(f"--log-key is not a valid note verifier key: {e.message}") from None
    return VerifyOptions(
        public_key=public,
        check_nar=not args.no_nar,
        allow_signature_only=args.allow_signature_only,
        max_scan=_max_scan(str(args.max_scan)),
        log_keys=tuple(log_keys),
        trust_fetched_key=args.trust_fetched_key,
    )


def run(args: argparse.Namespace) -> int:
    """Build the real context (HTTP client, trusted keys, state dir) and verify."""
    from vega.client.settings import read_environ
    from vega.client.verify import open_context, parse_target

    environ = read_environ()
    args.url = default_url(args.url, environ)
    args.targets = [resolve_local(t) for t in args.targets]
    for target in args.targets:
        parse_target(target)
    options = options_from(args)
    with open_context(args.url, environ, read_nix_keys=options.public_key is None) as ctx:
        return execute(args, ctx, environ)


def default_url(flag: str | None, environ: Mapping[str, str]) -> str:
    """``--url``, else ``$VEGA_URL``, else the current credential's control plane, else the default.

    So a self-hoster logged in to their own server never has to type ``--url`` (issue 12).
    """
    from vega.client.credentials import load_credential_lenient
    from vega.client.settings import config_dir

    if flag:
        return flag
    if environ.get("VEGA_URL"):
        return environ["VEGA_URL"]
    try:
        cred = load_credential_lenient(config_dir(environ) / "credential")
    except VegaError:
        cred = None
    return cred.url if cred is not None else DEFAULT_URL


def execute(
    args: argparse.Namespace,
    ctx: VerifyContext,
    environ: Mapping[str, str],
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Verify ``args.targets`` with ``ctx`` and render; the exit code (tests call this directly).

    ``clock`` paces the plain progress lines (one per :data:`PROGRESS_INTERVAL_S`).
    """
    from vega.client.verify import parse_target, verify_many

    out = out or sys.stdout
    err = err or sys.stderr
    for target in args.targets:
        parse_target(target)
    options = options_from(args)
    many = len(args.targets) > 1 or args.recursive
    progress = _Progress(err, environ, enabled=many, quiet=args.json, clock=clock)
    try:
        reports = verify_many(
            ctx,
            args.targets,
            options,
            recursive=args.recursive,
            workers=max(1, args.jobs),
            on_done=progress.done,
            on_found=progress.found,
        )
    finally:
        progress.close()
    for warning in dict.fromkeys(w for r in reports for w in r.warnings):
        style.warn(warning, environ, err)  # once per run, however many paths it concerns
    if args.json:
        for report in reports:
            style.emit_json(report.to_json(), out)
        return 0 if all(r.exit_ok for r in reports) else 1
    if not many:
        return _render_one(reports[0], environ, out, err)
    return _render_many(reports, environ, out, err)


# -- rendering --------------------------------------------------------------------------------------


def _ok(flag: bool) -> str:
    return "ok" if flag else "FAIL"


def _render_one(report: VerifyReport, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:

    if report.store_path is None:
        style.fail(report.error or "verification failed", environ, report.next_steps, err)
        return 1
    style.success(f"Verifying {report.store_path}", environ, out)
    rows = [(f"Signature ({report.key_name or 'none'})", f"{_ok(report.signature_ok)}  {report.scope or ''}")]
    t = report.transparency
    if report.scope == "shared" and t is not None:
        rows.append(("Signed tree head", _ok(t.sth_verified)))
        rows.append(("Consistent with last seen", _check_text(report, "checkpoint")))
        promotion = next((c for c in report.checks if c.name == "promotion"), None)
        if t.found:
            how = (
                f"scanned {t.scanned} entries (original log endpoints)"
                if t.legacy
                else f"one lookup: {t.scanned} log entries for this build"
            )
            rows.append(("In transparency log", f"ok  entry #{t.index} ({how})"))
            rows.append(("Inclusion proof", _ok(t.leaf_hash_ok and t.inclusion_ok)))
        elif promotion is not None and promotion.detail.startswith("not checked"):
            rows.append(("In transparency log", promotion.detail))
        else:
            rows.append(("In transparency log", "not found"))
        rows.append(("Not revoked", _check_text(report, "revocation")))
    elif report.revocation is not None and report.revocation.status != "unknown":
        rows.append(("Not revoked", _check_text(report, "revocation")))  # signed list (changes-0.19.md)
    if report.nar is not None:
        rows.append(("NAR bytes", f"{_ok(report.nar.ok)}  {report.nar.detail}"))
    style.key_values(rows, environ, out)
    for notice in report.notices:
        style.info(f"  {notice}", out)
    if report.scope != "shared" or t is None:
        note = report.to_json()["transparency"]
        if isinstance(note, dict) and note.get("note"):
            style.info(f"  {note['note']}", out)
    elif t.note:
        style.info(f"  {t.note}", out)
    fork = next((c for c in report.checks if c.name == "checkpoint" and not c.ok), None)
    if fork is not None and t is not None and t.fork:
        from vega.client.logstate import FORK_NEXT_STEPS

        style.fail(fork.detail, environ, FORK_NEXT_STEPS, err)
    if report.error is not None:
        style.fail(report.error, environ, report.next_steps, err)
    return _outcome(report, environ, out, err)


def _check_text(report: VerifyReport, name: str) -> str:
    check = next((c for c in report.checks if c.name == name), None)
    if check is None:
        return "not checked"
    return f"{_ok(check.ok)}  {check.detail}"


def _outcome(report: VerifyReport, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:

    if report.verified:
        if report.nar_skipped:
            style.success(
                "Verified: signed and in the public log (NAR bytes not checked: --no-nar).", environ, out
            )
        else:
            style.success("Verified: signed, in the public log, and the bytes match.", environ, out)
        return 0
    if report.tenant_ok:
        style.success(
            f"Verified in your tenant tier: signed by {report.key_name} and the bytes match.", environ, out
        )
        style.info("  tenant scope is a self check, not third-party trust", out)
        return 0
    if report.view_ok:  # issue 8: a social binding, vouched for by the user's own view key
        style.success(
            f"Verified through your view: signed by {report.key_name} and the bytes match.", environ, out
        )
        style.info("  a social binding (a builder you trust attested it), not a Vega reproduction", out)
        return 0
    if report.signature_only_ok:
        if report.scope == "upstream":
            style.warn(
                f"mirrored from {report.key_name}: verified by the upstream signature, not by Vega",
                environ,
                err,
            )
        else:
            style.warn(
                f"signature-only: {report.key_name} is a scoped key; this build is not in the global log",
                environ,
                err,
            )
        if not report.allow_signature_only:
            style.info("  pass --allow-signature-only to accept a signature-only result", out)
            return 1
        return 0
    style.fail("Verification failed. Do not trust this build.", environ, (), err)
    return 1


def _render_many(
    reports: Sequence[VerifyReport], environ: Mapping[str, str], out: TextIO, err: TextIO
) -> int:

    good = 0
    for r in reports:
        name = r.store_path or r.target
        if r.exit_ok:
            good += 1
            t = r.transparency
            how = f"entry #{t.index}" if t is not None and t.found else (r.scope or "")
            style.info(f"ok    {name}  ({how})", out)
        else:
            failed = next((c for c in r.checks if not c.ok and not c.skipped), None)
            why = r.error or (failed.detail if failed else "not verified")
            style.info(f"FAIL  {name}  {why}", out)
    requests = sum(r.requests for r in reports)
    if good == len(reports):
        style.success(f"Verified {good} of {len(reports)} paths ({requests} requests).", environ, out)
        return 0
    style.fail(
        f"Verification failed for {len(reports) - good} of {len(reports)} paths. Do not trust them.",
        environ,
        (),
        err,
    )
    return 1


class _Progress:
    """One progress display: rich on a terminal, else one plain line per interval (stderr only).

    The plain lines are paced by time, not by the counts: a closure whose total grows as it is
    discovered would otherwise print a line every time the count caught up with it (issue 12).
    The last state is printed once at the end.
    """

    def __init__(
        self,
        err: TextIO,
        environ: Mapping[str, str],
        *,
        enabled: bool,
        quiet: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.quiet = quiet
        """No plain lines (``--json``); a terminal still gets the live display."""
        self.total = 0
        self.count = 0
        self.failed = 0
        self.err = err
        self.clock = clock
        self._last_line = clock()
        self._printed: tuple[int, int, int] | None = None
        self._rich: Any = None
        self._task: Any = None
        if enabled and style.is_interactive(err, environ):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(file=err, no_color="NO_COLOR" in environ)
            self._rich = Progress(
                TextColumn("verifying"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._rich.start()
            self._task = self._rich.add_task("verify", total=None, failed=0)

    def found(self, total: int) -> None:
        self.total = total
        if self._rich is not None:
            self._rich.update(self._task, total=total)

    def done(self, report: VerifyReport) -> None:
        self.count += 1
        self.failed += 0 if report.exit_ok else 1
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, completed=self.count, failed=self.failed)
        elif not self.quiet and self.clock() - self._last_line >= PROGRESS_INTERVAL_S:
            self._line()

    def _line(self) -> None:
        self._last_line = self.clock()
        self._printed = (self.count, self.total, self.failed)
        self.err.write(f"verified {self.count}/{self.total} paths ({self.failed} failed)\n")
        self.err.flush()

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif (
            self.enabled
            and not self.quiet
            and self.count
            and self._printed
            != (
                self.count,
                self.total,
                self.failed,
            )
        ):
            self._line()


PROGRESS_INTERVAL_S = 2.0
"""Seconds between plain (non-terminal) progress lines."""
