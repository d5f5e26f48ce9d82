"""The ``nix`` edge: argv in, core types out, through an injected process runner.

Two invocations serve ``vega push`` (and the CI agent):

* ``nix build --json --no-link -L -- <installable>``: one evaluation; the JSON on stdout names
  the output paths, Nix's build logs stream to stderr. Example (Nix 2.8)::

    [{"drvPath":"/nix/store/…-app.drv","outputs":{"out":"/nix/store/…-app"}}]

* ``nix path-info --json --recursive -- <output paths…>``: the closure with ``narHash``,
  ``narSize``, ``references`` and ``deriver``. Store paths need no evaluation, so a push
  evaluates each installable once. Both the array form (Nix ≤ 2.18, objects with ``path``) and
  the object form keyed by store path (newer Nix) are accepted; ``narHash`` in any form Nix
  prints (SRI, ``sha256:<nix32>``, base-16, base-64) is converted in process.

Every installable goes after a ``--`` terminator and one starting with ``-`` is refused before
any call. A non-zero exit raises :class:`~vega.errors.NixError` with the tail of stderr.

Spec: agent.md §6.1 (path info), §6.4 (``--`` rule); cli.md §9 step 1.
"""

from __future__ import annotations

import collections
import json
import math
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from vega.client.upload import js_number
from vega.core.hashes import HashAlgorithm, NixHash, parse_nix_hash
from vega.core.storepath import StorePath, parse_store_path
from vega.errors import ConfigError, FormatError, NixError

__all__ = [
    "MAX_STDOUT_BYTES",
    "Nix",
    "PathInfo",
    "ProcessResult",
    "Runner",
    "SubprocessRunner",
    "build_timeout_s",
    "check_installable",
    "parse_build_outputs",
    "parse_path_info",
]

MAX_STDOUT_BYTES = 256 * 1024 * 1024
"""Largest stdout read from a nix command (agent.md §6.1)."""
_TAIL_LINES = 20


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What a finished process left behind."""

    returncode: int
    """Exit status (negative: killed by that signal)."""
    stdout: bytes
    """Everything written to stdout."""
    stderr_tail: str = ""
    """The last lines of stderr, for error messages."""
    timed_out: bool = False
    """The runner's timer sent SIGTERM."""


class Runner(Protocol):
    """Runs one command to completion (injected; tests pass a fake speaking recorded nix output)."""

    def __call__(self, argv: Sequence[str]) -> ProcessResult:
        """Run ``argv``; return its exit status, stdout and the tail of stderr."""
        ...  # pragma: no cover


@dataclass(frozen=True, slots=True, kw_only=True)
class PathInfo:
    """One store path as ``nix path-info --json`` describes it (the signed narinfo fields)."""

    path: StorePath
    """The store path."""
    nar_hash: NixHash
    """SHA-256 of its NAR."""
    nar_size: int
    """Bytes of its NAR."""
    references: tuple[StorePath, ...] = ()
    """Its references, in Nix's order (may include itself)."""
    deriver: StorePath | None = None
    """The ``.drv`` that built it, when Nix knows."""
    ultimate: bool = False
    """Built on this machine (Nix's ``ultimate``), not substituted from a cache."""


def build_timeout_s(environ: Mapping[str, str]) -> float | None:
    """The per-build kill timer from ``VEGA_BUILD_TIMEOUT_MINUTES``, else ``VEGA_BUILD_TIMEOUT_MS``.

    Both are read as JavaScript ``Number()``; a falsy (or invalid) minutes value falls back to the
    milliseconds one; neither set means no timer (agent.md §3).
    """
    minutes = js_number(environ.get("VEGA_BUILD_TIMEOUT_MINUTES", ""))
    if math.isfinite(minutes) and minutes > 0:
        return minutes * 60.0
    ms = js_number(environ.get("VEGA_BUILD_TIMEOUT_MS", ""))
    return ms / 1000.0 if math.isfinite(ms) and ms > 0 else None


def check_installable(installable: str) -> str:
    """Return ``installable`` unless it looks like a flag.

    Raises:
        ConfigError: ``refusing an installable that looks like a flag: <x>`` (cli.md §9).
    """
    if installable.startswith("-"):
        raise ConfigError(f"refusing an installable that looks like a flag: {installable}")
    return installable


def _json(stdout: bytes, what: str) -> object:
    try:
        return json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"{what}: output is not JSON") from e


def _store_path(value: object, where: str) -> StorePath:
    if not isinstance(value, str) or not value.startswith("/"):
        raise FormatError(f"{where}: expected an absolute store path, got {str(value)[:80]!r}")
    try:
        return parse_store_path(value)
    except FormatError as e:
        raise FormatError(f"{where}: {e.message}") from None


def parse_build_outputs(stdout: bytes) -> tuple[StorePath, ...]:
    """The output paths in ``nix build --json`` output, in order, without duplicates.

    Entries are ``{"drvPath": …, "outputs": {name: path}}`` for derivations and ``{"path": …}``
    for installables that are store paths already.

    Raises:
        FormatError: the output is not of that shape.
    """
    doc = _json(stdout, "nix build --json")
    if not isinstance(doc, list):
        raise FormatError("nix build --json: expected an array")
    out: dict[StorePath, None] = {}
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise FormatError(f"nix build --json[{i}]: expected an object")
        outputs = entry.get("outputs")
        if isinstance(outputs, dict):
            for name, path in outputs.items():
                out[_store_path(path, f"nix build --json[{i}].outputs.{name}")] = None
        elif "path" in entry:
            out[_store_path(entry["path"], f"nix build --json[{i}].path")] = None
        else:
            raise FormatError(f"nix build --json[{i}]: no outputs")
    return tuple(out)


def _nar_hash(value: object, where: str) -> NixHash:
    if not isinstance(value, str):
        raise FormatError(f"{where}: expected a string")
    try:
        return parse_nix_hash(value, HashAlgorithm.SHA256)
    except FormatError as e:
        raise FormatError(f"{where}: {e.message}") from None


def _path_info(path_text: object, entry: Mapping[str, object], where: str) -> PathInfo:
    path = _store_path(path_text, f"{where}.path")
    size = entry.get("narSize")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise FormatError(f"{where}.narSize: expected a non-negative integer")
    refs = entry.get("references", [])
    if not isinstance(refs, list):
        raise FormatError(f"{where}.references: expected an array")
    deriver = entry.get("deriver")
    return PathInfo(
        path=path,
        nar_hash=_nar_hash(entry.get("narHash"), f"{where}.narHash"),
        nar_size=size,
        references=tuple(_store_path(r, f"{where}.references[{k}]") for k, r in enumerate(refs)),
        deriver=None if deriver is None else _store_path(deriver, f"{where}.deriver"),
        ultimate=entry.get("ultimate") is True,
    )


def parse_path_info(stdout: bytes) -> tuple[PathInfo, ...]:
    """Parse ``nix path-info --json`` in the array form or the object form keyed by path.

    Raises:
        FormatError: the output is not of either shape, or names an invalid path (``nix
            path-info`` reports paths that are not valid as ``null`` entries in the object form).
    """
    doc = _json(stdout, "nix path-info --json")
    if isinstance(doc, list):
        infos = []
        for i, entry in enumerate(doc):
            if not isinstance(entry, dict):
                raise FormatError(f"nix path-info --json[{i}]: expected an object")
            infos.append(_path_info(entry.get("path"), entry, f"nix path-info --json[{i}]"))
        return tuple(infos)
    if isinstance(doc, dict):
        out = []
        for key, entry in doc.items():
            if not isinstance(entry, dict):
                raise FormatError(f"nix path-info --json[{key[:80]!r}]: not a valid path")
            out.append(_path_info(key, entry, f"nix path-info --json[{key[:80]!r}]"))
        return tuple(out)
    raise FormatError("nix path-info --json: expected an array or an object")


class Nix:
    """The ``nix`` command, run through ``run``.

    Args:
        run: the process runner.
        program: the ``nix`` executable.
        options: extra options put before ``--`` on every call (e.g. ``--store``).
    """

    def __init__(self, run: Runner, *, program: str = "nix", options: Sequence[str] = ()) -> None:
        self._run = run
        self._program = program
        self._options = tuple(options)

    @property
    def options(self) -> tuple[str, ...]:
        """The options put on every call."""
        return self._options

    def run(self, *argv: str) -> bytes:
        """Run ``nix <argv…>`` (no options added) and return stdout.

        Raises:
            NixError: a non-zero exit.
        """
        return self._call(*argv)

    def _call(self, *argv: str) -> bytes:
        full = [self._program, *argv]
        result = self._run(full)
        if result.returncode != 0:
            raise NixError(full, result.returncode, result.stderr_tail, timed_out=result.timed_out)
        return result.stdout

    def build(self, installable: str, extra: Sequence[str] = ()) -> tuple[StorePath, ...]:
        """Build ``installable`` (one evaluation) and return its output paths.

        ``extra`` options go on this call only (e.g. ``--extra-substituters``).

        Raises:
            ConfigError: the installable looks like a flag.
            NixError: the build failed.
            FormatError: nix printed something unexpected.
        """
        check_installable(installable)
        stdout = self._call("build", "--json", "--no-link", "-L", *self._options, *extra, "--", installable)
        return parse_build_outputs(stdout)

    def closure(self, paths: Sequence[StorePath]) -> tuple[PathInfo, ...]:
        """The closure of ``paths`` with NAR hash, size, references and deriver (no evaluation).

        Raises:
            NixError: a path is not valid in the store.
            FormatError: nix printed something unexpected.
        """
        if not paths:
            return ()
        stdout = self._call(
            "path-info", "--json", "--recursive", *self._options, "--", *(p.absolute for p in paths)
        )
        return parse_path_info(stdout)


class SubprocessRunner:
    """The real runner: stdout captured (bounded), stderr forwarded line by line and its tail kept.

    Args:
        on_stderr: called with each line nix writes to stderr (build logs); ``None`` drops them.
        env: the child's environment (``None``: inherit).
        max_stdout: stdout beyond this many bytes fails the call.
        timeout_s: the process gets SIGTERM after this long (``None``: no timer).
    """

    def __init__(
        self,
        on_stderr: Callable[[str], None] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        max_stdout: int = MAX_STDOUT_BYTES,
        timeout_s: float | None = None,
        tail_lines: int = _TAIL_LINES,
    ) -> None:
        self._tail_lines = tail_lines
        self._timeout_s = timeout_s
        self._on_stderr = on_stderr
        self._env = None if env is None else dict(env)
        self._max_stdout = max_stdout

    def __call__(self, argv: Sequence[str]) -> ProcessResult:
        """Run ``argv`` to completion."""
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
            )
        except OSError as e:
            return ProcessResult(127, b"", f"{argv[0]}: {e.strerror or e}")
        stdout, stderr = proc.stdout, proc.stderr
        if stdout is None or stderr is None:  # pragma: no cover - both are PIPE
            raise NixError(argv, 1, "no pipes")
        tail: collections.deque[str] = collections.deque(maxlen=self._tail_lines)
        reader = threading.Thread(target=self._drain, args=(stderr, tail), daemon=True)
        reader.start()
        timer = None
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            proc.send_signal(signal.SIGTERM)

        if self._timeout_s is not None:
            timer = threading.Timer(self._timeout_s, stop)
            timer.daemon = True
            timer.start()
        chunks: list[bytes] = []
        size = 0
        too_big = False
        while chunk := stdout.read(1 << 16):
            size += len(chunk)
            if size > self._max_stdout:
                too_big = True
                proc.kill()
                break
            chunks.append(chunk)
        stdout.close()
        code = proc.wait()
        if timer is not None:
            timer.cancel()
        reader.join()
        if too_big:
            return ProcessResult(1, b"", f"output larger than {self._max_stdout} bytes")
        return ProcessResult(code, b"".join(chunks), "\n".join(tail), fired.is_set())

    def _drain(self, stream: IO[bytes], tail: collections.deque[str]) -> None:
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                tail.append(line)
                if self._on_stderr is not None:
                    self._on_stderr(line)
