"""``vega push [installable...]``: build locally and upload novel store paths to the owner namespace.

Output: text on stdout (``✦ Building …``, the closure partition, the epilogue with the
``nix.conf`` lines and the substitutability verdict); a rich progress display (bytes, rate,
ETA, one line per path in flight) on stderr when stdout is a terminal and ``CI`` is unset;
plain ``  uploaded <done>/<total>`` lines otherwise; with ``--json`` only NDJSON events on
stdout (``plan``, ``pushed``, and a final ``check``). Nix's build logs go to stderr.

Spec: cli.md §9, §1.1 (output helpers), §1.5 (strict credential load).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from vega.cli import style

if TYPE_CHECKING:
    from vega.client.push import PushDeps, PushEvent, PushInterrupted, PushReport

__all__ = ["execute", "format_rate", "format_size", "installables_of", "register", "run"]

_EXAMPLES = """\
examples:
  vega push                         build the flake in . and push what the caches lack
  vega push .#app .#tool -j 8       two installables, eight uploads at a time
  vega push --no-skip-upstream      upload the whole closure, even what cache.nixos.org has
  vega push --json                  NDJSON events: plan, pushed, check
  vega push /nix/store/...-hello    push a store path's closure as it is, no build
  nix path-info -r .#app | vega push --stdin    push the store paths read from stdin (or: vega push -)

Ctrl-C stops the uploads, says what was and was not pushed and exits 130; run the same command
again to push the rest (what the namespace already has is skipped).
"""


def register(sub: Any) -> None:
    """Add the ``push`` subcommand."""
    p = sub.add_parser(
        "push",
        help="build locally and upload novel store paths into your owner namespace",
        description=(
            "Build each installable with nix, skip the paths your namespace or the upstream cache"
            " already serve, and upload the rest (NAR, zstd, checksummed) into owner:<userId>."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "installables",
        nargs="*",
        metavar="installable",
        help="flake installables or store paths (default: .); - reads store paths from stdin",
    )
    p.add_argument(
        "--stdin",
        action="store_true",
        help="read store paths (whitespace-separated) from stdin, like cachix push",
    )
    p.add_argument(
        "--no-skip-upstream",
        dest="skip_upstream",
        action="store_false",
        help="upload the whole closure, even paths the upstream serves",
    )
    p.add_argument("--upstream", default="https://cache.nixos.org", help="upstream cache to diff against")
    p.add_argument("-j", "--jobs", type=int, default=4, help="upload concurrency (default 4)")
    p.add_argument("--url", help="the control plane to push to (default: the last login's)")
    p.add_argument("--json", action="store_true", help="NDJSON progress events on stdout")
    p.set_defaults(run=run)


def format_size(n: float) -> str:
    """cli.md §9: units B KiB MiB GiB (1024 steps), one decimal when < 10 and not B."""
    units = ("B", "KiB", "MiB", "GiB")
    k = 0
    value = float(n)
    while value >= 1024 and k < len(units) - 1:
        value /= 1024
        k += 1
    if k == 0:
        return f"{int(value)} B"
    return f"{value:.1f} {units[k]}" if value < 10 else f"{value:.0f} {units[k]}"


def format_rate(bytes_per_s: float) -> str:
    """A transfer rate in the same units as :func:`format_size` (``MiB/s``, never ``MB/s``)."""
    return f"{format_size(bytes_per_s)}/s"


def installables_of(args: argparse.Namespace, stdin: TextIO) -> tuple[str, ...]:
    """The installables: the arguments, with ``-`` (or ``--stdin``) replaced by stdin's paths.

    Raises:
        ConfigError: ``--stdin`` or ``-`` gave no path at all.
    """
    from vega.errors import ConfigError

    given = list(args.installables)
    wants_stdin = bool(getattr(args, "stdin", False)) or "-" in given
    if not wants_stdin:
        return tuple(given or ["."])
    read = stdin.read().split()
    if not read:
        raise ConfigError(
            "no store paths on stdin",
            next_steps=["nix path-info -r .#app | vega push --stdin", "vega push .#app"],
        )
    out: list[str] = []
    for item in given:
        out.extend(read if item == "-" else [item])
    if "-" not in given:
        out.extend(read)
    return tuple(dict.fromkeys(out))


def run(args: argparse.Namespace) -> int:
    """Load the credential, check the control plane, build the real adapters, push, render."""
    import shutil
    import tempfile
    from pathlib import Path

    from vega.client.credentials import credential_for
    from vega.client.deadline import new_client
    from vega.client.http import Http, HttpLimits
    from vega.client.nix import Nix, SubprocessRunner, build_timeout_s, check_installable
    from vega.client.push import PushDeps, check_control_plane
    from vega.client.settings import read_settings, system_clock_ms
    from vega.client.upload import UploadClient, UploadLimits, static_bearer

    args.installables = list(installables_of(args, sys.stdin))
    for installable in args.installables:
        check_installable(installable)
    settings = read_settings(url=args.url)
    cred = credential_for(settings.config_dir, settings.url, system_clock_ms())

    def forward(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    with new_client() as client, new_client() as fresh:
        # Before any build: a push that cannot land should not cost a build first.
        check_control_plane(Http(client, HttpLimits(timeout_s=10.0, tries=2)), cred.url, cred)
        work = Path(tempfile.mkdtemp(prefix="vega-push-"))
        deps = PushDeps(
            nix=Nix(SubprocessRunner(forward, timeout_s=build_timeout_s(settings.environ))),
            uploader=UploadClient(
                client,
                cred.url,
                static_bearer(cred.credential),
                UploadLimits.from_environ(settings.environ),
                now_ms=system_clock_ms,
            ),
            probe=Http(client, HttpLimits(timeout_s=15.0, tries=1)),
            checker=Http(fresh, HttpLimits(timeout_s=5.0)),
            namespace=cred.namespace,
            work_dir=work,
        )
        try:
            return execute(args, deps, settings.environ)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def execute(
    args: argparse.Namespace,
    deps: PushDeps,
    environ: Mapping[str, str],
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Push with ``deps`` and render (tests call this directly with in-process adapters).

    Raises:
        VegaError: the push failed; a nix failure, a network failure or a missing file is one
            sentence with ``Try:`` lines (nix's own error went to stderr as it ran, once).
    """
    from vega.client.push import PushInterrupted, PushOptions, push, user_error
    from vega.errors import VegaError

    out = out or sys.stdout
    err = err or sys.stderr
    options = PushOptions(
        installables=tuple(args.installables or ["."]),
        skip_upstream=args.skip_upstream,
        upstream=args.upstream,
        jobs=max(1, args.jobs),
    )
    display = _Display(out, err, environ, json_mode=args.json)
    try:
        report = push(deps, options, display.event)
    except PushInterrupted as stopped:
        display.close()
        return _interrupted(stopped, args.json, environ, out, err)
    except (OSError, VegaError) as e:
        raise user_error(e, deps.uploader.base_url) from e
    finally:
        display.close()
    if args.json:
        style.emit_json(
            {
                "event": "check",
                "namespace": report.namespace,
                "pushed": len(report.pushed),
                "substituter": report.substituter,
                "publicKey": report.public_key,
                "substitutable": report.check.ok,
                "reason": report.check.reason,
            },
            out,
        )
        return 0 if report.check.ok else 1
    return _epilogue(report, environ, out, err)


def _interrupted(
    stopped: PushInterrupted, json_mode: bool, environ: Mapping[str, str], out: TextIO, err: TextIO
) -> int:
    """Ctrl-C: what was and was not pushed, and how to resume; exit 130."""
    if json_mode:
        style.emit_json(
            {
                "event": "interrupted",
                "pushed": [p.path.absolute for p in stopped.pushed],
                "notPushed": [p.absolute for p in stopped.not_pushed],
                "notStarted": list(stopped.pending),
                "exitCode": 130,
            },
            out,
        )
        return 130
    err.write(f"\ninterrupted: pushed {len(stopped.pushed)} path(s)")
    err.write(f", {len(stopped.not_pushed)} not pushed\n" if stopped.not_pushed else "\n")
    for p in stopped.pushed:
        err.write(f"  pushed     {p.path.absolute}\n")
    for q in stopped.not_pushed:
        err.write(f"  not pushed {q.absolute}\n")
    for i in stopped.pending:
        err.write(f"  not started {i}\n")
    err.write("Run the same command again to push the rest (what was pushed is skipped).\n")
    err.flush()
    return 130


def _epilogue(report: PushReport, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    from vega.client.push import host_config_lines

    grey = style.use_colour(out, environ)

    def dim(text: str) -> str:
        return f"\x1b[90m{text}\x1b[0m" if grey else text

    style.success(
        f"Pushed {len(report.pushed)} path(s) to {report.namespace}.",
        environ,
        out,
    )
    style.info(dim("  Anyone who trusts your namespace's key can substitute them (the lines below)."), out)
    if report.public_key is not None:
        style.info("", out)
        for line in host_config_lines(report.substituter, report.public_key):
            style.info(dim(line), out)
    style.info("", out)
    if report.check.ok:
        style.success(
            f"Checked as a fresh client: {report.check.checked} path(s) substitutable"
            f" from {report.substituter}",
            environ,
            out,
        )
        return 0
    style.fail(f"not substitutable from {report.substituter}: {report.check.reason}", environ, (), err)
    return 1


class _Display:
    """Renders push events: NDJSON, a rich live display, or plain periodic lines."""

    def __init__(
        self,
        out: TextIO,
        err: TextIO,
        environ: Mapping[str, str],
        *,
        json_mode: bool,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 10.0,
    ) -> None:
        self._clock = clock
        self._every_s = every_s
        self._last_line = clock()
        self.out = out
        self.err = err
        self.environ = environ
        self.json = json_mode
        self.tty = not json_mode and style.is_interactive(out, environ)
        self._rich: Any = None
        self._overall: Any = None
        self._tasks: dict[object, Any] = {}
        self._credit: dict[object, float] = {}
        self._credited = 0.0
        self._sizes: dict[object, int] = {}
        self._pushed_paths = 0
        self._pushed_bytes = 0
        self._total_paths = 0

    def event(self, event: PushEvent) -> None:
        from vega.client.push import BuildStarted, PackProgress, PathPushed, Planned, UploadProgress

        if isinstance(event, BuildStarted):
            self._stop()
            if not self.json:
                style.success(f"Building {event.installable}", self.environ, self.out)
        elif isinstance(event, Planned):
            if self.json:
                style.emit_json(
                    {
                        "event": "plan",
                        "installable": event.installable,
                        "closure": event.closure,
                        "skipped": event.skipped,
                        "novel": len(event.novel),
                        "cached": event.cached,
                        "upstream": event.upstream,
                        "earlier": event.earlier,
                        "narBytes": event.nar_bytes,
                    },
                    self.out,
                )
                return
            extra = f", {event.cached} already in the namespace" if event.cached else ""
            style.info(
                f"  Closure {event.closure} paths: {len(event.novel)} novel,"
                f" {event.upstream} already upstream{extra}",
                self.out,
            )
            self._total_paths = len(event.novel)
            self._pushed_paths = self._pushed_bytes = 0
            self._sizes = {p.path: p.nar_size for p in event.novel}
            self._credit.clear()
            self._credited = 0.0
            if self.tty and event.novel:
                self._start(event.nar_bytes)
        elif isinstance(event, PackProgress):
            self._advance(event.path, event.nar_bytes / max(1, event.nar_size) / 2)
            self._show(event.path, f"packing {event.path.name}", event.nar_bytes, event.nar_size)
            self._periodic(f"packing {event.path.name}", event.nar_bytes, event.nar_size)
        elif isinstance(event, UploadProgress):
            self._advance(event.path, 0.5 + event.moved / max(1, event.total) / 2)
            self._show(event.path, f"uploading {event.path.name}", event.moved, event.total)
            self._periodic(f"uploading {event.path.name}", event.moved, event.total)
        elif isinstance(event, PathPushed):
            self._pushed(event)

    def _periodic(self, what: str, done: int, total: int) -> None:
        """Plain mode: at most one progress line every ``every_s`` seconds, whatever changed."""
        if self.json or self.tty:
            return
        now = self._clock()
        if now - self._last_line >= self._every_s:
            self._last_line = now
            self.out.write(f"  {what}: {format_size(done)} of {format_size(total)}\n")
            self.out.flush()

    def _advance(self, path: object, fraction: float) -> None:
        """Credit ``path`` with ``fraction`` of its NAR size on the overall bar (in NAR bytes).

        Packing is the first half of a path, uploading the second; a path is credited in full only
        when the control plane acknowledged it (:class:`PathPushed`), so the bar reaches 100% only
        when the last path's last byte is acknowledged.
        """
        size = self._sizes.get(path, 0)
        cap = max(0.0, size - 1.0)
        value = min(cap, max(self._credit.get(path, 0.0), fraction * size))
        self._settle(path, value)

    def _settle(self, path: object, value: float) -> None:
        self._credited += value - self._credit.get(path, 0.0)
        self._credit[path] = value
        if self._rich is not None:
            self._rich.update(self._overall, completed=self._credited)

    @property
    def overall(self) -> tuple[float, int]:
        """NAR bytes credited on the overall bar, and its total."""
        return self._credited, sum(self._sizes.values())

    # -- rich ------------------------------------------------------------------------------------

    def _start(self, nar_bytes: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(file=self.err, no_color="NO_COLOR" in self.environ)
        self._rich = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[sizes]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._rich.start()
        self._overall = self._rich.add_task("  Packing and uploading", total=nar_bytes, sizes="", rate="")
        self._tasks.clear()

    def _show(self, path: object, description: str, done: int, total: int) -> None:
        if self._rich is None:
            return
        task = self._tasks.get(path)
        if task is None:
            task = self._tasks[path] = self._rich.add_task(description, total=total, sizes="", rate="")
        self._rich.update(task, description=f"    {description}", completed=done, total=total)
        self._label(task)
        self._label(self._overall)

    def _label(self, task_id: Any) -> None:
        """Sizes and rate of a task in one unit system: ``MiB of MiB``, ``MiB/s`` (format_size)."""
        task = self._rich._tasks.get(task_id)
        if task is None:
            return
        total = int(task.total or 0)
        speed = task.finished_speed or task.speed
        rate = format_rate(speed) if speed else ""
        self._rich.update(task_id, sizes=f"{format_size(task.completed)} of {format_size(total)}", rate=rate)

    def _pushed(self, event: Any) -> None:
        self._settle(event.path, float(self._sizes.get(event.path, 0)))
        self._pushed_paths = event.done
        self._pushed_bytes += event.size
        if self.json:
            style.emit_json(
                {
                    "event": "pushed",
                    "path": event.path.absolute,
                    "size": event.size,
                    "done": event.done,
                    "total": event.total,
                },
                self.out,
            )
            return
        if self._rich is not None:
            task = self._tasks.pop(event.path, None)
            if task is not None:
                self._rich.remove_task(task)
            self._rich.console.print(f"  pushed {event.path.name} ({format_size(event.size)})")
            if event.done == event.total:
                self._stop()
        elif event.done == event.total or self._clock() - self._last_line >= self._every_s:
            style.info(f"  uploaded {event.done}/{event.total} ({format_size(self._pushed_bytes)})", self.out)
            self._last_line = self._clock()

    def _stop(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def close(self) -> None:
        """Stop any live display."""
        self._stop()
