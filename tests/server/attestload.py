"""Attestation load rig: a real ``vega-server serve --dev`` subprocess, simulated CI jobs, a log auditor.

Shared by ``tests/server/test_load.py``, ``tests/server/test_fault.py`` and
``bench/bench_server.py``. Everything goes over real HTTP on loopback:

* :class:`ServerProcess` runs ``python -m vega.server serve --dev`` on a fresh data
  directory and a free loopback port and waits for ``/healthz``;
* a simulated CI job gets its environment from ``POST /_dev/ci-token`` and its OIDC
  JWT from the Actions-compatible token endpoint (``ACTIONS_ID_TOKEN_REQUEST_URL``
  with ``Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN``, audience the
  public URL), exactly as docs/development-identity.md tells a CI job to;
* each output is a small synthetic NAR (``vega.core.nar.NarWriter``), zstd-compressed,
  presigned (``/api/cache/upload-url``), PUT with ``x-amz-checksum-sha256`` and attested
  (``/api/cache/attest``); every answer and every checkpoint a client saw is kept;
* :func:`audit` checks the log against all that: every acknowledged attestation is
  in the log and provable through ``/log/lookup`` (inclusion proofs verified with
  ``vega.core.merkle``), no (attester, output) is logged twice, the whole log (read
  back through entry bundles) hashes to the final checkpoint's root, and every
  checkpoint seen is consistent with the final one (``/log/proof/consistency``).

Spec: issue 4 (acceptance: load and fault tests); protocol.md §4.1-§4.3, §5, §10.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import zstandard

from tests.server.cachekit import attest_body, nix32_sha256
from vega.core import checkpoint, merkle, nixbase32, tiles, tlog
from vega.core.nar import (
    DirectoryEnd,
    DirectoryStart,
    EntryEnd,
    EntryStart,
    FileChunk,
    NarEvent,
    NarWriter,
    RegularFile,
)
from vega.core.narinfo import fingerprint, parse_narinfo, verify_narinfo_signature
from vega.core.note import VerifierKey, parse_verifier_key
from vega.core.signing import parse_public_key
from vega.server.db import Database, open_database
from vega.server.store import Store

__all__ = [
    "REPRO_WORKFLOW",
    "Ack",
    "Audit",
    "AuditError",
    "Job",
    "LoadResult",
    "Output",
    "ServerProcess",
    "attest_one",
    "audit",
    "check_served",
    "ci_token",
    "free_port",
    "log_size",
    "percentile",
    "plan",
    "read_all_entries",
    "resend",
    "run_load",
    "stored_attestations",
    "synthetic_nar",
]

REPRO_WORKFLOW = "vega-org/repro/.github/workflows/reproduce.yml"
"""The reproducer workflow the load's server trusts (one of the jobs runs it)."""
SHA = "c0ffee" + "0" * 34


# -- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``vega-server serve --dev`` in a subprocess, on loopback, over one data directory."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        settling_s: int = 0,
        env: dict[str, str] | None = None,
        access_log: bool = True,
        postgres: tuple[str, str] | None = None,
    ) -> None:
        """A server over ``data_dir`` (SQLite there), or over PostgreSQL ``(url, schema)``."""
        self.data_dir = data_dir
        self.postgres = postgres
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settling_s = settling_s
        self.extra_env = dict(env or {})
        self.access_log = access_log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-server-{self.starts}.log"

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server and return once ``/healthz`` answers ``ok``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("VEGA_SERVER_")}
        env.update(
            VEGA_SERVER_SETTLING_S=str(self.settling_s),
            VEGA_SERVER_REPRODUCER_WORKFLOWS=f"{REPRO_WORKFLOW}@refs/heads/main",
        )
        if self.postgres is not None:
            url, schema = self.postgres
            db = open_database(url, schema=schema)
            with db.transaction(write=False):  # connecting creates the schema
                pass
            db.close()
            sep = "&" if "?" in url else "?"
            env["VEGA_SERVER_DATABASE_URL"] = f"{url}{sep}options=-csearch_path%3D{schema}"
        env.update(self.extra_env)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        if self.access_log:
            argv = [sys.executable, "-m", "vega.server"]
        else:  # the same entry point, with uvicorn's per-request access log off (benchmarks)
            code = (
                "import sys, functools, uvicorn; from vega.server.__main__ import main;"
                " sys.exit(main(sys.argv[1:], run=functools.partial(uvicorn.run, access_log=False)))"
            )
            argv = [sys.executable, "-c", code]
        argv += ["serve", "--dev", "--data-dir", str(self.data_dir), "--host", "127.0.0.1"]
        argv += ["--port", str(self.port)]
        with self._log_path().open("wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        with httpx2.Client(timeout=5.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"vega-server exited {self.proc.returncode}: {self.output()[-2000:]}")
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"vega-server did not become healthy: {self.output()[-2000:]}")
                time.sleep(0.05)

    def open_database(self) -> Database:
        """The server's own metadata database."""
        if self.postgres is not None:
            return open_database(self.postgres[0], schema=self.postgres[1])
        return open_database(str(self.data_dir / "server.db"))

    def output(self) -> str:
        """What the latest server process printed."""
        path = self._log_path()
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server (no shutdown of any kind) and reap it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM; SIGKILL after 15 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


# -- outputs and jobs ----------------------------------------------------------------------------


def synthetic_nar(contents: bytes) -> bytes:
    """A NAR of a directory holding ``bin/hello`` (executable) and ``share/data`` (``contents``)."""
    out: list[bytes] = []
    w = NarWriter(out.append)
    script = b"#!/bin/sh\necho hello\n"
    events: list[NarEvent] = [
        DirectoryStart(),
        EntryStart(b"bin"),
        DirectoryStart(),
        EntryStart(b"hello"),
        RegularFile(executable=True, size=len(script)),
        FileChunk(script),
        EntryEnd(),
        DirectoryEnd(),
        EntryEnd(),
        EntryStart(b"share"),
        DirectoryStart(),
        EntryStart(b"data"),
        RegularFile(executable=False, size=len(contents)),
        FileChunk(contents),
        EntryEnd(),
        DirectoryEnd(),
        EntryEnd(),
        DirectoryEnd(),
    ]
    for event in events:
        w.write(event)
    w.close()
    return b"".join(out)


@dataclass(frozen=True)
class Output:
    """One build output: its store path, NAR, compressed object and attest body."""

    name: str
    nar: bytes
    compressed: bytes

    @classmethod
    def make(cls, name: str) -> Output:
        """A deterministic output named ``name`` (the same name gives the same bytes)."""
        seed = hashlib.sha256(name.encode()).digest()
        data = b"".join(hashlib.sha256(seed + bytes([i])).digest() for i in range(8)) + b"\n"
        nar = synthetic_nar(data)
        return cls(name, nar, zstandard.ZstdCompressor(level=3).compress(nar))

    @property
    def hash_part(self) -> str:
        """The store path's 32-character hash."""
        return nixbase32.encode(hashlib.sha256(b"out:" + self.name.encode()).digest()[:20])

    @property
    def store_path(self) -> str:
        """``/nix/store/<hash>-<name>``."""
        return f"/nix/store/{self.hash_part}-{self.name}"

    @property
    def file_hash(self) -> str:
        """``sha256:<nix32>`` of the compressed object."""
        return nix32_sha256(self.compressed)

    @property
    def nar_url(self) -> str:
        """``nar/<nix32>.nar.zst``."""
        return f"nar/{self.file_hash[7:]}.nar.zst"

    @property
    def fingerprint(self) -> str:
        """The §2.5 fingerprint (no references)."""
        return f"1;{self.store_path};{nix32_sha256(self.nar)};{len(self.nar)};"

    def body(self) -> dict[str, Any]:
        """The ``AttestBody`` (§4.2)."""
        return {
            **attest_body(self.store_path, self.nar, self.compressed, []),
            "attr": "packages.x86_64-linux.default",
        }


@dataclass(frozen=True)
class Job:
    """One simulated CI job (one attester)."""

    repository: str
    run_id: str
    workflow: str = ".github/workflows/vega.yml"

    @property
    def attester_id(self) -> str:
        """The run part of the server's attester id for this job (:func:`run_key`)."""
        return f"gh-run:{self.run_id}:1"


def run_key(attester_id: str) -> str:
    """``gh-run:<run_id>:<attempt>`` of a server attester id (which adds repository and issuer)."""
    return ":".join(attester_id.split(":")[:3])


def plan(attesters: int, outputs: int, shared: int) -> list[tuple[Job, list[Output]]]:
    """``attesters`` jobs of ``outputs`` outputs each, ``shared`` of which every job builds.

    Repositories belong to ``attesters // 2`` owners (so several share an owner, which the
    promotion policy must count once); the last job is a reproducer run, so the shared
    outputs reach promotion while the load runs.
    """
    common = [Output.make(f"common-{j}") for j in range(shared)]
    jobs = []
    for i in range(attesters):
        if i == attesters - 1:
            job = Job("vega-org/repro", str(7_000_000 + i), f"{REPRO_WORKFLOW}@refs/heads/main")
        else:
            job = Job(f"owner{i % max(1, attesters // 2)}/repo{i}", str(7_000_000 + i))
        mixed = [Output.make(f"out-{i}-{j}") for j in range(outputs - shared)]
        for j, out in enumerate(common):  # interleave the shared outputs, staggered per job
            mixed.insert(min(len(mixed), j * 4 + i % 4), out)
        jobs.append((job, mixed))
    return jobs


def ci_token(client: httpx2.Client, url: str, job: Job) -> str:
    """Mint the job's OIDC JWT the way a CI job does: ci-token environment, then the token endpoint."""
    env = client.post(
        f"{url}/_dev/ci-token",
        json={"repository": job.repository, "sha": SHA, "workflow": job.workflow, "runId": job.run_id},
    )
    env.raise_for_status()
    e = env.json()
    got = client.get(
        e["ACTIONS_ID_TOKEN_REQUEST_URL"],
        params={"audience": e["VEGA_URL"]},
        headers={"Authorization": f"Bearer {e['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"},
    )
    got.raise_for_status()
    return str(got.json()["value"])


# -- running the load ----------------------------------------------------------------------------


@dataclass
class Ack:
    """One attest request's outcome."""

    job: Job
    output: Output
    status: int
    result: Any
    attest_s: float
    """Time of the ``POST /api/cache/attest`` alone (the object already uploaded)."""
    total_s: float
    """Presign + PUT + attest."""


@dataclass
class LoadResult:
    """Everything the clients saw."""

    acks: list[Ack] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    """Every checkpoint note a client fetched, in no particular order."""
    sths: list[str] = field(default_factory=list)
    """Every original STH (``/log/sth``) a client fetched."""
    wall_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def acknowledged(self) -> list[Ack]:
        """The attestations the server answered 200."""
        return [a for a in self.acks if a.status == 200]


def _json(r: httpx2.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text[:200]


def attest_one(client: httpx2.Client, url: str, token: str, out: Output) -> tuple[int, Any, float, float]:
    """Presign, upload and attest one output; return (status, JSON, attest seconds, total seconds)."""
    auth = {"Authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    r = client.post(
        f"{url}/api/cache/upload-url", json={"narUrl": out.nar_url, "fileHash": out.file_hash}, headers=auth
    )
    if r.status_code != 200:
        return r.status_code, _json(r), 0.0, time.perf_counter() - t0
    checksum = base64.b64encode(hashlib.sha256(out.compressed).digest()).decode()
    put = client.put(r.json()["url"], content=out.compressed, headers={"x-amz-checksum-sha256": checksum})
    if put.status_code // 100 != 2:
        return put.status_code, _json(put), 0.0, time.perf_counter() - t0
    t1 = time.perf_counter()
    a = client.post(f"{url}/api/cache/attest", json=out.body(), headers=auth)
    t2 = time.perf_counter()
    return a.status_code, _json(a), t2 - t1, t2 - t0


def run_load(
    url: str,
    jobs: Sequence[tuple[Job, Sequence[Output]]],
    *,
    checkpoint_every: int = 5,
    on_ack: Callable[[LoadResult], None] | None = None,
) -> LoadResult:
    """Run every job in its own thread, all at once; each fetches ``/log/checkpoint`` every few outputs.

    A transport error (the server went away) ends that job's run and is recorded in ``errors``;
    so is every non-200 answer. ``on_ack(result)`` runs under the result's lock after each
    acknowledged attestation is recorded.
    """
    result = LoadResult()
    barrier = threading.Barrier(len(jobs))

    def worker(job: Job, outputs: Sequence[Output]) -> None:
        with httpx2.Client(timeout=60.0) as client:
            try:
                token = ci_token(client, url, job)
            except (httpx2.HTTPError, KeyError) as e:
                with result.lock:
                    result.errors.append(f"{job.repository}: token: {e!r}")
                barrier.abort()
                return
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return
            for k, out in enumerate(outputs):
                try:
                    status, body, attest_s, total_s = attest_one(client, url, token, out)
                    note = sth = None
                    if k % checkpoint_every == 0:
                        cp = client.get(f"{url}/log/checkpoint")
                        note = cp.text if cp.status_code == 200 else None
                    elif k % checkpoint_every == 2:
                        got = client.get(f"{url}/log/sth")
                        sth = got.text if got.status_code == 200 else None
                except httpx2.TransportError as e:
                    with result.lock:
                        result.errors.append(f"{job.repository}: {out.name}: {type(e).__name__}")
                    return
                with result.lock:
                    result.acks.append(Ack(job, out, status, body, attest_s, total_s))
                    if status != 200:
                        result.errors.append(f"{job.repository}: {out.name}: {status} {body}")
                    if note is not None:
                        result.checkpoints.append(note)
                    if sth is not None:
                        result.sths.append(sth)
                    if status == 200 and on_ack is not None:
                        on_ack(result)

    threads = [
        threading.Thread(target=worker, args=(j, o), name=f"attester-{i}") for i, (j, o) in enumerate(jobs)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.wall_s = time.perf_counter() - t0
    return result


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by the nearest-rank method (NaN for no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), -int(-q * len(ordered) // 1)))
    return ordered[rank - 1]


# -- auditing the log ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Audit:
    """What :func:`audit` established."""

    size: int
    attestations: int
    promotions: int
    checkpoints_checked: int
    lookups_checked: int
    logged: frozenset[tuple[str, str, str]] = field(repr=False)
    """(store-path hash, attester id, fingerprint) of every attestation in the log."""


class AuditError(AssertionError):
    """The log does not account for what the clients saw."""


def log_key(client: httpx2.Client, url: str) -> tuple[VerifierKey, str]:
    """The log's verifier key and origin, from ``/api/info``."""
    info = client.get(f"{url}/api/info").json()
    return parse_verifier_key(info["log"]["publicKey"]), str(info["log"]["origin"])


def read_all_entries(client: httpx2.Client, url: str, size: int) -> list[bytes]:
    """Every entry of the tree of ``size``, read through entry bundles."""
    entries: list[bytes] = []
    for bundle in tiles.entry_bundles_for_size(size):
        r = client.get(f"{url}/log/{bundle.path}")
        r.raise_for_status()
        entries.extend(tiles.parse_entry_bundle(r.content, bundle.width))
    return entries


def audit(
    url: str,
    acked: Iterable[Ack],
    checkpoints: Iterable[str],
    *,
    sths: Iterable[str] = (),
    lookups: int | None = None,
) -> Audit:
    """Check the server's log against what the clients saw; raise :class:`AuditError` otherwise.

    Args:
        url: the server.
        acked: attestations the server acknowledged (200).
        checkpoints: checkpoint notes clients fetched at any time.
        sths: original STH JSON texts clients fetched at any time (signed with the shared key).
        lookups: check ``/log/lookup`` (with inclusion proofs) for at most this many store paths
            (all when None); every acknowledged attestation is checked against the full log anyway.
    """
    acked = list(acked)
    with httpx2.Client(timeout=60.0) as client:
        key, origin = log_key(client, url)
        final, _ = checkpoint.open_checkpoint(client.get(f"{url}/log/checkpoint").text, key, origin=origin)
        entries = read_all_entries(client, url, final.size)
        if len(entries) != final.size:
            raise AuditError(f"read {len(entries)} entries of a log of {final.size}")
        if merkle.root_from_leaf_hashes([merkle.leaf_hash(e) for e in entries]) != final.root_hash:
            raise AuditError("the log's entries do not hash to the final checkpoint's root")

        attest_keys: Counter[tuple[str, str, str]] = Counter()
        promotions: Counter[tuple[str, str]] = Counter()
        for data in entries:
            leaf = tlog.parse_leaf(data)
            if isinstance(leaf, tlog.AttestationLeaf):
                attest_keys[(leaf.store_path[11:43], run_key(leaf.attester_id), leaf.fingerprint)] += 1
            elif isinstance(leaf, tlog.PromotionLeaf):
                promotions[(leaf.store_path[11:43], leaf.fingerprint)] += 1
        dupes = [k for k, n in attest_keys.items() if n > 1]
        if dupes:
            raise AuditError(f"{len(dupes)} attestations logged more than once, e.g. {dupes[0]}")
        double = [k for k, n in promotions.items() if n > 1]
        if double:
            raise AuditError(f"{len(double)} promotions logged more than once, e.g. {double[0]}")
        if any(n > 1 for n in Counter(h for h, _ in promotions).values()):
            raise AuditError("a store path was promoted with two fingerprints")

        missing = [
            a
            for a in acked
            if (a.output.hash_part, a.job.attester_id, a.output.fingerprint) not in attest_keys
        ]
        if missing:
            raise AuditError(
                f"{len(missing)} acknowledged attestations are not in the log, e.g. {missing[0].output.name}"
            )

        # /log/lookup: the path a verifier takes, with every inclusion proof checked.
        by_hash: dict[str, set[str]] = {}
        for a in acked:
            by_hash.setdefault(a.output.hash_part, set()).add(a.job.attester_id)
        hashes = sorted(by_hash)[: len(by_hash) if lookups is None else lookups]
        for h in hashes:
            got = client.get(f"{url}/log/lookup/{h}").json()
            head, _ = checkpoint.open_checkpoint(got["checkpoint"], key, origin=origin)
            seen = set()
            for e in got["entries"]:
                data = e["data"].encode()
                proof = [bytes.fromhex(p) for p in e["proofHex"]]
                merkle.verify_inclusion(merkle.leaf_hash(data), e["index"], head.size, proof, head.root_hash)
                if entries[e["index"]] != data:
                    raise AuditError(f"lookup entry {e['index']} differs from the log's")
                leaf = tlog.parse_leaf(data)
                if isinstance(leaf, tlog.AttestationLeaf):
                    seen.add(run_key(leaf.attester_id))
            if not by_hash[h] <= seen:
                raise AuditError(f"/log/lookup/{h} lacks attesters {sorted(by_hash[h] - seen)}")

        # every tree head any client saw (either signed form) is a prefix of the final tree
        shared_key = parse_public_key(client.get(f"{url}/api/info").json()["sharedKey"])
        seen_heads: list[tuple[int, bytes]] = []
        for note in checkpoints:
            head, _ = checkpoint.open_checkpoint(note, key, origin=origin)
            seen_heads.append((head.size, head.root_hash))
        for text in sths:
            sth = tlog.parse_sth(text)
            tlog.verify_sth(sth, shared_key)
            seen_heads.append((sth.tree_size, sth.root_hash))
        heads: dict[int, bytes] = {}
        for size, root in seen_heads:
            if heads.setdefault(size, root) != root:
                raise AuditError(f"two tree heads of size {size} with different roots")
        for size, root in heads.items():
            if size > final.size:
                raise AuditError(f"a client saw a tree head of {size} > the final {final.size}")
            proof = client.get(
                f"{url}/log/proof/consistency", params={"first": size, "second": final.size}
            ).json()
            merkle.verify_consistency(
                size, final.size, [bytes.fromhex(p) for p in proof["proofHex"]], root, final.root_hash
            )
    return Audit(
        size=final.size,
        attestations=sum(attest_keys.values()),
        promotions=sum(promotions.values()),
        checkpoints_checked=len(heads),
        lookups_checked=len(hashes),
        logged=frozenset(attest_keys),
    )


def stored_attestations(server: ServerProcess, hashes: Iterable[str]) -> set[tuple[str, str, str]]:
    """(hash, attester id, fingerprint) of each attestation the server's own store holds for ``hashes``.

    Read through ``vega.server.store.Store`` on the server's database (beside the running server).
    """
    db = server.open_database()
    try:
        store = Store(db)
        out: set[tuple[str, str, str]] = set()
        with store.read() as tx:
            for h in hashes:
                rows = store.attestations(tx, h)
                out.update((r.hash_part, run_key(r.record.attester_id), r.record.fingerprint) for r in rows)
        return out
    finally:
        db.close()


def check_served(url: str, jobs: Sequence[tuple[Job, Sequence[Output]]], shared: Iterable[Output]) -> int:
    """Every output is served, correctly signed, in its job's tenant tier, and ``shared`` in the shared tier.

    Returns:
        How many narinfos were checked.

    Raises:
        AuditError: a narinfo is missing, for another fingerprint, or not signed by the tier's key.
    """
    checked = 0
    with httpx2.Client(timeout=30.0) as client:

        def check(path: str, key_text: str, out: Output) -> None:
            r = client.get(f"{url}{path}")
            if r.status_code != 200:
                raise AuditError(f"{path}: {r.status_code}")
            info = parse_narinfo(r.text)
            if fingerprint(info) != out.fingerprint:
                raise AuditError(f"{path}: serves another fingerprint")
            verify_narinfo_signature(info, {key_text.partition(":")[0]: parse_public_key(key_text)})

        for job, outputs in jobs:
            base = f"/tenant/{job.repository}"
            key_text = client.get(f"{url}{base}/key").json()["publicKey"]
            for out in outputs:
                check(f"{base}/{out.hash_part}.narinfo", key_text, out)
                checked += 1
        shared_key = client.get(f"{url}/api/info").json()["sharedKey"]
        for out in shared:
            check(f"/{out.hash_part}.narinfo", shared_key, out)
            checked += 1
    return checked


def log_size(url: str) -> int:
    """The size of the server's latest checkpoint (signature not checked)."""
    with httpx2.Client(timeout=30.0) as client:
        text = client.get(f"{url}/log/checkpoint").text
    return int(text.split("\n")[1])


def resend(url: str, acks: Sequence[Ack]) -> list[tuple[Ack, int, Any]]:
    """Send the attest requests of ``acks`` again (fresh tokens of the same jobs)."""
    out = []
    tokens: dict[Job, str] = {}
    with httpx2.Client(timeout=60.0) as client:
        for a in acks:
            if a.job not in tokens:
                tokens[a.job] = ci_token(client, url, a.job)
            r = client.post(
                f"{url}/api/cache/attest",
                json=a.output.body(),
                headers={"Authorization": f"Bearer {tokens[a.job]}"},
            )
            out.append((a, r.status_code, _json(r)))
    return out
