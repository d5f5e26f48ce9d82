"""NARs and the local filesystem: serialise a tree, hash it, restore a NAR safely.

The edge between ``vega.core.nar`` (the format) and the filesystem.

* ``dump(path, sink)`` walks a tree the way ``nix-store --dump`` does: entries
  in bytewise name order, the executable bit from the owner's ``x`` bit,
  symlinks never followed; sockets, FIFOs and devices are refused.
* ``hash_path(path)`` is ``nix hash path``: the SHA-256 of the NAR and its
  size, in one pass without materialising the NAR.
* ``restore(read, target)`` is a security boundary. ``target`` must not exist
  (its parent must). The NAR is restored into a fresh private directory
  beside ``target`` using only ``*at`` calls relative to directories this
  function created, with ``O_NOFOLLOW`` and ``O_EXCL``, so nothing is ever
  written through a symlink or outside that directory; only after the whole
  NAR parsed (including the check for trailing bytes) is the result renamed
  to ``target`` without replacing anything. On any failure the private
  directory is removed and ``target`` is untouched. Symlink targets are data:
  they are created verbatim (store paths legitimately contain absolute
  symlinks) and never followed; ``confine_symlinks=True`` (``vega nar restore
  --confine-symlinks``) also refuses any symlink that would resolve outside
  ``target``.

Speed: the walk runs in a producer thread that packs NAR framing and file
contents into a few reused 1 MiB buffers, while the calling thread hashes or
writes them; file reads and SHA-256 both release the GIL, so I/O and hashing
overlap. Memory stays at a few buffers whatever the file sizes.

Spec: protocol.md §2.4 (NarHash, NarSize). Upstream: Nix src/libutil/archive.cc.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from vega.core import nar
from vega.core.hashes import HashAlgorithm, NixHash
from vega.errors import ConfigError, FormatError

__all__ = ["dump", "dump_to_fd", "hash_path", "restore"]

_BUFFER: Final = 4 << 20
_BUFFERS: Final = 3
_OPEN_FILE: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)
_OPEN_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_ENTRY_END: Final = nar.NODE_END + nar.NODE_END
_TRAILERS: Final = tuple(nar.padding(n) + _ENTRY_END for n in range(8))  # by size % 8
_ROOT_TRAILERS: Final = tuple(nar.padding(n) + nar.NODE_END for n in range(8))
_LARGE: Final = 1 << 16  # files at least this big bypass the buffers
_READ: Final = 1 << 20
_REGULAR: Final = nar.regular_header(False, 0)[:-8]  # the size follows
_EXECUTABLE: Final = nar.regular_header(True, 0)[:-8]
_S_IFMT: Final = 0o170000
_S_IFREG: Final = stat.S_IFREG
_FS_ENCODING: Final = sys.getfilesystemencoding()
_FS_ERRORS: Final = sys.getfilesystemencodeerrors()


class _Cancelled(Exception):
    """The consumer stopped; the producer unwinds."""


class _Packer:
    """Packs NAR bytes into buffers and hands each full one to ``emit``.

    With ``large`` set, the contents of each large file are offered to
    ``large(fd, size, where)`` instead (after the buffered bytes before them
    were emitted); it returns False to decline, and is then not asked again.
    """

    def __init__(
        self,
        take: Callable[[], bytearray],
        emit: Callable[[bytearray, int], None],
        large: Callable[[int, int, bytes], bool] | None = None,
    ) -> None:
        self._take = take
        self._emit = emit
        self._large = large
        self.buf = take()
        self.view = memoryview(self.buf)
        self.size = len(self.buf)
        self.pos = 0

    def _next(self) -> None:
        if not self.pos:
            return  # nothing buffered: keep this buffer
        self._emit(self.buf, self.pos)
        self.buf = self._take()
        self.view = memoryview(self.buf)
        self.pos = 0

    def put(self, data: bytes) -> None:
        pos = self.pos
        end = pos + len(data)
        if end <= self.size:
            self.view[pos:end] = data
            self.pos = end
            return
        done = self.size - pos
        self.view[pos:] = data[:done]
        self.pos = self.size
        self._next()
        self.put(data[done:])

    def regular(self, fd: int, head: bytes, trailers: tuple[bytes, ...], where: bytes, name: bytes) -> None:
        """Write ``head``, the regular node of the open file ``fd``, and ``trailers[size % 8]``."""
        st = os.fstat(fd)
        mode = st.st_mode
        if mode & _S_IFMT != _S_IFREG:
            raise FormatError(f"file changed type while reading it: {_show(where, name)}")
        size = st.st_size
        header = b"".join(
            (head, _EXECUTABLE if mode & stat.S_IXUSR else _REGULAR, size.to_bytes(8, "little"))
        )
        trailer = trailers[size & 7]
        start = self.pos + len(header)
        end = start + size
        if size < _LARGE and end + len(trailer) <= self.size:
            # Fast path: the whole node fits in the current buffer.
            view = self.view
            view[self.pos : start] = header
            while start < end:
                got = os.readv(fd, (view[start:end],))
                if not got:
                    raise FormatError(f"file changed while reading it (shrank): {_show(where, name)}")
                start += got
            view[end : end + len(trailer)] = trailer
            self.pos = end + len(trailer)
            return
        self.put(header)
        self.copy_file(fd, size, where + b"/" + name if name else where)
        self.put(trailer)

    def copy_file(self, fd: int, size: int, where: bytes) -> None:
        """Copy exactly ``size`` bytes of ``fd`` (read from its start)."""
        if self._large is not None and size >= _LARGE:
            self._next()
            if self._large(fd, size, where):
                return
            self._large = None
        left = size
        while left:
            if self.pos == self.size:
                self._next()
            want = min(left, self.size - self.pos)
            got = os.readv(fd, (self.view[self.pos : self.pos + want],))
            if got == 0:
                raise FormatError(f"file changed while reading it (shrank): {os.fsdecode(where)}")
            self.pos += got
            left -= got

    def flush(self) -> None:
        if self.pos:
            self._emit(self.buf, self.pos)
            self.pos = 0


def _walk(path: bytes, out: _Packer) -> None:
    """Serialise the tree at ``path`` into ``out``."""
    st = os.lstat(os.fsdecode(path))  # str, so that errors name the path readably
    if stat.S_ISLNK(st.st_mode):
        out.put(nar.MAGIC + nar.symlink_node(os.readlink(path)))
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(path, _OPEN_FILE)
        try:
            out.regular(fd, nar.MAGIC, _ROOT_TRAILERS, path, b"")
        finally:
            os.close(fd)
    elif stat.S_ISDIR(st.st_mode):
        fd = os.open(path, _OPEN_DIR)
        try:
            _directory(fd, path, out)
        finally:
            os.close(fd)
    else:
        raise FormatError(f"file has an unsupported type: {os.fsdecode(path)}")


def _show(where: bytes, name: bytes) -> str:
    return os.fsdecode(where + b"/" + name if name else where)


def _directory(dfd: int, where: bytes, out: _Packer) -> None:
    # An explicit stack instead of recursion: trees may be deeper than Python's recursion limit.
    out.put(nar.MAGIC + nar.DIRECTORY_HEADER)
    stack: list[tuple[int, bytes, list[tuple[bytes, os.DirEntry[str]]], int]] = []
    entries = _sorted_entries(dfd)
    i = 0
    put = out.put
    regular = out.regular
    entry_header = nar.entry_header
    root = dfd
    try:
        while True:
            if i == len(entries):
                if not stack:
                    put(nar.NODE_END)
                    return
                os.close(dfd)
                dfd, where, entries, i = stack.pop()
                put(_ENTRY_END)
                continue
            name, entry = entries[i]
            i += 1
            if entry.is_file(follow_symlinks=False):
                fd = os.open(name, _OPEN_FILE, dir_fd=dfd)
                try:
                    regular(fd, entry_header(name), _TRAILERS, where, name)
                finally:
                    os.close(fd)
            elif entry.is_dir(follow_symlinks=False):
                sub = os.open(name, _OPEN_DIR, dir_fd=dfd)
                stack.append((dfd, where, entries, i))
                dfd, where, entries, i = sub, where + b"/" + name, [], 0
                entries = _sorted_entries(sub)
                put(entry_header(name) + nar.DIRECTORY_HEADER)
            elif entry.is_symlink():
                put(entry_header(name) + nar.symlink_node(os.readlink(name, dir_fd=dfd)) + nar.NODE_END)
            else:
                raise FormatError(f"file has an unsupported type: {_show(where, name)}")
    finally:
        for fd in [dfd, *(frame[0] for frame in stack)]:
            if fd != root:
                os.close(fd)


def _sorted_entries(dfd: int) -> list[tuple[bytes, os.DirEntry[str]]]:
    # NOTE: Nix orders entries by their bytes; str order differs for undecodable names.
    # Names in one directory are unique, so the tuples never compare their DirEntry.
    with os.scandir(dfd) as it:
        entries = [(e.name.encode(_FS_ENCODING, _FS_ERRORS), e) for e in it]
    entries.sort()
    return entries


@dataclass(frozen=True, slots=True)
class _LargeFile:
    """A large file's contents, for the consumer to read and pass on itself (fd is its own)."""

    fd: int
    size: int
    where: bytes


def _run(path: str | os.PathLike[str], consume: Callable[[memoryview], None]) -> None:
    """Walk ``path`` in a producer thread; call ``consume`` on each piece of the NAR in this one.

    The producer packs framing and small files into pooled buffers; large files
    are read by the consumer itself, so their bytes are read and hashed on one
    core (handing freshly written buffers across cores costs more than the read).
    """
    raw = os.fsencode(path)
    free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[bytearray, int] | _LargeFile | BaseException | None] = queue.SimpleQueue()
    for _ in range(_BUFFERS):
        free.put(bytearray(_BUFFER))

    def take() -> bytearray:
        buf = free.get()
        if buf is None:
            raise _Cancelled
        return buf

    def hand_off(fd: int, size: int, where: bytes) -> bool:
        full.put(_LargeFile(os.dup(fd), size, where))
        return True

    def produce() -> None:
        try:
            packer = _Packer(take, lambda buf, n: full.put((buf, n)), hand_off)
            _walk(raw, packer)
            packer.flush()
            full.put(None)
        except _Cancelled:
            pass
        except BaseException as e:  # handed to the consumer, which re-raises it
            full.put(e)

    worker = threading.Thread(target=produce, name="vega-nar-walk", daemon=True)
    worker.start()
    read_buf = bytearray(_READ)
    try:
        while True:
            item = full.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, _LargeFile):
                _consume_file(item, read_buf, consume)
                continue
            buf, n = item
            with memoryview(buf) as view:
                consume(view[:n])
            free.put(buf)
    except BaseException:
        free.put(None)
        raise
    finally:
        worker.join()
        while not full.empty():  # after a failure: close the descriptors still queued
            left = full.get()
            if isinstance(left, _LargeFile):
                os.close(left.fd)


def _consume_file(item: _LargeFile, buf: bytearray, consume: Callable[[memoryview], None]) -> None:
    try:
        with memoryview(buf) as view:
            left = item.size
            while left:
                got = os.readv(item.fd, (view[: min(left, len(buf))],))
                if not got:
                    raise FormatError(f"file changed while reading it (shrank): {os.fsdecode(item.where)}")
                consume(view[:got])
                left -= got
    finally:
        os.close(item.fd)


def dump(path: str | os.PathLike[str], sink: Callable[[memoryview], object]) -> int:
    """Write the NAR of ``path`` to ``sink`` in pieces; return the NAR size.

    ``sink`` must not keep the memoryview it is given beyond the call.

    Raises:
        FormatError: the tree holds a file of an unsupported type or changed while read.
        OSError: the tree cannot be read.
    """
    size = 0

    def consume(view: memoryview) -> None:
        nonlocal size
        sink(view)
        size += len(view)

    _run(path, consume)
    return size


def dump_to_fd(path: str | os.PathLike[str], fd: int) -> None:
    """Write the NAR of ``path`` to the file descriptor ``fd`` (a file, pipe or device).

    One thread; large files go from the page cache to ``fd`` with ``sendfile``.

    Raises:
        FormatError: the tree holds a file of an unsupported type or changed while read.
        OSError: the tree cannot be read or ``fd`` written.
    """
    buf = bytearray(_BUFFER)

    def write_all(data: bytearray, n: int) -> None:
        with memoryview(data) as view:
            part = view[:n]
            while part:
                part = part[os.write(fd, part) :]

    def send(src: int, size: int, where: bytes) -> bool:
        offset = 0
        while offset < size:
            try:
                sent = os.sendfile(fd, src, offset, size - offset)
            except OSError as e:
                if offset or e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                return False  # fd does not take sendfile: copy through the buffer instead
            if sent == 0:
                raise FormatError(f"file changed while reading it (shrank): {os.fsdecode(where)}")
            offset += sent
        return True

    packer = _Packer(lambda: buf, write_all, send)
    _walk(os.fsencode(path), packer)
    packer.flush()


def hash_path(path: str | os.PathLike[str]) -> tuple[NixHash, int]:
    """The NAR hash (SHA-256) and NAR size of ``path``, as ``nix hash path`` computes them."""
    h = hashlib.sha256()
    size = dump(path, h.update)
    return NixHash(HashAlgorithm.SHA256, h.digest()), size


# -- restore --------------------------------------------------------------------------------

_RENAME_NOREPLACE: Final = 1
_AT_FDCWD: Final = -100


def restore(
    read: Callable[[int], bytes],
    target: str | os.PathLike[str],
    limits: nar.Limits = nar.Limits(),  # noqa: B008
    *,
    confine_symlinks: bool = False,
) -> None:
    """Restore the NAR read from ``read(n)`` as ``target``, all or nothing.

    ``target`` must not exist; its parent directory must. Regular files are
    created with mode 0666 (0777 when executable) and directories 0777, less
    the umask, as ``nix-store --restore`` does. Symlinks are never followed
    while restoring; with ``confine_symlinks`` a NAR holding a symlink that
    would resolve outside ``target`` (absolute, or climbing out with ``..``,
    also through other symlinks in the NAR) is refused as well.

    Raises:
        FormatError: the NAR is malformed or hostile (nothing is left behind).
        ConfigError: ``target`` exists or its parent is not a directory.
        OSError: writing failed (nothing is left behind).
    """
    import shutil  # imported here: dump and hash do not need them
    import tempfile

    final = os.path.abspath(os.fsencode(target))
    parent = os.path.dirname(final)
    if os.path.lexists(final):
        raise ConfigError(
            f"restore target already exists: {os.fsdecode(final)}",
            next_steps=["choose a path that does not exist yet"],
        )
    if not os.path.isdir(parent):
        raise ConfigError(f"restore target's parent is not a directory: {os.fsdecode(parent)}")
    scratch = tempfile.mkdtemp(prefix=b".vega-restore-", dir=parent)
    try:
        scratch_fd = os.open(scratch, _OPEN_DIR)
        try:
            _restore_into(read, scratch_fd, limits, confine_symlinks)
        finally:
            os.close(scratch_fd)
        _rename_noreplace(os.path.join(scratch, b"root"), final)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    os.rmdir(scratch)


def _restore_into(
    read: Callable[[int], bytes], scratch_fd: int, limits: nar.Limits, confine_symlinks: bool
) -> None:
    """Create the NAR's root as ``root`` inside the directory ``scratch_fd``."""
    dirs = [scratch_fd]  # open directories, innermost last; [0] is not ours to close
    name = b"root"
    out = -1  # the regular file being written
    parts: list[bytes] = []  # path of the current entry
    nodes: list[nar.NarListing] = []  # kept only with confine_symlinks
    try:
        for event in nar.read_nar(read, limits):
            if isinstance(event, nar.FileChunk):
                view = memoryview(event.data)
                while view:
                    view = view[os.write(out, view) :]
                continue
            if out >= 0:
                os.close(out)
                out = -1
            if isinstance(event, nar.EntryStart):
                name = event.name
                parts.append(name)
                continue
            if isinstance(event, nar.EntryEnd):
                parts.pop()
                continue
            if isinstance(event, nar.RegularFile):
                out = os.open(name, _CREATE, 0o777 if event.executable else 0o666, dir_fd=dirs[-1])
                kind, target = "regular", b""
            elif isinstance(event, nar.Symlink):
                os.symlink(event.target, name, dir_fd=dirs[-1])
                kind, target = "symlink", event.target
            elif isinstance(event, nar.DirectoryStart):
                os.mkdir(name, 0o777, dir_fd=dirs[-1])
                dirs.append(os.open(name, _OPEN_DIR, dir_fd=dirs[-1]))
                kind, target = "directory", b""
            else:
                os.close(dirs.pop())
                continue
            if confine_symlinks:
                nodes.append(nar.NarListing(path=b"/".join(parts), kind=kind, target=target))
        if confine_symlinks and (bad := nar.find_escaping_symlink(nodes)) is not None:
            raise FormatError(f"NAR symlink would point outside the restore target: {bad[:200]!r}")
    finally:
        if out >= 0:
            os.close(out)
        for fd in dirs[1:]:
            os.close(fd)


def _rename_noreplace(src: bytes, dst: bytes) -> None:
    """Rename ``src`` to ``dst``, failing if ``dst`` exists (renameat2 RENAME_NOREPLACE)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except AttributeError:  # pragma: no cover - glibc < 2.28
        renameat2 = None
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise ConfigError(f"restore target already exists: {os.fsdecode(dst)}")
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), os.fsdecode(dst))
    # Filesystems without RENAME_NOREPLACE: check, then rename (a narrow race remains).
    if os.path.lexists(dst):  # pragma: no cover - needs such a filesystem
        raise ConfigError(f"restore target already exists: {os.fsdecode(dst)}")
    os.rename(src, dst)  # pragma: no cover
