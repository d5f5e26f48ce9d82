"""`vega push` of a large store path to a local `vega-server` vs `nix copy --to file://…?compression=zstd`.

Usage: .venv/bin/python -m bench.bench_push [--runs N] [--write]

The path is bench_nar's tree (a copy of the Python library repeated until it holds at least
500 MB and 50,000 files, added with `nix-store --add`). Each run:

* vega: a fresh `vega-server serve --dev` on loopback with an empty data directory (so the
  namespace is empty and the whole NAR is uploaded), `vega login` against it (development
  identity), then the measured `vega push --no-skip-upstream --json <path>`; its last event must
  report the path substitutable. The server runs on the same 2 cores and its work (checksum,
  writing the object, decompressing and hashing the NAR during the PUT, docs/adr/0010) is
  inside the time.
* nix: the measured `nix copy --to 'file:///…?compression=zstd' <path>` into an empty directory.

The tools take turns (machine noise hits both alike); best time and largest peak memory of the
client process are reported. Limits (issue 5): time <= 0.5x Nix's, peak memory < 200 MB.
``--write`` replaces the "Push" section of bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_nar import NIX_ENV, build_tree, store_path, vega_exe
from bench.measure import Run, report, run_command

ROOT = Path("/tmp/vega-bench-push")
README = Path(__file__).resolve().parent / "README.md"
SECTION = "## Push"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """`vega-server serve --dev` on a fresh data directory, and a HOME enrolled with it."""

    def __init__(self, root: Path) -> None:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home = root / "home"
        home.mkdir()
        self.env = dict(
            NIX_ENV,
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_CACHE_HOME=str(home / ".cache"),
        )
        self.env.pop("CI", None)
        server = Path(sys.executable).parent / "vega-server"
        self.log = open(root / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(server), "serve", "--dev", "--data-dir", str(root / "data"), "--port", str(self.port)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"vega-server did not start; see {root / 'server.log'}") from None
                time.sleep(0.1)
        subprocess.run(
            [vega_exe(), "login", "--url", self.url], env=self.env, check=True, capture_output=True
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CPU: dict[str, list[float]] = {"vega": [], "server": [], "nix": []}


def push_once(path: str) -> Run:
    server = LocalServer(ROOT / "server")
    try:
        out = ROOT / "push.ndjson"
        with open(out, "wb") as f:
            before, server_before = children_cpu_s(), process_cpu_s(server.proc.pid)
            run = run_command(
                [vega_exe(), "push", "--no-skip-upstream", "--json", path], env=server.env, stdout=f.fileno()
            )
            CPU["vega"].append(children_cpu_s() - before)
            CPU["server"].append(process_cpu_s(server.proc.pid) - server_before)
        events = [json.loads(line) for line in out.read_text().splitlines()]
        assert events[-1]["event"] == "check", events
        assert events[-1]["substitutable"] is True, events[-1]
        assert sum(e["event"] == "pushed" for e in events) == 1, events
        return run
    finally:
        server.stop()


def nix_copy_once(path: str) -> Run:
    target = ROOT / "nix-cache"
    shutil.rmtree(target, ignore_errors=True)
    env = dict(NIX_ENV, XDG_CACHE_HOME=str(ROOT / "nix-xdg-cache"))
    before = children_cpu_s()
    run = run_command(["nix", "copy", "--to", f"file://{target}?compression=zstd", path], env=env)
    CPU["nix"].append(children_cpu_s() - before)
    return run


def best(runs: list[Run]) -> Run:
    return Run(seconds=min(r.seconds for r in runs), peak_rss_mb=max(r.peak_rss_mb for r in runs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if shutil.which("nix") is None:
        sys.exit("bench_push: nix is not installed")
    tree, _size, files = build_tree()
    path = store_path(tree)
    ROOT.mkdir(parents=True, exist_ok=True)
    info = json.loads(
        subprocess.run(
            ["nix", "path-info", "--json", path], env=NIX_ENV, check=True, capture_output=True
        ).stdout
    )[0]
    print(f"path: {files:,} files and directories, NAR {info['narSize'] / 1e6:.0f} MB", flush=True)
    nix_copy_once(path)  # warm the page cache
    ours: list[Run] = []
    peer: list[Run] = []
    for k in range(args.runs):
        peer.append(nix_copy_once(path))
        ours.append(push_once(path))
        print(f"run {k + 1}: vega {ours[-1].seconds:.2f}s, nix {peer[-1].seconds:.2f}s", flush=True)
    load = os.getloadavg()[0]
    lines = [
        report(
            "`vega push` to a local vega-server vs `nix copy --to file://…?compression=zstd`",
            best(ours),
            best(peer),
            "nix",
            0.5,
        )
    ]
    peak = best(ours).peak_rss_mb
    lines.append(
        f"peak memory of vega push: {peak:.0f} MB ({'ok' if peak < 200 else 'OVER'} the 200 MB limit)"
    )
    lines.append(
        f"CPU seconds (user+sys, lowest run): vega push {min(CPU['vega']):.1f} + vega-server"
        f" {min(CPU['server']):.1f} vs nix copy {min(CPU['nix'][1:] or CPU['nix']):.1f}"
    )
    lines.append(f"load average at the end: {load:.1f}")
    for line in lines:
        print(line)
    if args.write:
        write_section(
            [f"Path: {files:,} files and directories, NAR {info['narSize'] / 1e6:.0f} MB.", ""]
            + [f"- {line}" for line in lines],
            args.runs,
        )


EXPLANATION = """\
Not met: the issue's 0.5x is out of reach on this 2-core machine, and the figures show why. Both
tools do the same client work: serialise the NAR, SHA-256 it, zstd level 3, SHA-256 the output
(compare the CPU seconds). `nix copy` does it on one core; `vega push` runs the walk, the hashing
and zstd's two workers in parallel, so packing takes about 2.2 s of wall time on a quiet machine
(4.0 s of CPU). Then comes the PUT, a step Nix does not have, on the same two cores and inside
the measured time: the presigned URL is bound to the compressed bytes' SHA-256, so the upload
cannot start before compression ends (docs/adr/0008). Since docs/adr/0010 the server checks the
NAR during the PUT (the body is decompressed and hashed in worker threads as it arrives) and
`/api/cache/push` compares the claims with what it recorded, so the separate verification before
signing (1.1 s: read back, decompress and hash the whole NAR) is gone; the push call now takes
about 10 ms. The PUT grew from 0.6 s to about 1.5 s instead, because on two cores it is
CPU-bound: writing the 200 MB object with its SHA-256 (0.7 s of CPU), decompressing (0.75 s) and
hashing the 835 MB NAR (0.4 s) come to about 2 s of server CPU (measured alone: PUT 0.63 s plus
verification 1.13 s before, PUT 1.43-1.51 s after). So the server's share shrank from about 1.8 s
to about 1.5 s of the 4 s, and 0.5x would still need the PUT to overlap compression (an upload
protocol that streams while compressing and binds the hash afterwards) and fewer client CPU
seconds than Nix spends (zstd level 1 is about 0.7x the packing CPU for 16% larger objects;
`PushOptions.zstd_level`).
With other jobs holding a core the parallel packing loses its edge (1.1x-1.4x at load 2-3,
earlier runs). Memory stays bounded (the compressed NAR spills to a temp file past 8 MiB), well
under the 200 MB limit.
"""


def write_section(lines: list[str], runs: int) -> None:
    """Replace (or append) this benchmark's section of the shared README, leaving the rest alone."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    body = (
        f"{SECTION}\n\n`python -m bench.bench_push` ({time.strftime('%Y-%m-%d')}, this machine, 2 cores,"
        f" best of {runs} runs each, the tools taking turns; see the script's docstring):\n\n"
        + "\n".join(lines)
        + "\n\n"
        + EXPLANATION
    )
    start = text.find(SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + body + ("" if end < 0 else text[end:])
    README.write_text(text)


if __name__ == "__main__":
    main()
