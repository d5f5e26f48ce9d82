"""The stall watchdog: a diagnostic when no path has completed for a while.

Per in-flight path it keeps the stage, when the stage began, the bytes moved and a rate mark.
Every ``interval`` (60 s) a daemon timer checks: with a path in flight and at least
``warn_after`` since the last completion, it writes
``vega-attest: no path has completed for <N>s; in-flight:`` and one line per path.

Spec: agent.md §7.5.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Watchdog", "human_bytes"]


def human_bytes(n: float) -> str:
    """``< 1024`` as ``<n> B``; else KiB…TiB with one decimal below 10, else rounded."""
    if n < 1024:
        return f"{int(n)} B"
    value = float(n)
    unit = "B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}" if value < 10 else f"{round(value)} {unit}"


@dataclass(slots=True)
class _Flight:
    stage: str
    since: float
    moved: int | None = None
    total: int | None = None
    mark_bytes: int = 0
    mark_time: float = 0.0


class Watchdog:
    """Tracks in-flight paths and reports stalls.

    Args:
        warn_after: ``VEGA_STALL_WARN_SECONDS``.
        err: where reports go.
        monotonic: the clock.
        interval: seconds between checks of the background timer.
    """

    def __init__(
        self, warn_after: float, err: TextIO, monotonic: Callable[[], float], interval: float = 60.0
    ) -> None:
        self._warn_after = warn_after
        self._err = err
        self._clock = monotonic
        self._interval = interval
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._last_done = monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def stage(self, path: str, name: str) -> None:
        """``path`` (re)starts stage ``name``."""
        now = self._clock()
        with self._lock:
            self._flights[path] = _Flight(name, now, mark_time=now)

    def progress(self, path: str, moved: int, total: int) -> None:
        """Bytes moved in the current stage (not a completion)."""
        with self._lock:
            f = self._flights.get(path)
            if f is not None:
                f.moved, f.total = moved, total

    def done(self, path: str) -> None:
        """``path`` completed."""
        with self._lock:
            self._flights.pop(path, None)
            self._last_done = self._clock()

    def check(self) -> str | None:
        """The report if one is due (and write it), else None."""
        now = self._clock()
        with self._lock:
            quiet = now - self._last_done
            if not self._flights or quiet < self._warn_after:
                return None
            lines = [f"vega-attest: no path has completed for {round(quiet)}s; in-flight:"]
            for path, f in self._flights.items():
                extra = ""
                if f.moved is not None and f.total is not None:
                    span = now - f.mark_time
                    rate = max(0, f.moved - f.mark_bytes) / span if span > 0 else 0.0
                    f.mark_bytes, f.mark_time = f.moved, now
                    extra = f", {human_bytes(f.moved)}/{human_bytes(f.total)}, {human_bytes(rate)}/s"
                lines.append(f"  {f.stage} {path} ({round(now - f.since)}s in stage{extra})")
        text = "\n".join(lines) + "\n"
        self._err.write(text)
        self._err.flush()
        return text

    def start(self) -> None:
        """Check every ``interval`` on a daemon thread (it never keeps the process alive)."""

        def loop() -> None:
            while not self._stop.wait(self._interval):
                self.check()

        self._thread = threading.Thread(target=loop, name="vega-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background checks."""
        self._stop.set()
