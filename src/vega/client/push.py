"""``vega push``: build locally, plan, pack and upload novel store paths into the owner namespace.

Order of operations, per installable (cli.md §9):

1. ``nix build --json --no-link -L`` (one evaluation) then ``nix path-info --json -r`` on the
   outputs (no evaluation) for the closure.
2. One batched probe, 64 in flight: ``HEAD <namespace>/<hash>.narinfo`` (already pushed: skip),
   then, with skip-upstream, ``HEAD <upstream>/<hash>.narinfo``; only 200 counts, any error
   means novel (upload rather than drop).
3. Novel paths, largest NAR first, ``jobs`` at a time: the NAR is serialised, hashed (NarHash),
   compressed with multi-threaded zstd and hashed again (FileHash) in one pass into a bounded
   spool (memory up to ``spool_memory_bytes``, then a temp file; docs/adr/0008), then presigned,
   PUT and pushed (``POST /api/cache/push``). Packing runs at most ``pack_slots`` at a time so
   memory stays bounded whatever ``jobs`` is; uploads of packed paths overlap packing of the next.
4. After every installable: the namespace's key (``GET <substituter>/key``) and a check, as a
   fresh client with no narinfo cache, that every path the namespace should serve is really
   substitutable: narinfo present and describing the path we pushed, signed by that key, and the
   NAR object present.

Progress goes out as :data:`PushEvent` values through a callback (called from worker threads,
serialised by a lock); the flow prints nothing.

Spec: cli.md §9; agent.md §6.2 (NAR artifact), §7.1 (skip-upstream), §7.4 (upload).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import re
import socket
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Generic, TypeVar, cast
from urllib.parse import urlsplit

from vega.client import narfs
from vega.client.account import CredentialCheck, check_credential
from vega.client.credentials import Credential
from vega.client.http import Http
from vega.client.nix import Nix, PathInfo
from vega.client.upload import Body, BytesBody, FileBody, UploadClient
from vega.core.api import AttestBody, KeyResponse, PushResult
from vega.core.compression import Compression, Compressor
from vega.core.hashes import HashAlgorithm, NixHash
from vega.core.narinfo import parse_narinfo, verify_narinfo_signature
from vega.core.signing import is_printable_key, parse_public_key
from vega.core.storepath import StorePath, parse_store_path
from vega.errors import (
    AuthError,
    ConfigError,
    FormatError,
    NetworkError,
    NixError,
    VegaError,
    VerificationError,
)

__all__ = [
    "BuildStarted",
    "PackProgress",
    "PackedNar",
    "PathPushed",
    "PipelineHooks",
    "Planned",
    "PushDeps",
    "PushEvent",
    "PushInterrupted",
    "PushOptions",
    "PushReport",
    "PushedPath",
    "Stopped",
    "SubstituteCheck",
    "UploadProgress",
    "attest_body",
    "check_control_plane",
    "check_substitutable",
    "describe_network_error",
    "fetch_key",
    "host_config_lines",
    "pack_nar",
    "plan",
    "probe_all",
    "push",
    "push_paths",
    "upload_pipeline",
    "user_error",
]

_SUBSTITUTER: Final = re.compile(r"^/[A-Za-z0-9._:/-]+$")
_PROBES: Final = 64
_FAILED_DRV: Final = re.compile(r"builder for '(/nix/store/[^']+\.drv)' failed")
_PACK_EVENT_BYTES: Final = 8 << 20


# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildStarted:
    """``nix build`` of one installable is starting."""

    installable: str
    """The installable."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Planned:
    """The closure of one installable has been partitioned."""

    installable: str
    """The installable."""
    closure: int
    """Paths in its closure."""
    novel: tuple[PathInfo, ...]
    """Paths to upload, in upload order (largest NAR first)."""
    cached: int
    """Paths the namespace already serves."""
    upstream: int
    """Paths the upstream cache serves (skipped)."""
    earlier: int = 0
    """Paths handled for an earlier installable of this push."""

    @property
    def skipped(self) -> int:
        """Paths of the closure not uploaded: already in the namespace, upstream or handled earlier."""
        return self.cached + self.upstream + self.earlier

    @property
    def nar_bytes(self) -> int:
        """NAR bytes to pack."""
        return sum(p.nar_size for p in self.novel)


@dataclass(frozen=True, slots=True)
class PackProgress:
    """NAR bytes serialised, hashed and compressed so far for one path."""

    path: StorePath
    """The path."""
    nar_bytes: int
    """NAR bytes done."""
    nar_size: int
    """NAR bytes in all."""


@dataclass(frozen=True, slots=True)
class UploadProgress:
    """Compressed bytes moved so far for one path (back to 0 when a PUT is retried)."""

    path: StorePath
    """The path."""
    moved: int
    """Bytes the HTTP stack took."""
    total: int
    """Bytes in the compressed NAR."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PathPushed:
    """One path is uploaded and published."""

    path: StorePath
    """The path."""
    size: int
    """Compressed bytes."""
    nar_size: int
    """NAR bytes."""
    done: int
    """Paths of this installable finished."""
    total: int
    """Paths of this installable to upload."""


PushEvent = BuildStarted | Planned | PackProgress | UploadProgress | PathPushed
"""Everything :func:`push` reports while it runs."""


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PushedPath:
    """One uploaded path."""

    path: StorePath
    """The path."""
    file_hash: NixHash
    """SHA-256 of the compressed NAR."""
    file_size: int
    """Compressed bytes."""
    nar_size: int
    """NAR bytes."""


@dataclass(frozen=True, slots=True)
class SubstituteCheck:
    """Whether a fresh client can substitute what the namespace should serve."""

    ok: bool
    """Every checked path is substitutable."""
    reason: str
    """``substitutable``, or why not (first problem found, and how many paths have one)."""
    checked: int = 0
    """Paths checked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PushReport:
    """The outcome of :func:`push`."""

    namespace: str
    """``owner:<userId>``."""
    pushed: tuple[PushedPath, ...]
    """Paths uploaded, in completion order."""
    closure: int
    """Distinct paths in all closures."""
    cached: int
    """Paths the namespace already served."""
    upstream: int
    """Paths skipped because the upstream serves them."""
    substituter: str
    """Absolute URL of the namespace (the ``extra-substituters`` value)."""
    public_key: str | None
    """The namespace key ``<name>:<base64>``, when the server gave a well-formed one."""
    check: SubstituteCheck
    """The substitutability check."""

    @property
    def uploaded_bytes(self) -> int:
        """Compressed bytes uploaded."""
        return sum(p.file_size for p in self.pushed)


# -- packing: NAR -> NarHash -> zstd -> FileHash, one pass ----------------------------------


class _Spool:
    """Compressed bytes in memory up to ``limit``, then in a temp file under ``directory``."""

    def __init__(self, directory: Path, limit: int) -> None:
        self._dir = directory
        self._limit = limit
        self._buf = bytearray()
        self._file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self._file is None:
            if len(self._buf) + len(data) <= self._limit:
                self._buf += data
                return
            self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in body()/discard()
                dir=self._dir, prefix="nar-", suffix=".zst", delete=False
            )
            self._file.write(self._buf)
            self._buf = bytearray()
        self._file.write(data)

    def body(self) -> Body:
        if self._file is None:
            return BytesBody(self._buf)  # no copy: the spool is not written after this
        self._file.close()
        return FileBody(self._file.name, self.size)

    def discard(self) -> None:
        self._buf = bytearray()
        if self._file is not None:
            self._file.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file.name)


@dataclass(slots=True, kw_only=True)
class PackedNar:
    """A compressed NAR ready to upload (agent.md §6.2, computed in process)."""

    nar_hash: NixHash
    """SHA-256 of the NAR."""
    nar_size: int
    """Bytes of the NAR."""
    file_hash: NixHash
    """SHA-256 of the compressed bytes."""
    file_size: int
    """Bytes of the compressed NAR."""
    body: Body
    """The compressed bytes, re-readable for retries."""
    _spool: _Spool = field(repr=False)

    def discard(self) -> None:
        """Free the memory or delete the spool file."""
        self._spool.discard()


def pack_nar(
    path: str,
    spool_dir: Path,
    *,
    spool_memory_bytes: int = 8 << 20,
    level: int = 3,
    threads: int = -1,
    progress: Callable[[int], None] | None = None,
) -> PackedNar:
    """Serialise ``path`` as a NAR, hash it, zstd-compress it and hash that, in one pass.

    Args:
        path: the tree (a store path).
        spool_dir: where a compressed NAR larger than ``spool_memory_bytes`` is spooled.
        spool_memory_bytes: compressed bytes kept in memory before spilling to a file.
        level: zstd level.
        threads: zstd worker threads (-1: one per CPU).
        progress: called with the NAR bytes done, every few MiB.

    Raises:
        FormatError: the tree holds an unsupported file type or changed while read.
        OSError: the tree cannot be read or the spool written.
    """
    nar_h = hashlib.sha256()
    file_h = hashlib.sha256()
    spool = _Spool(spool_dir, spool_memory_bytes)
    compressor = Compressor(Compression.ZSTD, level=level, threads=threads)
    done = 0
    reported = 0

    def out(data: bytes) -> None:
        if data:
            file_h.update(data)
            spool.write(data)

    def consume(view: memoryview) -> None:
        nonlocal done, reported
        nar_h.update(view)
        out(compressor.compress(view))  # type: ignore[arg-type]  # zstandard takes any buffer
        done += len(view)
        if progress is not None and done - reported >= _PACK_EVENT_BYTES:
            reported = done
            progress(done)

    try:
        nar_size = narfs.dump(path, consume)
        out(compressor.finish())
        body = spool.body()
    except BaseException:
        spool.discard()
        raise
    if progress is not None:
        progress(nar_size)
    return PackedNar(
        nar_hash=NixHash(HashAlgorithm.SHA256, nar_h.digest()),
        nar_size=nar_size,
        file_hash=NixHash(HashAlgorithm.SHA256, file_h.digest()),
        file_size=spool.size,
        body=body,
        _spool=spool,
    )


# -- the flow --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PushOptions:
    """What to push and how (cli.md §9 options, plus the pipeline's bounds)."""

    installables: tuple[str, ...] = (".",)
    """Installables, processed in order."""
    skip_upstream: bool = True
    """Skip paths the upstream cache serves."""
    upstream: str = "https://cache.nixos.org"
    """The upstream to diff against."""
    jobs: int = 4
    """Paths in flight (packing or uploading)."""
    pack_slots: int = 2
    """Paths being packed at once (each pack is multi-threaded already)."""
    spool_memory_bytes: int = 8 << 20
    """Compressed bytes per path kept in memory before spilling to a temp file."""
    zstd_level: int = 3
    """zstd level (Nix's default for ``compression=zstd``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PushDeps:
    """The adapters :func:`push` runs on (built by the front end)."""

    nix: Nix
    """The nix edge."""
    uploader: UploadClient
    """The control plane's write API and presigned PUTs."""
    probe: Http
    """Bounded HEAD/GET requests for probes (15 s, one try) and the key (5 s)."""
    checker: Http
    """A fresh client, no narinfo cache, for the substitutability check."""
    namespace: str
    """``owner:<userId>`` from the credential."""
    work_dir: Path
    """The push's private temp directory (spool files)."""


def _probe_one(http: Http, url: str) -> bool:
    try:
        return http.head(url).status == 200
    except VegaError:
        return False


def probe_all(http: Http, urls: Sequence[str]) -> list[bool]:
    """``HEAD`` each URL, 64 in flight, order kept; only a 200 is ``True`` (agent.md §7.1, §7.2)."""
    if not urls:
        return []
    n = min(_PROBES, len(urls))
    with concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="vega-probe") as pool:
        return list(pool.map(lambda u: _probe_one(http, u), urls))


def _map(
    workers: int,
    items: Sequence[PathInfo],
    fn: Callable[[PathInfo], object],
    stop: threading.Event | None = None,
) -> list[object]:
    """agent.md §7.7: results by index; the first failure fails the whole map.

    On any failure (a Ctrl-C in the waiting thread included) ``stop`` is set, queued items are
    cancelled, and the running ones, which poll ``stop``, are waited for before this returns.
    """
    if not items:
        return []
    n = min(max(1, workers), len(items))
    with concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="vega-push") as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            if stop is not None:
                stop.set()
            for f in futures:
                f.cancel()
            raise


def plan(
    deps: PushDeps, closure: Sequence[PathInfo], options: PushOptions
) -> tuple[list[PathInfo], list[PathInfo], list[PathInfo]]:
    """Partition ``closure`` with one batched probe into (novel largest first, cached, upstream).

    Spec: agent.md §7.1 (only 200 counts; errors mean novel).
    """
    base = deps.uploader.base_url
    upstream = options.upstream.rstrip("/")

    def where(info: PathInfo) -> object:
        name = f"{info.path.hash_part}.narinfo"
        if _probe_one(deps.probe, f"{base}/tenant/{deps.namespace}/{name}"):
            return "cached"
        if options.skip_upstream and _probe_one(deps.probe, f"{upstream}/{name}"):
            return "upstream"
        return "novel"

    found = _map(_PROBES, closure, where)
    parts: dict[object, list[PathInfo]] = {"novel": [], "cached": [], "upstream": []}
    for info, kind in zip(closure, found, strict=True):
        parts[kind].append(info)
    parts["novel"].sort(key=lambda p: (-p.nar_size, p.path.absolute))
    return parts["novel"], parts["cached"], parts["upstream"]


def attest_body(
    info: PathInfo,
    packed: PackedNar,
    *,
    attr: str | None = None,
    dir_: str | None = None,
    no_continent: bool = False,
) -> AttestBody:
    """The §6.3 body of one packed path (``attr``/``dir`` only for a build's top outputs)."""
    return AttestBody(
        store_path=info.path,
        file_hash=packed.file_hash,
        file_size=packed.file_size,
        nar_hash=packed.nar_hash,
        nar_size=packed.nar_size,
        references=info.references,
        deriver=info.deriver,
        attr=attr or None,
        dir=(dir_ or None) if attr else None,
        no_continent=no_continent,
    )


R = TypeVar("R")


class Stopped(BaseException):
    """Raised inside a pipeline worker once the pipeline's stop event is set (Ctrl-C, a failure)."""


class PushInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`push`: the uploads stopped; what was and was not pushed."""

    def __init__(self, pushed: Sequence[PushedPath], not_pushed: Sequence[StorePath], pending: Sequence[str]):
        super().__init__("interrupted")
        self.pushed = tuple(pushed)
        """Paths uploaded and published before the interrupt."""
        self.not_pushed = tuple(not_pushed)
        """Novel paths of the interrupted installable that were not published."""
        self.pending = tuple(pending)
        """Installables not started (or not planned) when the interrupt came."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineHooks(Generic[R]):
    """What the shared upload pipeline calls per path (all from worker threads).

    The pipeline is the one implementation behind ``vega push`` and ``vega-attest``/
    ``vega-reproduce``: pack (NAR, NarHash, zstd, FileHash in one pass), check the NAR against
    the store's record, optionally skip the PUT when the object is already there (the agent's
    resume probe), presign and PUT, then ``publish`` (``/api/cache/push`` or ``/api/cache/attest``).
    """

    publish: Callable[[PathInfo, PackedNar], R]
    """Push or attest one packed path; its answer is the path's result."""
    already_uploaded: Callable[[NixHash], bool] | None = None
    """``True`` skips the PUT for that object (the publish still happens)."""
    stage: Callable[[PathInfo, str], None] | None = None
    """Called as a path enters ``compress``, ``upload`` and ``attest`` (the stall watchdog)."""
    packed: Callable[[PathInfo, int], None] | None = None
    """NAR bytes packed so far."""
    uploaded: Callable[[PathInfo, int, int], None] | None = None
    """Compressed bytes moved / total (restarts at 0 on a retry)."""
    done: Callable[[PathInfo, PackedNar, R, bool], None] | None = None
    """The path is published: its pack, the publish answer, whether the PUT was skipped."""


def upload_pipeline(
    uploader: UploadClient,
    items: Sequence[PathInfo],
    options: PushOptions,
    work_dir: Path,
    hooks: PipelineHooks[R],
    *,
    store_root: str = "",
    stop: threading.Event | None = None,
) -> list[R]:
    """Pack, upload and publish ``items``, ``options.jobs`` at a time; results in input order.

    A failure or a Ctrl-C sets ``stop``; every worker polls it between NAR chunks and between
    upload chunks (so the uploads stop within a chunk) and removes its spool on the way out.

    Args:
        uploader: the control plane's write API and presigned PUTs.
        items: paths to publish.
        options: concurrency, pack slots, spool size, zstd level.
        work_dir: spool files go here.
        hooks: the publish step and the progress callbacks.
        store_root: where the store's paths really are on disk (a chroot store ``--store DIR``
            keeps ``/nix/store/x`` at ``DIR/nix/store/x``); empty for the system store.
        stop: set to stop the workers (a private event when not given).

    Raises:
        VerificationError: a path's NAR does not match the store's record.
        VegaError: packing, an upload or the publish failed (the first failure fails the map).
    """
    pack_slots = threading.BoundedSemaphore(max(1, options.pack_slots))
    halt = stop if stop is not None else threading.Event()

    def check() -> None:
        if halt.is_set():
            raise Stopped

    def one(info: PathInfo) -> object:
        path = info.path
        check()
        if hooks.stage is not None:
            hooks.stage(info, "compress")
        on_pack = hooks.packed

        def packing(n: int) -> None:
            check()
            if on_pack is not None:
                on_pack(info, n)

        def uploading(moved: int, total: int) -> None:
            check()
            if hooks.uploaded is not None:
                hooks.uploaded(info, moved, total)

        with pack_slots:
            check()
            packed = pack_nar(
                store_root + path.absolute,
                work_dir,
                spool_memory_bytes=options.spool_memory_bytes,
                level=options.zstd_level,
                progress=packing,
            )
        try:
            if packed.nar_hash != info.nar_hash or packed.nar_size != info.nar_size:
                raise VerificationError(
                    f"{path.absolute}: NAR hash {packed.nar_hash} ({packed.nar_size} bytes) does not"
                    f" match the store's record {info.nar_hash} ({info.nar_size} bytes)"
                )
            if hooks.stage is not None:
                hooks.stage(info, "upload")
            resumed = hooks.already_uploaded is not None and hooks.already_uploaded(packed.file_hash)
            if not resumed:
                uploader.upload(packed.file_hash, packed.body, uploading)
            check()
            if hooks.stage is not None:
                hooks.stage(info, "attest")
            result = hooks.publish(info, packed)
        finally:
            packed.discard()
        if hooks.done is not None:
            hooks.done(info, packed, result, resumed)
        return result

    return cast("list[R]", _map(options.jobs, items, one, halt))


def _upload_all(
    deps: PushDeps,
    novel: Sequence[PathInfo],
    options: PushOptions,
    emit: Callable[[PushEvent], None],
    pushed: list[PushedPath],
    stop: threading.Event | None = None,
) -> PushResult | None:
    """Upload ``novel``; every published path is appended to ``pushed`` as it completes."""
    lock = threading.Lock()
    last: list[PushResult] = []
    start = len(pushed)

    def done(info: PathInfo, packed: PackedNar, result: PushResult, _resumed: bool) -> None:
        with lock:
            pushed.append(
                PushedPath(
                    path=info.path,
                    file_hash=packed.file_hash,
                    file_size=packed.file_size,
                    nar_size=packed.nar_size,
                )
            )
            last[:] = [result]
            count = len(pushed) - start
        emit(
            PathPushed(
                path=info.path, size=packed.file_size, nar_size=packed.nar_size, done=count, total=len(novel)
            )
        )

    hooks = PipelineHooks(
        publish=lambda info, packed: deps.uploader.push(attest_body(info, packed)),
        packed=lambda info, n: emit(PackProgress(info.path, n, info.nar_size)),
        uploaded=lambda info, m, t: emit(UploadProgress(info.path, m, t)),
        done=done,
    )
    upload_pipeline(deps.uploader, novel, options, deps.work_dir, hooks, stop=stop)
    return last[0] if last else None


def push_paths(
    deps: PushDeps,
    paths: Sequence[StorePath],
    options: PushOptions,
    on_event: Callable[[PushEvent], None],
    stop: threading.Event,
    *,
    label: str,
) -> tuple[Planned, list[PushedPath]]:
    """Push the closure of ``paths`` (already in the store, nothing built) as one batch.

    One ``nix path-info`` for the whole batch, one probe, then the shared pipeline. Setting
    ``stop`` stops the uploads within a chunk. ``vega watch-store`` pushes each batch with this.

    Raises:
        PushInterrupted: ``stop`` was set; what was and was not pushed.
        NixError: a path is no longer valid (collected meanwhile).
        VegaError: as :func:`push`.
    """
    lock = threading.Lock()

    def emit(event: PushEvent) -> None:
        with lock:
            on_event(event)

    closure = deps.nix.closure(paths)
    novel, in_cache, in_upstream = plan(deps, closure, options)
    planned = Planned(
        installable=label,
        closure=len(closure),
        novel=tuple(novel),
        cached=len(in_cache),
        upstream=len(in_upstream),
    )
    emit(planned)
    pushed: list[PushedPath] = []
    try:
        _upload_all(deps, novel, options, emit, pushed, stop)
    except (Stopped, KeyboardInterrupt) as e:
        done = {p.path for p in pushed}
        raise PushInterrupted(pushed, [p.path for p in novel if p.path not in done], ()) from e
    return planned, pushed


def host_config_lines(substituter: str, public_key: str) -> list[str]:
    """The host-config block printed after a push or an agent run (cli.md §9 step 5)."""
    return [
        "Add to nix.conf (or nix.settings in your NixOS configuration):",
        f"  extra-substituters = {substituter}",
        f"  extra-trusted-public-keys = {public_key}",
        "  (the control plane alone serves only the globally reproduced shared tier;"
        " these builds come from the tenant path)",
    ]


def fetch_key(http: Http, substituter: str) -> str | None:
    """``GET <substituter>/key``; the key text when it passes the shape check, else None."""
    try:
        resp = http.get(f"{substituter}/key")
        if not resp.ok:
            return None
        key = KeyResponse.from_json(resp.json()).public_key
    except VegaError:
        return None
    return key if is_printable_key(key) else None


def check_substitutable(
    http: Http, substituter: str, public_key: str | None, expected: Sequence[PathInfo]
) -> SubstituteCheck:
    """Check, as a fresh client, that ``substituter`` serves every path in ``expected``.

    For each path: the narinfo is there (200), parses, describes the same path, NAR hash and size,
    carries a signature that verifies under ``public_key``, and its NAR object answers 200.
    """
    if public_key is None:
        return SubstituteCheck(False, "the namespace key is not available", 0)
    try:
        key = parse_public_key(public_key)
    except FormatError as e:
        return SubstituteCheck(False, f"the namespace key is malformed: {e.message}", 0)

    def problem(info: PathInfo) -> object:
        name = info.path.hash_part
        try:
            resp = http.get(f"{substituter}/{name}.narinfo")
            if resp.status != 200:
                return f"{info.path}: narinfo answered {resp.status}"
            narinfo = parse_narinfo(resp.body)
            if narinfo.store_path != info.path:
                return f"{info.path}: narinfo describes {narinfo.store_path}"
            if narinfo.nar_hash != info.nar_hash or narinfo.nar_size != info.nar_size:
                return f"{info.path}: narinfo NAR hash differs from the local store's"
            verify_narinfo_signature(narinfo, {key.name: key})
            nar = http.head(f"{substituter}/{narinfo.url}")
            if nar.status != 200:
                return f"{info.path}: {narinfo.url} answered {nar.status}"
        except VegaError as e:
            return f"{info.path}: {e.message}"
        return None

    problems = [p for p in _map(16, expected, problem) if p is not None]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return SubstituteCheck(False, f"{problems[0]}{more}", len(expected))
    return SubstituteCheck(True, "substitutable", len(expected))


def _outputs(nix: Nix, installable: str) -> tuple[StorePath, ...]:
    """A store path (or a link into the store, like ``./result``) as itself; anything else built.

    Raises:
        ConfigError: the argument names a store path that is not in the local store.
        NixError: the build failed.
    """
    target = _store_path_argument(installable)
    if target is None:
        return nix.build(installable)
    if not os.path.lexists(target.absolute):
        raise ConfigError(
            f"{target.absolute} is not in the local Nix store",
            next_steps=[
                f"nix-store --realise {target.absolute}",
                "vega push <installable>   (build, then push)",
            ],
        )
    return (target,)


def _store_path_argument(arg: str) -> StorePath | None:
    """The store path ``arg`` names (directly or through symlinks), else None (an installable)."""
    if arg.startswith("/nix/store/"):
        text = arg
    elif "#" not in arg and ":" not in arg and os.path.islink(arg):
        text = os.path.realpath(arg)
    else:
        return None
    root = "/".join(text.split("/")[:4])  # /nix/store/<hash>-<name>, a file inside counts as it
    try:
        return parse_store_path(root)
    except FormatError:
        return None


def check_control_plane(http: Http, url: str, cred: Credential) -> CredentialCheck:
    """Before building: the control plane answers and the credential is valid there.

    ``GET <url>/nix-cache-info`` must answer; then ``GET /api/owner/whoami`` (via
    :func:`vega.client.account.check_credential`) must not call the credential invalid. A control
    plane without that endpoint (the original) gives ``not checked``, which does not block.

    Raises:
        NetworkError: the control plane cannot be reached (one sentence, ``Try:`` lines).
        AuthError: the control plane refuses the credential.
    """
    try:
        http.get(f"{url}/nix-cache-info")
    except NetworkError as e:
        raise describe_network_error(e, url) from e
    verdict = check_credential(http, url, cred)
    if verdict == "invalid":
        raise AuthError(
            f"the control plane at {url} does not accept this machine's credential"
            " (revoked, expired or issued by another server)",
            status=401,
            next_steps=[f"vega login --url {url}", "vega status"],
        )
    return verdict


def _causes(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = e
    while seen is not None and len(out) < 8:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def describe_network_error(e: NetworkError, url: str) -> NetworkError:
    """``e`` as one sentence naming what failed (refused, unknown host, timeout) and ``Try:`` lines."""
    host = urlsplit(url).hostname or url
    chain = _causes(e)
    text = " ".join(str(c) for c in chain).lower()
    steps = [f"curl -sS {url}/nix-cache-info", "vega status", "vega push --url <control plane URL>"]
    if any(isinstance(c, socket.gaierror) for c in chain) or "name or service not known" in text:
        return NetworkError(
            f"cannot find the host {host} of the control plane {url} (DNS lookup failed)", next_steps=steps
        )
    if any(isinstance(c, ConnectionRefusedError) for c in chain) or "connection refused" in text:
        return NetworkError(
            f"the control plane at {url} refused the connection (is the server running?)", next_steps=steps
        )
    errno_level = next((c for c in chain if isinstance(c, OSError) and c.strerror), None)
    if isinstance(errno_level, OSError):
        reason = str(errno_level.strerror).lower()
        return NetworkError(f"cannot reach the control plane at {url}: {reason}", next_steps=steps)
    if "[errno" in e.message.lower():
        return NetworkError(f"cannot reach the control plane at {url}", next_steps=steps)
    return NetworkError(e.message, next_steps=steps)


def user_error(e: OSError | VegaError, url: str) -> VegaError:
    """A failure of :func:`push` as one sentence with ``Try:`` lines, never raw errno text.

    A NixError becomes its command and status (nix's own error already went to stderr, once);
    a NetworkError says what failed; an OSError names the file and what is wrong with it.
    """
    if isinstance(e, NixError):
        what = " ".join(e.argv[:2]) if len(e.argv) >= 2 else "nix"
        if e.timed_out:
            return NixError(
                e.argv, e.returncode, "", next_steps=["VEGA_BUILD_TIMEOUT_MINUTES=<minutes> vega push"]
            )
        drv = _FAILED_DRV.search(e.stderr_tail)
        steps = e.next_steps or ((f"nix log {drv.group(1)}",) if drv else ("nix build -L <installable>",))
        return VegaError(
            f"{what} failed with status {e.returncode} (nix's error is printed above)", next_steps=steps
        )
    if isinstance(e, NetworkError):
        if e.next_steps:
            return e
        return describe_network_error(e, url)
    if isinstance(e, VegaError):
        return e
    name = e.filename if isinstance(e.filename, str) else "a file"
    reason = (e.strerror or type(e).__name__).lower()
    if isinstance(e, FileNotFoundError):
        return ConfigError(
            f"{name} does not exist (it disappeared while pushing?)",
            next_steps=["nix-store --verify --check-contents", "vega push <installable>   (again)"],
        )
    if isinstance(e, PermissionError):
        return ConfigError(f"{name} cannot be read: permission denied", next_steps=[f"ls -l {name}"])
    return ConfigError(f"{name}: {reason}", next_steps=["df -h $TMPDIR   (spool space)", "vega doctor"])


def push(deps: PushDeps, options: PushOptions, on_event: Callable[[PushEvent], None]) -> PushReport:
    """Build, plan, upload and publish; then check substitutability.

    Raises:
        ConfigError: an installable looks like a flag.
        NixError: a build or ``nix path-info`` failed.
        ApiError, AuthError, NetworkError: the control plane or the store refused or failed.
        VerificationError: a path's NAR does not match the store's record.
    """
    lock = threading.Lock()

    def emit(event: PushEvent) -> None:
        with lock:
            on_event(event)

    seen: dict[StorePath, PathInfo] = {}
    served: dict[StorePath, PathInfo] = {}
    pushed: list[PushedPath] = []
    cached = upstream = 0
    last: PushResult | None = None
    for k, installable in enumerate(options.installables):
        novel: list[PathInfo] = []
        try:
            emit(BuildStarted(installable))
            outputs = _outputs(deps.nix, installable)
            closure = deps.nix.closure(outputs)
            fresh = [p for p in closure if p.path not in seen]
            novel, in_cache, in_upstream = plan(deps, fresh, options)
            emit(
                Planned(
                    installable=installable,
                    closure=len(closure),
                    novel=tuple(novel),
                    cached=len(in_cache),
                    upstream=len(in_upstream),
                    earlier=len(closure) - len(fresh),
                )
            )
            result = _upload_all(deps, novel, options, emit, pushed)
        except KeyboardInterrupt as e:
            done = {p.path for p in pushed}
            missing = [p.path for p in novel if p.path not in done]
            raise PushInterrupted(pushed, missing, options.installables[k + (0 if not novel else 1) :]) from e
        last = result or last
        cached += len(in_cache)
        upstream += len(in_upstream)
        seen.update((info.path, info) for info in fresh)
        served.update((info.path, info) for info in (*novel, *in_cache))
    rel = last.substituter if last is not None and _SUBSTITUTER.fullmatch(last.substituter) else None
    base = deps.uploader.base_url
    substituter = f"{base}{rel or '/tenant/' + deps.namespace}"
    public_key = fetch_key(deps.probe, substituter)
    check = check_substitutable(deps.checker, substituter, public_key, list(served.values()))
    return PushReport(
        namespace=deps.namespace,
        pushed=tuple(pushed),
        closure=len(seen),
        cached=cached,
        upstream=upstream,
        substituter=substituter,
        public_key=public_key,
        check=check,
    )
