"""The verifier's memory: the last verified checkpoint of each transparency log, on disk.

One JSON file per log origin under ``$XDG_STATE_HOME/vega/logs/`` (default
``~/.local/state/vega/logs/``)::

    {"origin": "vega-cache.dev/log", "size": 1234, "rootHex": "<64 hex>", "note": "<signed text>"}

Writes are atomic (temporary file in the same directory, fsync, rename) and every
read-check-write runs under an exclusive ``fcntl.flock`` on a sibling ``.lock`` file,
so concurrent ``vega`` processes (and threads) never lose an update and never see a
half-written file. Advancing is monotonic: a checkpoint smaller than the remembered one
is refused, one of the same size must have the same root, and a larger one is accepted
only after the caller's consistency check passes. Every refusal is a
:class:`~vega.errors.LogForkError`, never softened or retried.

Spec: issue 3 (client side: the verifier that remembers); RFC 9162 §2.1.4 (consistency).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from vega.errors import FormatError, LogForkError, VerificationError

__all__ = ["FORK_NEXT_STEPS", "LogState", "RememberedCheckpoint", "default_state_dir"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


FORK_NEXT_STEPS = (
    "do not trust builds from this cache until its operator explains the fork",
    "report it with the two checkpoints from `vega verify --json`",
)
"""What to do about a fork or rollback (the ``Try:`` lines)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RememberedCheckpoint:
    """A verified tree head of one log: what later checkpoints must be consistent with."""

    origin: str
    """The log's identity (a C2SP checkpoint origin line, or ``sth:<url>`` for an old-style log)."""
    size: int
    """Number of leaves."""
    root_hash: bytes
    """The 32-byte Merkle root."""
    note: str = ""
    """The signed text it was verified from (checkpoint note or STH JSON), kept for audit."""

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise FormatError(f"checkpoint origin: must be one non-empty line, got {self.origin[:80]!r}")
        if self.size < 0:
            raise FormatError(f"checkpoint size: must not be negative, got {self.size}")
        if len(self.root_hash) != 32:
            raise FormatError(f"checkpoint root hash: expected 32 bytes, got {len(self.root_hash)}")

    def to_json(self) -> dict[str, object]:
        """The on-disk form."""
        return {"origin": self.origin, "size": self.size, "rootHex": self.root_hash.hex(), "note": self.note}

    @classmethod
    def from_json(cls, obj: object) -> RememberedCheckpoint:
        """Narrow the on-disk form.

        Raises:
            FormatError: a field is missing or has the wrong type.
        """
        if not isinstance(obj, dict):
            raise FormatError("remembered checkpoint: expected a JSON object")
        origin, size, root, note = obj.get("origin"), obj.get("size"), obj.get("rootHex"), obj.get("note", "")
        if not isinstance(origin, str):
            raise FormatError("remembered checkpoint: origin: expected a string")
        if not isinstance(size, int) or isinstance(size, bool):
            raise FormatError("remembered checkpoint: size: expected an integer")
        if not isinstance(root, str) or not _HEX64.fullmatch(root):
            raise FormatError("remembered checkpoint: rootHex: expected 64 lowercase hex characters")
        if not isinstance(note, str):
            raise FormatError("remembered checkpoint: note: expected a string")
        return cls(origin=origin, size=size, root_hash=bytes.fromhex(root), note=note)


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/vega`` when that is an absolute path, else ``$HOME/.local/state/vega``."""
    xdg = environ.get("XDG_STATE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "vega"
    return Path(environ.get("HOME", "") or Path.home()) / ".local" / "state" / "vega"


ConsistencyCheck = Callable[[RememberedCheckpoint], None]
"""Proves the new checkpoint consistent with the remembered one given; raises VerificationError."""

_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class LogState:
    """Remembered checkpoints under ``directory`` (``<state dir>/logs``).

    Args:
        state_dir: the Vega state directory, e.g. :func:`default_state_dir` of the environment.
    """

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "logs"

    def path_for(self, origin: str) -> Path:
        """The file remembering ``origin``: a readable prefix plus a digest, so no origin collides."""
        digest = hashlib.sha256(origin.encode("utf-8")).hexdigest()[:16]
        readable = _UNSAFE.sub("_", origin)[:60].strip("._") or "log"
        return self.directory / f"{readable}-{digest}.json"

    def load(self, origin: str) -> RememberedCheckpoint | None:
        """The remembered checkpoint of ``origin``, or None if this log was never verified here.

        Raises:
            FormatError: the state file is corrupt (it is never silently reset).
        """
        path = self.path_for(origin)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            found = RememberedCheckpoint.from_json(json.loads(data.decode("utf-8")))
        except (ValueError, RecursionError, FormatError) as e:
            raise FormatError(
                f"remembered checkpoint at {path} is corrupt: {e}",
                next_steps=(f"rm {path}   # only if you accept the log's current checkpoint again",),
            ) from e
        if found.origin != origin:
            raise FormatError(f"remembered checkpoint at {path} is for {found.origin!r}, not {origin!r}")
        return found

    def advance(self, new: RememberedCheckpoint, check: ConsistencyCheck) -> RememberedCheckpoint | None:
        """Remember ``new`` if it extends what is remembered; return what was remembered before.

        Runs under an exclusive lock: reads the remembered checkpoint, then
        * none remembered: ``new`` is remembered (first use);
        * ``new`` smaller: refused (rollback);
        * same size: the roots must be equal (else a fork);
        * larger: ``check(old)`` must prove ``new`` consistent with ``old`` (else a fork).

        Raises:
            LogForkError: rollback or fork; the remembered checkpoint is left unchanged.
            FormatError: the state file is corrupt.
        """
        with self._locked(new.origin):
            old = self.load(new.origin)
            if old is None:
                self._write(new)
                return None
            if new.size < old.size:
                raise LogForkError(
                    f"log fork or rollback detected: {new.origin} served a checkpoint of size {new.size}, "
                    f"older than the remembered size {old.size}",
                    next_steps=FORK_NEXT_STEPS,
                )
            if new.size == old.size:
                if new.root_hash != old.root_hash:
                    raise LogForkError(
                        f"log fork or rollback detected: {new.origin} at size {new.size} has root "
                        f"{new.root_hash.hex()[:16]}…, "
                        f"but the remembered root is {old.root_hash.hex()[:16]}…",
                        next_steps=FORK_NEXT_STEPS,
                    )
                return old
            try:
                check(old)
            except VerificationError as e:
                raise LogForkError(
                    f"log fork or rollback detected: {new.origin} size {new.size} is not consistent with "
                    f"the remembered size {old.size}: {e}",
                    next_steps=FORK_NEXT_STEPS,
                ) from e
            self._write(new)
            return old

    @contextlib.contextmanager
    def _locked(self, origin: str) -> Iterator[None]:
        path = self.path_for(origin).with_suffix(".lock")
        self.directory.mkdir(parents=True, exist_ok=True)
        with _THREAD_LOCKS_GUARD:
            thread_lock = _THREAD_LOCKS.setdefault(path, threading.Lock())
        # NOTE: flock orders processes; the thread lock orders threads of this process, which
        # would otherwise each need their own descriptor (and flock is per open description).
        with thread_lock:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    def _write(self, checkpoint: RememberedCheckpoint) -> None:
        path = self.path_for(checkpoint.origin)
        data = (json.dumps(checkpoint.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
