"""Nix archives (NAR): a streaming writer and a strict, streaming reader.

A NAR is a sequence of *strings*: a 64-bit little-endian length, the bytes,
and zero padding up to a multiple of 8. The grammar, as Nix writes it::

    nar       = "nix-archive-1" node
    node      = "(" "type" ( regular | symlink | directory ) ")"
    regular   = "regular" [ "executable" "" ] "contents" <u64 size> <size bytes> <padding>
    symlink   = "symlink" "target" <target>
    directory = "directory" { "entry" "(" "name" <name> "node" node ")" }

Directory entries appear in strictly increasing bytewise order of their
names. The reader accepts exactly this canonical form and nothing else (Nix's
own parser is laxer about field order; no Nix writes anything but this form),
so one tree has one NAR and one NAR hash. It rejects: names that are empty,
``.``, ``..``, or contain ``/`` or NUL; out-of-order or duplicate names;
strings longer than their limit (checked before anything is allocated);
non-zero padding; unknown tokens; truncated input; and bytes after the end.

Memory is bounded: file contents are yielded in chunks of at most
``Limits.chunk_size`` bytes, whatever the file size.

The NAR hash is SHA-256 over the NAR bytes; a path added with
``nix-store --add`` has the content address ``fixed:r:sha256:<nix32>``.

The events live in ``vega.core.narevent`` and the listing helpers
(``list_nar``, the nodes ``nix nar ls -R`` shows; ``find_escaping_symlink``,
whether a symlink would resolve outside the tree) in ``vega.core.narlisting``;
both are re-exported here.

Spec: protocol.md §2.4 (``NarHash``, ``NarSize``). Upstream: Nix
src/libutil/archive.cc, src/libstore/content-address.cc.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from vega.core.hashes import HashAlgorithm, NixHash
from vega.core.narevent import (
    DIRECTORY_END,
    DIRECTORY_START,
    ENTRY_END,
    DirectoryEnd,
    DirectoryStart,
    EntryEnd,
    EntryStart,
    FileChunk,
    NarEvent,
    RegularFile,
    Symlink,
)
from vega.core.narlisting import NarListing, find_escaping_symlink, list_nar
from vega.errors import FormatError

__all__ = [
    "DIRECTORY_END",
    "DIRECTORY_HEADER",
    "DIRECTORY_START",
    "ENTRY_END",
    "MAGIC",
    "NODE_END",
    "DirectoryEnd",
    "DirectoryStart",
    "EntryEnd",
    "EntryStart",
    "FileChunk",
    "Limits",
    "NarEvent",
    "NarListing",
    "NarWriter",
    "RegularFile",
    "Symlink",
    "content_address",
    "entry_header",
    "find_escaping_symlink",
    "frame",
    "list_nar",
    "padding",
    "read_nar",
    "regular_header",
    "symlink_node",
    "validate_name",
]

_ZEROS = bytes(8)


def frame(s: bytes) -> bytes:
    """One NAR string: little-endian u64 length, the bytes, zero padding to 8."""
    n = len(s)
    return n.to_bytes(8, "little") + s + _ZEROS[: -n & 7]


def padding(size: int) -> bytes:
    """The zero bytes that follow ``size`` bytes of file contents."""
    return _ZEROS[: -size & 7]


_OPEN = frame(b"(")
_CLOSE = frame(b")")
MAGIC = frame(b"nix-archive-1")
"""The first 24 bytes of every NAR."""
_DIRECTORY_HEADER = _OPEN + frame(b"type") + frame(b"directory")
_REGULAR_HEADER = _OPEN + frame(b"type") + frame(b"regular") + frame(b"contents")
_EXECUTABLE_HEADER = (
    _OPEN + frame(b"type") + frame(b"regular") + frame(b"executable") + frame(b"") + frame(b"contents")
)
_SYMLINK_HEADER = _OPEN + frame(b"type") + frame(b"symlink") + frame(b"target")
_ENTRY_HEADER = frame(b"entry") + _OPEN + frame(b"name")
_NODE = frame(b"node")

DIRECTORY_HEADER = _DIRECTORY_HEADER
"""``( type directory``: opens a directory node."""
NODE_END = _CLOSE
"""``)``: closes a node (and, written again, the entry around it)."""


def regular_header(executable: bool, size: int) -> bytes:
    """``( type regular [executable ""] contents <size>``: the bytes before a file's contents."""
    return (_EXECUTABLE_HEADER if executable else _REGULAR_HEADER) + size.to_bytes(8, "little")


def entry_header(name: bytes) -> bytes:
    """``entry ( name <name> node``: the bytes before an entry's node."""
    n = len(name)
    return b"".join((_ENTRY_HEADER, n.to_bytes(8, "little"), name, _ZEROS[: -n & 7], _NODE))


def symlink_node(target: bytes) -> bytes:
    """A whole symlink node, ``( type symlink target <target> )``."""
    return _SYMLINK_HEADER + frame(target) + _CLOSE


def validate_name(name: bytes, previous: bytes | None) -> None:
    """Check a directory entry name and its order after ``previous``.

    Raises:
        FormatError: the name is empty, ``.``, ``..``, contains ``/`` or NUL,
            or does not sort strictly after ``previous``.
    """
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise FormatError(f"NAR entry name not allowed: {name[:80]!r}")
    if previous is not None and name <= previous:
        what = "duplicate" if name == previous else "out of order"
        raise FormatError(f"NAR entry name {what}: {name[:80]!r} after {previous[:80]!r}")


def content_address(nar_hash: NixHash) -> str:
    """The content address of a path added recursively: ``fixed:r:sha256:<nix32>``.

    Raises:
        FormatError: the hash is not SHA-256.
    """
    if nar_hash.algorithm is not HashAlgorithm.SHA256:
        raise FormatError(f"content address: expected a sha256 NAR hash, got {nar_hash.algorithm}")
    return f"fixed:r:sha256:{nar_hash.nix32}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds the reader enforces before allocating anything."""

    max_name: int = 255
    """Longest entry name in bytes (Linux NAME_MAX)."""
    max_target: int = 4095
    """Longest symlink target in bytes (Linux PATH_MAX - 1)."""
    max_depth: int = 256
    """Deepest directory nesting."""
    max_file_size: int = 1 << 62
    """Largest regular file."""
    chunk_size: int = 1 << 18
    """Largest FileChunk yielded, and the size of each read."""


# -- writer ---------------------------------------------------------------------------------


class NarWriter:
    """Writes a NAR event by event to ``sink``, refusing any sequence that is not a valid NAR.

    Example::

        w = NarWriter(out.append)
        w.write(RegularFile(executable=False, size=2))
        w.write(FileChunk(b"hi"))
        w.close()
    """

    def __init__(self, sink: Callable[[bytes], object]) -> None:
        self._sink = sink
        self._names: list[bytes | None] = []  # last entry name of each open directory
        self._in_entry: list[bool] = []  # per open directory: inside an entry whose node is pending
        self._file_left = -1  # bytes still owed to the current file, -1 when none
        self._file_size = 0
        self._expect_node = True
        self._done = False
        sink(MAGIC)

    def write(self, event: NarEvent) -> None:
        """Write one event.

        Raises:
            FormatError: the event is not allowed here.
        """
        if self._file_left > 0:
            if not isinstance(event, FileChunk) or not event.data or len(event.data) > self._file_left:
                raise FormatError(f"NAR writer: expected {self._file_left} more bytes of file contents")
            self._file_left -= len(event.data)
            self._sink(event.data)
            if self._file_left == 0:
                self._end_file()
            return
        if self._done:
            raise FormatError("NAR writer: the root node is complete")
        if self._expect_node:
            self._node(event)
        else:
            self._in_directory(event)

    def _node(self, event: NarEvent) -> None:
        if isinstance(event, RegularFile):
            if event.size < 0:
                raise FormatError(f"NAR writer: negative file size {event.size}")
            self._sink(regular_header(event.executable, event.size))
            self._file_left = event.size
            self._file_size = event.size
            if event.size == 0:
                self._end_file()
        elif isinstance(event, Symlink):
            if not event.target or b"\0" in event.target:
                raise FormatError(f"NAR writer: symlink target not allowed: {event.target[:80]!r}")
            self._sink(symlink_node(event.target))
            self._node_done()
        elif isinstance(event, DirectoryStart):
            self._sink(_DIRECTORY_HEADER)
            self._names.append(None)
            self._in_entry.append(False)
            self._expect_node = False
        else:
            raise FormatError(f"NAR writer: expected a node, got {type(event).__name__}")

    def _in_directory(self, event: NarEvent) -> None:
        if self._in_entry[-1]:
            if not isinstance(event, EntryEnd):
                raise FormatError(f"NAR writer: expected EntryEnd, got {type(event).__name__}")
            self._in_entry[-1] = False
            self._sink(_CLOSE)
        elif isinstance(event, EntryStart):
            validate_name(event.name, self._names[-1])
            self._names[-1] = event.name
            self._in_entry[-1] = True
            self._sink(entry_header(event.name))
            self._expect_node = True
        elif isinstance(event, DirectoryEnd):
            self._names.pop()
            self._in_entry.pop()
            self._sink(_CLOSE)
            self._node_done()
        else:
            raise FormatError(f"NAR writer: expected an entry or DirectoryEnd, got {type(event).__name__}")

    def _end_file(self) -> None:
        self._file_left = -1
        self._sink(_ZEROS[: -self._file_size & 7] + _CLOSE)
        self._node_done()

    def _node_done(self) -> None:
        self._expect_node = False
        if not self._names:
            self._done = True

    def close(self) -> None:
        """Check that the NAR is complete.

        Raises:
            FormatError: the root node is not finished.
        """
        if not self._done:
            raise FormatError("NAR writer: closed before the root node was complete")


# -- reader ---------------------------------------------------------------------------------

_MAX_TOKEN = 16  # the longest keyword is "nix-archive-1"


class _Source:
    """Buffered, exact reads over ``read(n)``, with the offset for error messages."""

    __slots__ = ("_block", "_buf", "_pos", "_read", "offset")

    def __init__(self, read: Callable[[int], bytes], block: int) -> None:
        self._read = read
        self._block = block
        self._buf = b""
        self._pos = 0
        self.offset = 0  # absolute offset of _buf[0]

    def at(self) -> int:
        return self.offset + self._pos

    def _fill(self, what: str) -> None:
        data = bytes(self._read(self._block))
        if not data:
            raise FormatError(f"NAR truncated at byte {self.at()}: expected {what}")
        self.offset += len(self._buf)
        self._buf = self._buf[self._pos :] + data
        self.offset -= len(self._buf) - len(data)
        self._pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self._pos + n
        while end > len(self._buf):
            self._fill(what)
            end = self._pos + n
        out = self._buf[self._pos : end]
        self._pos = end
        return out

    def chunk(self, n: int, what: str) -> bytes:
        """Up to ``n`` (> 0) bytes, at least one."""
        if self._pos == len(self._buf):
            self._fill(what)
        end = min(self._pos + n, len(self._buf))
        out = self._buf[self._pos : end]
        self._pos = end
        return out

    def u64(self, what: str) -> int:
        return int.from_bytes(self.take(8, what), "little")

    def string(self, limit: int, what: str) -> bytes:
        start = self.at()
        n = self.u64(what)
        if n > limit:
            raise FormatError(f"NAR at byte {start}: {what} of {n} bytes exceeds the limit of {limit}")
        data = self.take(n + (-n & 7), what)
        self.pad(data[n:], start)
        return data[:n]

    @staticmethod
    def pad(zeros: bytes, start: int) -> None:
        if zeros.strip(b"\0"):
            raise FormatError(f"NAR at byte {start}: non-zero padding")

    def token(self) -> bytes:
        start = self.at()
        n = self.u64("a keyword")
        if n > _MAX_TOKEN:
            raise FormatError(f"NAR at byte {start}: expected a keyword, got a string of {n} bytes")
        data = self.take(n + (-n & 7), "a keyword")
        self.pad(data[n:], start)
        return data[:n]

    def expect(self, word: bytes) -> None:
        start = self.at()
        got = self.token()
        if got != word:
            raise FormatError(f"NAR at byte {start}: expected {word.decode()!r}, got {got[:40]!r}")

    def expect_end(self) -> None:
        if self._pos < len(self._buf) or self._read(1):
            raise FormatError(f"NAR has trailing bytes after the end, at byte {self.at()}")


def read_nar(read: Callable[[int], bytes], limits: Limits = Limits()) -> Iterator[NarEvent]:
    """Parse a NAR from ``read(n)`` (returning up to n bytes, ``b""`` at the end), yielding events.

    The events of a well-formed NAR, fed to ``NarWriter``, reproduce it byte
    for byte. The whole input is checked: the generator raises on trailing
    bytes after yielding the last event.

    Raises:
        FormatError: the input is not a canonical NAR within ``limits``.
    """
    src = _Source(read, limits.chunk_size)
    src.expect(b"nix-archive-1")
    names: list[bytes | None] = []  # per open directory: the last entry name
    need_node = True
    while True:
        if need_node:
            need_node = False
            src.expect(b"(")
            src.expect(b"type")
            start = src.at()
            kind = src.token()
            if kind == b"regular":
                yield from _regular(src, limits)
            elif kind == b"symlink":
                src.expect(b"target")
                at = src.at()
                target = src.string(limits.max_target, "symlink target")
                if not target or b"\0" in target:
                    raise FormatError(f"NAR at byte {at}: symlink target not allowed: {target[:80]!r}")
                src.expect(b")")
                yield Symlink(target)
            elif kind == b"directory":
                if len(names) >= limits.max_depth:
                    raise FormatError(
                        f"NAR at byte {start}: directories nested deeper than {limits.max_depth}"
                    )
                names.append(None)
                yield DIRECTORY_START
                continue
            else:
                raise FormatError(f"NAR at byte {start}: unknown node type {kind[:40]!r}")
            if not names:
                break
            src.expect(b")")
            yield ENTRY_END
        start = src.at()
        word = src.token()
        if word == b"entry":
            src.expect(b"(")
            src.expect(b"name")
            at = src.at()
            name = src.string(limits.max_name, "entry name")
            try:
                validate_name(name, names[-1])
            except FormatError as e:
                raise FormatError(f"NAR at byte {at}: {e.message}") from None
            names[-1] = name
            src.expect(b"node")
            yield EntryStart(name)
            need_node = True
        elif word == b")":
            names.pop()
            yield DIRECTORY_END
            if not names:
                break
            src.expect(b")")
            yield ENTRY_END
        else:
            raise FormatError(f"NAR at byte {start}: expected 'entry' or ')', got {word[:40]!r}")
    src.expect_end()


def _regular(src: _Source, limits: Limits) -> Iterator[NarEvent]:
    executable = False
    start = src.at()
    word = src.token()
    if word == b"executable":
        at = src.at()
        if src.string(_MAX_TOKEN, "executable marker"):
            raise FormatError(f"NAR at byte {at}: executable marker must be empty")
        executable = True
        start = src.at()
        word = src.token()
    if word != b"contents":
        raise FormatError(f"NAR at byte {start}: expected 'contents', got {word[:40]!r}")
    at = src.at()
    size = src.u64("file size")
    if size > limits.max_file_size:
        raise FormatError(
            f"NAR at byte {at}: file of {size} bytes exceeds the limit of {limits.max_file_size}"
        )
    yield RegularFile(executable, size)
    left = size
    while left:
        data = src.chunk(min(left, limits.chunk_size), "file contents")
        left -= len(data)
        yield FileChunk(data)
    at = src.at()
    src.pad(src.take(-size & 7, "padding"), at)
    src.expect(b")")
