"""``vega watch-store``: push every new store path as it appears, like ``cachix watch-store``.

Polls the Nix database for newly valid paths (docs/adr/0019), pushes each batch's closure into
the owner namespace through the ``vega push`` pipeline, and stops cleanly on SIGINT or SIGTERM:
the wait ends at once, uploads in flight stop within a chunk, spools are removed, and what was
not pushed is listed. Output: the push display's lines (or NDJSON with ``--json``: ``watching``,
then ``plan``/``pushed`` per batch, then ``stopped``).

Spec: issue 12 (the cachix habits); cli.md §9 (push) for each batch.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vega.cli import style

__all__ = ["register", "run"]

_EXAMPLES = """\
examples:
  vega watch-store                    push every path nix adds from now on, until Ctrl-C
  vega watch-store --interval 5 -j 8  poll every 5 s, eight uploads at a time
  vega watch-store --json             NDJSON: watching, plan, pushed, stopped

New paths are found by polling the Nix database (/nix/var/nix/db/db.sqlite) for paths that became
valid since the last poll, at most --batch at a time; .drv files are not pushed.
"""


def register(sub: Any) -> None:
    """Add the ``watch-store`` subcommand."""
    p = sub.add_parser(
        "watch-store",
        help="push every new store path into your owner namespace as it appears (until Ctrl-C)",
        description=(
            "Watch the local Nix store and push each newly valid path's closure (what your"
            " namespace and the upstream cache lack) into owner:<userId>, in batches."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default 2)")
    p.add_argument("--batch", type=int, default=256, help="new paths taken per poll (default 256)")
    p.add_argument("--db", default=None, help="the Nix database (default /nix/var/nix/db/db.sqlite)")
    p.add_argument(
        "--no-skip-upstream",
        dest="skip_upstream",
        action="store_false",
        help="upload paths even when the upstream serves them",
    )
    p.add_argument("--upstream", default="https://cache.nixos.org", help="upstream cache to diff against")
    p.add_argument("-j", "--jobs", type=int, default=4, help="upload concurrency (default 4)")
    p.add_argument("--url", help="the control plane to push to (default: the last login's)")
    p.add_argument("--json", action="store_true", help="NDJSON events on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the control plane, then watch until SIGINT or SIGTERM."""
    import shutil
    import signal
    import tempfile
    import threading
    from pathlib import Path

    from vega.cli.commands.push import _Display
    from vega.client.credentials import credential_for
    from vega.client.deadline import new_client
    from vega.client.http import Http, HttpLimits
    from vega.client.nix import Nix, SubprocessRunner
    from vega.client.push import PushDeps, PushOptions, check_control_plane, user_error
    from vega.client.settings import read_settings, system_clock_ms
    from vega.client.upload import UploadClient, UploadLimits, static_bearer
    from vega.client.watch import DEFAULT_DB, NixDb, WatchOptions, watch_store
    from vega.errors import VegaError

    settings = read_settings(url=args.url)
    cred = credential_for(settings.config_dir, settings.url, system_clock_ms())
    db = NixDb(args.db or DEFAULT_DB)
    db.high_water()  # unreadable database: fail now, before anything else
    out, environ = sys.stdout, settings.environ
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    work = Path(tempfile.mkdtemp(prefix="vega-watch-"))
    try:
        with new_client() as client, new_client() as fresh:
            check_control_plane(Http(client, HttpLimits(timeout_s=10.0, tries=2)), cred.url, cred)
            deps = PushDeps(
                nix=Nix(SubprocessRunner(None)),
                uploader=UploadClient(
                    client,
                    cred.url,
                    static_bearer(cred.credential),
                    UploadLimits.from_environ(environ),
                    now_ms=system_clock_ms,
                ),
                probe=Http(client, HttpLimits(timeout_s=15.0, tries=1)),
                checker=Http(fresh, HttpLimits(timeout_s=5.0)),
                namespace=cred.namespace,
                work_dir=work,
            )
            options = PushOptions(
                skip_upstream=args.skip_upstream, upstream=args.upstream, jobs=max(1, args.jobs)
            )
            display = _Display(out, sys.stderr, environ, json_mode=args.json)

            def ready(start: int) -> None:
                if args.json:
                    style.emit_json({"event": "watching", "db": db.path, "after": start}, out)
                else:
                    style.success(
                        f"Watching the Nix store; pushing new paths to {cred.namespace}", environ, out
                    )
                    style.info("  (Ctrl-C to stop)", out)
                out.flush()

            try:
                report = watch_store(
                    db,
                    deps,
                    options,
                    WatchOptions(interval_s=max(0.05, args.interval), batch=max(1, args.batch)),
                    display.event,
                    stop,
                    on_ready=ready,
                )
            except (OSError, VegaError) as e:
                raise user_error(e, cred.url) from e
            finally:
                display.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if args.json:
        style.emit_json(
            {
                "event": "stopped",
                "pushed": report.pushed,
                "uploadedBytes": report.uploaded_bytes,
                "batches": report.batches,
                "notPushed": [p.absolute for p in report.not_pushed],
                "failed": report.failed,
            },
            out,
        )
    else:
        style.success(f"Stopped: pushed {report.pushed} path(s) in {report.batches} batch(es).", environ, out)
        if report.not_pushed:
            style.info(f"  not pushed ({len(report.not_pushed)}); push them with:", out)
            style.info("  vega push " + " ".join(p.absolute for p in report.not_pushed), out)
        for message in report.failed:
            style.info(f"  skipped a batch: {message.splitlines()[0]}", out)
    return 0
