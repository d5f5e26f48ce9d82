"""Control plane: attestation load, narinfo GETs against nginx, attest-path overhead.

Usage: .venv/bin/python -m bench.bench_server [--attesters 16] [--outputs 50] [--duration 5]
       [--postgres URL] [--write]

1. The load of tests/server/test_load.py at full size against a real ``vega-server
   serve --dev`` (subprocess, loopback, fresh data directory): 16 concurrent simulated
   CI jobs x 50 outputs, each presigned, uploaded and attested; p50/p99 latency of the
   attest request and of the whole output, and attestations per second. The log is
   audited afterwards (every acknowledged attestation logged once, every checkpoint
   seen consistent with the final one), so a fast but wrong run does not count.
2. narinfo GET requests/s: the same vega-server and Debian's nginx serving the same
   narinfo files (the texts vega-server serves, written under the same paths) statically
   from a directory, both on loopback, one process each (nginx ``worker_processes 1``,
   uvicorn one worker), access logs off on both, the same load generator for both
   (``wrk`` from Debian, installed with apt-get if missing; a threaded httpx2 client when
   wrk cannot be had), alternating runs, best of each. Printed as a ratio.
3. Attest-path overhead per output, NAR transfer excluded: one client, objects already
   uploaded, the time of each ``POST /api/cache/attest`` in sequence (token check,
   comparison with the NAR record made during the PUT (ADR 0010), store, log commit,
   decision), against a narinfo GET on the same connection.

``--write`` replaces (or appends) the "Control plane" section of bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx2
from tests.server.attestload import (
    Job,
    Output,
    ServerProcess,
    audit,
    ci_token,
    free_port,
    percentile,
    plan,
    run_load,
)

from bench.measure import write_readme_section
from vega.server.db import open_database
from vega.server.store import Store

SECTION = "## Control plane"
STATS: dict[tuple[str, str], float] = {}
"""p50 seconds by (what, backend): ("load", ...) is the attest under the load, ("alone", ...) sequential."""
README = Path(__file__).with_name("README.md")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# -- 1. the load -------------------------------------------------------------------------------


def bench_load(
    url: str, attesters: int, outputs: int, shared: int, lines: list[str], backend: str = "SQLite"
) -> list[str]:
    jobs = plan(attesters, outputs, shared)
    result = run_load(url, jobs)
    acked = result.acknowledged
    if result.errors or len(acked) != attesters * outputs:
        raise SystemExit(f"load failed: {len(acked)} acknowledged, errors {result.errors[:5]}")
    report = audit(url, acked, result.checkpoints, sths=result.sths, lookups=100)
    attest = [a.attest_s for a in acked]
    total = [a.total_s for a in acked]
    rate = len(acked) / result.wall_s
    STATS[("load", backend)] = percentile(attest, 0.5)
    lines.append(
        f"| {attesters} x {outputs} attestations ({shared} outputs built by every job), {backend} | "
        f"{rate:.0f} attestations/s ({len(acked)} in {result.wall_s:.1f} s) | "
        f"attest p50 {ms(percentile(attest, 0.5))}, p99 {ms(percentile(attest, 0.99))}; "
        f"presign+PUT+attest p50 {ms(percentile(total, 0.5))}, p99 {ms(percentile(total, 0.99))} | "
        f"log {report.size} entries, {report.checkpoints_checked} tree heads seen, all consistent |"
    )
    print(
        f"load ({backend}): {len(acked)} attestations in {result.wall_s:.2f}s = {rate:.0f}/s;"
        f" attest p50 {ms(percentile(attest, 0.5))} p99 {ms(percentile(attest, 0.99))};"
        f" per output p50 {ms(percentile(total, 0.5))} p99 {ms(percentile(total, 0.99))};"
        f" log audited: {report}",
        flush=True,
    )
    paths = []
    for job, outs in jobs:
        owner, repo = job.repository.split("/")
        paths += [f"/tenant/{owner}/{repo}/{o.hash_part}.narinfo" for o in outs]
    paths += [f"/{o.hash_part}.narinfo" for o in jobs[0][1] if o.name.startswith("common-")]
    return paths


# -- 2. narinfo GETs vs nginx --------------------------------------------------------------------


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  types {{ text/x-nix-narinfo narinfo; }}
  default_type application/octet-stream;
  client_body_temp_path {prefix}/tmp-body;
  proxy_temp_path {prefix}/tmp-proxy;
  fastcgi_temp_path {prefix}/tmp-fastcgi;
  uwsgi_temp_path {prefix}/tmp-uwsgi;
  scgi_temp_path {prefix}/tmp-scgi;
  server {{
    listen 127.0.0.1:{port};
    root {prefix}/root;
    location / {{ add_header Cache-Control "public, max-age=60"; }}
  }}
}}
"""


def ensure_debian(binary: str, package: str) -> str | None:
    """The path of ``binary``, installing Debian's ``package`` with apt-get if it is missing."""
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found:
        return found
    print(f"installing Debian's {package} (apt-get)...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", package], env=env, capture_output=True
    )
    if done.returncode != 0:
        print(f"apt-get install {package} failed: {done.stderr.decode(errors='replace')[-500:]}", flush=True)
        return None
    return shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)


class Nginx:
    """Debian's nginx serving a directory on a loopback port (one worker, no access log)."""

    def __init__(self, binary: str, prefix: Path) -> None:
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=self.port))
        self.proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx2.get(f"{self.url}/", timeout=2)
                return
            except httpx2.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    raise SystemExit(f"nginx did not start: {err[-500:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def mirror_narinfos(url: str, paths: Sequence[str], root: Path) -> None:
    """Write what vega-server serves at each path to ``root`` + path (the nginx copy)."""
    with httpx2.Client(timeout=30) as client:
        for p in paths:
            r = client.get(f"{url}{p}")
            if (
                r.status_code != 200
                or r.headers.get("content-type", "").split(";")[0] != "text/x-nix-narinfo"
            ):
                raise SystemExit(f"vega-server: {p}: {r.status_code}")
            target = root / p.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(r.content)
    # nginx's workers drop root: let them read the copy (and reach it through the temp directory)
    os.chmod(root.parent.parent, 0o755)  # noqa: S103 - a temporary benchmark directory
    for d, _, files in os.walk(root.parent):
        os.chmod(d, 0o755)  # noqa: S103 - a temporary benchmark directory
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)


def same_bytes(a: str, b: str, paths: Sequence[str]) -> None:
    with httpx2.Client(timeout=30) as client:
        for p in paths[:: max(1, len(paths) // 50)]:
            ra, rb = client.get(f"{a}{p}"), client.get(f"{b}{p}")
            if ra.status_code != 200 or ra.content != rb.content:
                raise SystemExit(f"{p}: vega {ra.status_code} and nginx {rb.status_code} differ")
            if rb.headers.get("content-type") != "text/x-nix-narinfo":
                raise SystemExit(f"nginx content type {rb.headers.get('content-type')}")


def wrk_run(wrk: str, url: str, script: Path, duration: int, connections: int) -> tuple[float, str, str]:
    """Requests/s, p50 and p99 latency of one wrk run."""
    argv = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, check=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} non-2xx answers under wrk")
    p50 = re.search(r"\s50%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"\s99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    return rate, p50, p99


def python_run(url: str, paths: Sequence[str], duration: int, threads: int) -> tuple[float, str, str]:
    """The fallback load generator: ``threads`` httpx2 clients looping over ``paths``."""
    stop = time.monotonic() + duration
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        mine = []
        with httpx2.Client(timeout=30) as client:
            i = offset
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                r = client.get(f"{url}{paths[i % len(paths)]}")
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise SystemExit(f"{url}: {r.status_code}")
                i += 1
        with lock:
            latencies.extend(mine)

    ts = [threading.Thread(target=worker, args=(k * 37,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return len(latencies) / duration, ms(percentile(latencies, 0.5)), ms(percentile(latencies, 0.99))


def bench_narinfo(url: str, paths: Sequence[str], duration: int, lines: list[str], tmp: Path) -> None:
    nginx_bin = ensure_debian("nginx", "nginx")
    if nginx_bin is None:
        lines.append("| narinfo GET | nginx unavailable: not measured | | |")
        return
    prefix = tmp / "nginx"
    (prefix / "root").mkdir(parents=True)
    mirror_narinfos(url, paths, prefix / "root")
    nginx = Nginx(nginx_bin, prefix)
    try:
        same_bytes(url, nginx.url, paths)
        wrk = ensure_debian("wrk", "wrk")
        connections = 16
        if wrk is not None:
            script = tmp / "paths.lua"
            listed = ",\n".join(f'  "{p}"' for p in paths)
            script.write_text(
                "local paths = {\n" + listed + "\n}\nlocal i = 0\n"
                "request = function()\n  i = i + 1\n"
                "  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n"
            )
            tool = f"wrk -t1 -c{connections} -d{duration}s, {len(paths)} paths round-robin"

            def run(target: str) -> tuple[float, str, str]:
                return wrk_run(wrk, target, script, duration, connections)
        else:
            tool = f"httpx2, {connections} threads, {duration} s, {len(paths)} paths round-robin"

            def run(target: str) -> tuple[float, str, str]:
                return python_run(target, paths, duration, connections)

        run(url)  # warm both
        run(nginx.url)
        ours, theirs = [], []
        for _ in range(2):  # alternate, best of each
            ours.append(run(url))
            theirs.append(run(nginx.url))
        v = max(ours, key=lambda r: r[0])
        n = max(theirs, key=lambda r: r[0])
    finally:
        nginx.stop()
    ratio = v[0] / n[0]
    print(
        f"narinfo GET ({tool}): vega-server {v[0]:.0f} req/s (p50 {v[1]}, p99 {v[2]})"
        f" vs nginx {n[0]:.0f} req/s (p50 {n[1]}, p99 {n[2]}) = {ratio:.2f}x",
        flush=True,
    )
    lines.append(
        f"| narinfo GET, {tool} | vega-server {v[0]:.0f} req/s vs nginx {n[0]:.0f} req/s"
        f" = **{ratio:.2f}x** | "
        f"latency p50/p99: vega {v[1]}/{v[2]}, nginx {n[1]}/{n[2]} | same bytes and content type checked |"
    )


# -- 3. attest-path overhead ------------------------------------------------------------------------


def bench_attest_overhead(url: str, n: int, lines: list[str], backend: str = "SQLite") -> None:
    job = Job("bench/overhead", "8000001")
    outputs = [Output.make(f"overhead-{i}") for i in range(n)]
    with httpx2.Client(timeout=60) as client:
        token = ci_token(client, url, job)
        auth = {"Authorization": f"Bearer {token}"}
        for out in outputs:  # the NAR transfer, not measured
            r = client.post(
                f"{url}/api/cache/upload-url",
                json={"narUrl": out.nar_url, "fileHash": out.file_hash},
                headers=auth,
            )
            checksum = base64.b64encode(hashlib.sha256(out.compressed).digest()).decode()
            put = client.put(
                r.json()["url"], content=out.compressed, headers={"x-amz-checksum-sha256": checksum}
            )
            put.raise_for_status()
        attest = []
        for out in outputs:
            t0 = time.perf_counter()
            r = client.post(f"{url}/api/cache/attest", json=out.body(), headers=auth)
            attest.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise SystemExit(f"attest: {r.status_code} {r.text}")
        gets = []
        for out in outputs:
            t0 = time.perf_counter()
            r = client.get(f"{url}/tenant/bench/overhead/{out.hash_part}.narinfo")
            gets.append(time.perf_counter() - t0)
            r.raise_for_status()
    a50, g50 = statistics.median(attest), statistics.median(gets)
    STATS[("alone", backend)] = a50
    print(
        f"attest overhead ({backend}, sequential, NAR already uploaded, {n} outputs): p50 {ms(a50)}"
        f" p99 {ms(percentile(attest, 0.99))} vs narinfo GET p50 {ms(g50)} = {a50 / g50:.1f}x",
        flush=True,
    )
    lines.append(
        f"| attest-path overhead per output (one client, {n} outputs, NAR already uploaded), {backend} | "
        f"p50 {ms(a50)}, p99 {ms(percentile(attest, 0.99))} | "
        f"= {a50 / g50:.1f}x a narinfo GET on the same connection (p50 {ms(g50)}) | "
        "token check, compare with the PUT-time NAR record (ADR 0010), store, log commit, decision |"
    )


def db_read_us(server: ServerProcess, paths: Sequence[str]) -> float:
    """Microseconds of the database part of a narinfo GET: one read transaction, one row, in process."""
    db = server.open_database()
    store = Store(db)
    keys = []
    for p in paths:
        parts = p.strip("/").split("/")
        namespace = "/".join(parts[1:3]) if parts[0] == "tenant" else ""
        keys.append((namespace, parts[-1].removesuffix(".narinfo")))
    n = 0
    t0 = time.perf_counter()
    for _ in range(5):
        for namespace, hash_part in keys:
            with store.read() as tx:
                store.get_narinfo(tx, namespace, hash_part)
            n += 1
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed / n * 1e6


def write_readme(lines: list[str], cpus: int, notes: Sequence[str]) -> None:
    """Replace (or append) this benchmark's section of the shared README, leaving the rest alone."""
    load = os.getloadavg()[0]
    body = (
        f"{SECTION}\n\n`python -m bench.bench_server` ({time.strftime('%Y-%m-%d')},"
        f" this machine: {cpus} cores, load average {load:.1f} at the end (other engineers' jobs);"
        " load generator and servers share the cores; vega-server is one uvicorn worker on the"
        " venv's uvicorn (h11, asyncio: no httptools/uvloop installed); nginx is Debian's with"
        " `worker_processes 1`; access logs off on both):\n\n"
        "| What | Figure | Detail | Checked |\n|---|---|---|---|\n"
        + "\n".join(lines)
        + "\n\n"
        + "".join(f"- {n}\n" for n in notes)
        + "\nThe load test `tests/server/test_load.py` (marker `slow`, SQLite and, when configured,"
        " PostgreSQL) runs the same full 16 x 50 load in CI without timing anything (about 10-20 s"
        " each); `tests/server/test_fault.py` SIGKILLs the server twice during a 16 x 30 load.\n"
    )
    write_readme_section(README, SECTION, body)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attesters", type=int, default=16)
    parser.add_argument("--outputs", type=int, default=50)
    parser.add_argument("--shared", type=int, default=10)
    parser.add_argument("--duration", type=int, default=5, help="seconds per narinfo GET run")
    parser.add_argument("--overhead-outputs", type=int, default=200)
    parser.add_argument("--postgres", metavar="URL", help="also run the load on this PostgreSQL (own schema)")
    parser.add_argument("--write", action="store_true", help="update bench/README.md")
    args = parser.parse_args(list(argv))
    lines: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server = ServerProcess(tmp / "data", access_log=False)
        server.start()
        try:
            paths = bench_load(server.url, args.attesters, args.outputs, args.shared, lines)
            bench_narinfo(server.url, paths, args.duration, lines, tmp)
            db_us = db_read_us(server, paths)
            notes.append(
                f"Where a narinfo GET's time goes: its database read (one SQLite read transaction,"
                f" in process) takes {db_us:.0f} µs; the rest is the Python HTTP stack (h11 parsing,"
                " Starlette routing and middleware, the thread-pool hop). nginx answers from the page"
                " cache in C, so the ratio mostly measures Python against nginx."
            )
            print(f"narinfo database read: {db_us:.0f} us", flush=True)
            bench_attest_overhead(server.url, args.overhead_outputs, lines)
        finally:
            server.stop()
        if args.postgres:
            schema = f"bench_{os.getpid()}"
            pg = ServerProcess(tmp / "pg", access_log=False, postgres=(args.postgres, schema))
            pg.start()
            try:
                bench_load(pg.url, args.attesters, args.outputs, args.shared, lines, "PostgreSQL")
                bench_attest_overhead(pg.url, args.overhead_outputs, lines, "PostgreSQL")
            finally:
                pg.stop()
                db = open_database(args.postgres)
                with db.transaction() as tx:
                    tx.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                db.close()
    if all((k, b) in STATS for k in ("load", "alone") for b in ("SQLite", "PostgreSQL")):
        notes.append(
            f"PostgreSQL: one attestation alone costs {ms(STATS[('alone', 'PostgreSQL')])} (SQLite"
            f" {ms(STATS[('alone', 'SQLite')])}), but under the 16-job load its p50 is"
            f" {ms(STATS[('load', 'PostgreSQL')])} (SQLite {ms(STATS[('load', 'SQLite')])}), about 16"
            " times the cost alone: consistent with one server process serialising its writers"
            " (`Database.lock` takes a process-wide lock) while each PostgreSQL transaction makes"
            " several network round trips. PostgreSQL is there to run several server processes,"
            " which this benchmark does not."
        )
    if args.write:
        write_readme(lines, os.cpu_count() or 1, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
