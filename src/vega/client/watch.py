"""``vega watch-store``: push every path that becomes valid in the local Nix store, as it appears.

Detection polls Nix's own database (docs/adr/0019-watch-store-polls-the-nix-database.md): the
``ValidPaths`` table has an autoincrement ``id``, so "what is new" is ``id > last`` and the whole
state is one integer, whatever the size of the store. A path appears there only once Nix
registered it as valid (complete, with its references), so nothing half-built is read. The
database is opened read-only (``mode=ro``) for each poll and closed again, so Nix's writers are
never blocked for longer than one short read.

Each poll reads at most ``batch`` new rows; their closure is pushed through the same pipeline as
``vega push`` (:func:`vega.client.push.push_paths`), then the next poll runs. Memory is bounded by
the batch size and the pipeline's own bounds. Derivations (``.drv``) are not pushed: they are
build recipes, not outputs (the outputs' closures are what a substituter serves).

Stopping: setting ``stop`` (the CLI does on SIGINT and SIGTERM) ends the wait between polls at
once and stops a batch's uploads within a chunk; the paths of that batch that were not pushed
are reported so they can be pushed with ``vega push``.

Spec: cachix's ``watch-store`` habit (issue 12); cli.md §9 (push) for each batch.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from vega.client.push import PushDeps, PushedPath, PushEvent, PushInterrupted, PushOptions, push_paths
from vega.core.storepath import StorePath, parse_store_path
from vega.errors import ConfigError, FormatError, NixError

__all__ = ["DEFAULT_DB", "NixDb", "WatchOptions", "WatchReport", "watch_store"]

DEFAULT_DB: Final = "/nix/var/nix/db/db.sqlite"
"""Where a local Nix store keeps its database."""


class NixDb:
    """Read-only access to the ``ValidPaths`` table of a Nix database.

    Args:
        path: the database file (``/nix/var/nix/db/db.sqlite`` for the system store).
    """

    def __init__(self, path: str | Path = DEFAULT_DB) -> None:
        self.path = str(path)

    def _query(self, sql: str, params: tuple[int, ...] = ()) -> list[tuple[object, ...]]:
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30.0)
        except sqlite3.Error as e:
            raise self._unreadable(e) from e
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.Error as e:
            raise self._unreadable(e) from e
        finally:
            conn.close()

    def _unreadable(self, e: sqlite3.Error) -> ConfigError:
        return ConfigError(
            f"cannot read the Nix database at {self.path} ({str(e).lower()})",
            next_steps=[
                f"ls -l {os.path.dirname(self.path)}   (run as the user that owns the store)",
                "vega watch-store --db <path to db.sqlite>",
            ],
        )

    def high_water(self) -> int:
        """The id of the newest valid path (0 for an empty store)."""
        rows = self._query("SELECT COALESCE(MAX(id), 0) FROM ValidPaths")
        value = rows[0][0] if rows else 0
        return value if isinstance(value, int) else 0

    def since(self, after: int, limit: int) -> list[tuple[int, str]]:
        """At most ``limit`` valid paths registered after id ``after``, oldest first."""
        rows = self._query("SELECT id, path FROM ValidPaths WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        return [(int(str(i)), str(p)) for i, p in rows]


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchOptions:
    """How often to poll and how much to take at once."""

    interval_s: float = 2.0
    """Seconds between polls when nothing new was found."""
    batch: int = 256
    """New paths read per poll (the memory bound)."""


@dataclass(slots=True)
class WatchReport:
    """What a watch pushed before it stopped."""

    pushed: int = 0
    """Paths uploaded and published (a count: a watch may run for months)."""
    uploaded_bytes: int = 0
    """Compressed bytes uploaded."""
    batches: int = 0
    """Batches pushed."""
    not_pushed: tuple[StorePath, ...] = ()
    """Novel paths of the batch a stop interrupted."""
    failed: list[str] = field(default_factory=list)
    """Batches nix could no longer describe (collected meanwhile), one message each (last 20)."""


def _count(report: WatchReport, pushed: Sequence[PushedPath]) -> None:
    report.pushed += len(pushed)
    report.uploaded_bytes += sum(p.file_size for p in pushed)


def _store_paths(rows: list[tuple[int, str]]) -> list[StorePath]:
    out: list[StorePath] = []
    for _, text in rows:
        if text.endswith(".drv"):
            continue
        try:
            path = parse_store_path(text)
        except FormatError:
            continue
        if os.path.lexists(path.absolute):
            out.append(path)
    return out


def watch_store(
    db: NixDb,
    deps: PushDeps,
    options: PushOptions,
    watch: WatchOptions,
    on_event: Callable[[PushEvent], None],
    stop: threading.Event,
    *,
    on_ready: Callable[[int], None] | None = None,
) -> WatchReport:
    """Push every path that becomes valid after the call starts, until ``stop`` is set.

    Args:
        db: the store's database.
        deps: the push adapters.
        options: the push options (upstream, jobs, spool bounds).
        watch: poll interval and batch size.
        on_event: push events of every batch.
        stop: set to stop (between polls at once; during a batch, within an upload chunk).
        on_ready: called with the starting id once the first poll is done.

    Raises:
        ConfigError: the database cannot be read.
        VegaError: the control plane refused a push (a credential problem stops the watch).
    """
    report = WatchReport()
    last = db.high_water()
    if on_ready is not None:
        on_ready(last)
    while not stop.is_set():
        rows = db.since(last, max(1, watch.batch))
        if not rows:
            stop.wait(watch.interval_s)
            continue
        last = rows[-1][0]
        paths = _store_paths(rows)
        if not paths:
            continue
        try:
            _, pushed = push_paths(deps, paths, options, on_event, stop, label=f"{len(paths)} new path(s)")
        except PushInterrupted as e:
            _count(report, e.pushed)
            report.not_pushed = e.not_pushed
            break
        except NixError as e:
            report.failed = [*report.failed[-19:], e.message]
            continue
        _count(report, pushed)
        report.batches += 1
    return report
