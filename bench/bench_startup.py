"""Startup: `vega --help` in fresh processes against `python3 -c pass` and `nix --version`.

Usage: .venv/bin/python -m bench.bench_startup [--runs N]

Issue 5 requires `vega --help` under 150 ms (imports are lazy). Each command runs N times in a
fresh process, the commands taking turns so machine noise hits all alike, and the best is kept.
Peers in the same run: the bare interpreter (the floor any Python CLI pays) and `nix --version`
(the tool users run beside us). Also lists the slowest top-level imports of `vega --help` from
`python -X importtime`. Exits 1 when over the target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.measure import Run, report

TARGET_S = 0.150


def _slowest_imports(python: str, count: int = 6) -> list[tuple[int, str]]:
    """Cumulative import times (µs) of `vega --help`, slowest first (top-level packages only)."""
    code = "from vega.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    done = subprocess.run(
        [python, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    rows: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.removeprefix(" ").startswith(" "):  # nested imports are indented
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def _cpu_run(argv: list[str]) -> tuple[Run, float]:
    """One run: wall time and peak memory (as bench.measure), plus the child's CPU seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed")
    return Run(seconds=elapsed, peak_rss_mb=usage.ru_maxrss / 1024), usage.ru_utime + usage.ru_stime


def _interleaved(runs: int, commands: dict[str, list[str]]) -> dict[str, tuple[Run, float]]:
    """Best of ``runs`` (wall, and CPU) per command, taking turns so noise hits every command alike."""
    seen: dict[str, list[tuple[Run, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            seen[name].append(_cpu_run(argv))
    return {
        name: (
            Run(seconds=min(r.seconds for r, _ in rs), peak_rss_mb=max(r.peak_rss_mb for r, _ in rs)),
            min(cpu for _, cpu in rs),
        )
        for name, rs in seen.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    python = sys.executable
    vega = str(Path(python).parent / "vega")

    commands = {
        "vega": [vega, "--help"],
        "doctor": [vega, "doctor", "--help"],
        "python": [python, "-c", "pass"],
        "nix": ["nix", "--version"],
    }
    if shutil.which("nix") is None:
        del commands["nix"]
    best = _interleaved(args.runs, commands)
    ours, doctor_help, bare = best["vega"][0], best["doctor"][0], best["python"][0]
    nix = best["nix"][0] if "nix" in best else None

    print(report("vega --help", ours, bare, "python3 -c pass"))
    if nix is not None:
        print(report("vega --help", ours, nix, "nix --version"))
    print(report("vega doctor --help", doctor_help, bare, "python3 -c pass"))
    over_floor_ms = (ours.seconds - bare.seconds) * 1000
    print(f"vega --help costs {over_floor_ms:.0f} ms above the bare interpreter")
    cpu = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, (_, seconds) in best.items())
    print(f"CPU (user+sys, best; less sensitive to a loaded machine): {cpu}")
    verdict = "ok" if ours.seconds < TARGET_S else "OVER"
    print(f"target: vega --help {ours.seconds * 1000:.0f} ms < {TARGET_S * 1000:.0f} ms: {verdict}")
    print("slowest top-level imports of `vega --help` (cumulative):")
    for micros, name in _slowest_imports(python):
        print(f"  {micros / 1000:7.1f} ms  {name}")
    return 0 if ours.seconds < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
