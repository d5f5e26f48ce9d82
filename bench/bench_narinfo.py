"""Narinfo GETs per second: vega-server against nginx serving the same narinfo files statically.

Usage: .venv/bin/python -m bench.bench_narinfo [--narinfos N] [--seconds S] [--connections C] [--rounds R]

Issue 4 asks for this ratio. Both servers run in the same run on loopback with one worker
process each (`vega-server serve`: one uvicorn process; nginx: `worker_processes 1`), the
same N signed narinfos (vega-server from its database, nginx from files written from the
same texts), and the same client: an asyncio keep-alive HTTP/1.1 loop over C connections
requesting random existing narinfos for S seconds. The servers take turns for R rounds and
the best round of each is kept. The client is Python and shares the 2 cores, so it caps both
servers; the ratio understates nginx's lead when nginx is faster than the client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

from vega.core import nixbase32
from vega.core.hashes import HashAlgorithm, NixHash
from vega.core.narinfo import NarInfo, SignedFields, format_narinfo, sign_narinfo
from vega.core.storepath import StorePath
from vega.server.__main__ import ensure_keys
from vega.server.db import open_database
from vega.server.settings import ServerSettings
from vega.server.store import SHARED, Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_narinfos(settings: ServerSettings, n: int, rng: random.Random) -> dict[str, str]:
    shared, _, _ = ensure_keys(settings)
    out = {}
    for i in range(n):
        digest = rng.randbytes(20)
        refs = tuple(StorePath(rng.randbytes(20), f"dep-{i}-{k}") for k in range(3))
        file_hash = NixHash(HashAlgorithm.SHA256, rng.randbytes(32))
        info = NarInfo(
            signed=SignedFields(
                store_path=StorePath(digest, f"bench-{i}"),
                nar_hash=NixHash(HashAlgorithm.SHA256, rng.randbytes(32)),
                nar_size=rng.randrange(1000, 10**8),
                references=refs,
            ),
            url=f"nar/{file_hash.nix32}.nar.zst",
            compression="zstd",
            file_hash=file_hash,
            file_size=rng.randrange(1000, 10**7),
        )
        out[nixbase32.encode(digest)] = format_narinfo(sign_narinfo(info, shared))
    db = open_database(settings.resolved_database_url)
    store = Store(db)
    with store.write() as tx:
        for hash_part, text in out.items():
            store.put_narinfo(tx, SHARED, hash_part, text, "bench", "nar/x", 0)
    db.close()
    return out


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}")
        try:
            httpx2.get(url, timeout=2)
            return
        except httpx2.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def start_vega(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "vega.server", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


def start_nginx(root: Path, narinfos: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    www = root / "www"
    www.mkdir(parents=True)
    for hash_part, text in narinfos.items():
        (www / f"{hash_part}.narinfo").write_text(text)
    conf = root / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  client_body_temp_path {root}/body; proxy_temp_path {root}/proxy; fastcgi_temp_path {root}/fcgi;
  uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
  types {{ text/x-nix-narinfo narinfo; }}
  server {{
    listen 127.0.0.1:{port};
    root {www};
    location / {{ add_header Cache-Control "public, max-age=60"; }}
  }}
}}
"""
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-p", str(root), "-c", str(conf)], stdout=subprocess.DEVNULL)
    first = next(iter(narinfos))
    wait_ready(f"http://127.0.0.1:{port}/{first}.narinfo", proc)
    return proc


async def _connection(port: int, paths: list[str], until: float, rng: random.Random) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.perf_counter() < until:
            path = rng.choice(paths)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status != b"200":
                raise RuntimeError(f"GET {path}: {status.decode()}")
            done += 1
    finally:
        writer.close()
    return done


def measure(port: int, paths: list[str], seconds: float, connections: int) -> float:
    """Requests per second over ``connections`` keep-alive connections for ``seconds``."""

    async def run() -> int:
        until = time.perf_counter() + seconds
        counts = await asyncio.gather(
            *(_connection(port, paths, until, random.Random(i)) for i in range(connections))
        )
        return sum(counts)

    started = time.perf_counter()
    total = asyncio.run(run())
    return total / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_narinfo")
    parser.add_argument("--narinfos", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        print("bench_narinfo: nginx is not installed (apt-get install nginx-light); skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="vega-bench-narinfo-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's worker (nobody, when started as root) must read the files
        vega_port, nginx_port = free_port(), free_port()
        settings = ServerSettings(data_dir=root / "vega", port=vega_port)
        narinfos = make_narinfos(settings, args.narinfos, random.Random(4))
        paths = [f"/{h}.narinfo" for h in narinfos]
        vega = start_vega(root / "vega", vega_port)
        nginx = start_nginx(root / "nginx", narinfos, nginx_port)
        try:
            a = httpx2.get(f"http://127.0.0.1:{vega_port}{paths[0]}")
            b = httpx2.get(f"http://127.0.0.1:{nginx_port}{paths[0]}")
            assert a.text == b.text, f"servers disagree: {a.status_code} {b.status_code} {a.text[:80]!r}"
            vega_rates, nginx_rates = [], []
            for _ in range(args.rounds):  # take turns, so machine noise hits both alike
                vega_rates.append(measure(vega_port, paths, args.seconds, args.connections))
                nginx_rates.append(measure(nginx_port, paths, args.seconds, args.connections))
        finally:
            for proc in (vega, nginx):
                proc.send_signal(signal.SIGTERM if proc is vega else signal.SIGQUIT)
                proc.wait(timeout=30)
    ours, peer = max(vega_rates), max(nginx_rates)
    print(
        f"narinfo GET: vega-server {ours:.0f} req/s vs nginx {peer:.0f} req/s = {ours / peer:.2f}x of nginx"
        f" ({args.connections} keep-alive connections, {args.narinfos} narinfos, best of {args.rounds}"
        f" x {args.seconds:.0f}s; load average {os.getloadavg()[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
