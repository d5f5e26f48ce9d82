"""NAR compression as a narinfo names it: streaming decompressors with an output cap, and compressors.

Names (the narinfo ``Compression`` field): ``none``, ``zstd``, ``xz``,
``bzip2``, ``br``. Every decompressor is incremental (``feed`` compressed
bytes, get decompressed bytes; ``finish`` checks the stream was complete) and
enforces ``max_output``: output is produced in pieces of at most 1 MiB and the
total is checked before each piece, so a decompression bomb fails with
``FormatError("... decompressed output exceeds N bytes")`` having allocated at
most one piece beyond the cap.

zstd runs in process (``zstandard``). Its streaming API cannot bound the
output of one call, so the frame and block headers are tracked here (RFC 8878
§3.1): input is handed to the decoder a few blocks at a time, and a block
decodes to at most 128 KiB. Tracking the frames also tells where a frame
ends, which the library does not, so truncation and trailing garbage are
caught. Concatenated streams (zstd frames, xz streams with their zero
padding, bzip2 streams) are accepted, as Nix's decoders do. Brotli is
optional: ``brotli`` is imported only when a ``br`` stream is met.

Compression (``Compressor``) is for the one-pass push pipeline: NAR bytes →
NarHash → zstd (level 3, multi-threaded) → FileHash.

Spec: protocol.md §2.4 (``Compression``), §3. Upstream: Nix
src/libutil/compression.cc.
"""

from __future__ import annotations

import bz2
import enum
import lzma
from collections.abc import Callable, Iterator
from typing import Protocol

import zstandard

from vega.errors import FormatError

__all__ = [
    "PIECE",
    "Compression",
    "Compressor",
    "DecompressingReader",
    "Decompressor",
    "detect_compression",
    "parse_compression",
    "sniffing_reader",
]

PIECE = 1 << 20
"""The most output one decoder step produces, in bytes."""


class Compression(enum.Enum):
    """A NAR compression, valued by its narinfo spelling."""

    NONE = "none"
    ZSTD = "zstd"
    XZ = "xz"
    BZIP2 = "bzip2"
    BROTLI = "br"

    @property
    def extension(self) -> str:
        """The file name suffix Nix uses after ``.nar`` (``""`` for none)."""
        return _EXTENSIONS[self]


_EXTENSIONS = {
    Compression.NONE: "",
    Compression.ZSTD: ".zst",
    Compression.XZ: ".xz",
    Compression.BZIP2: ".bz2",
    Compression.BROTLI: ".br",
}


def parse_compression(text: str) -> Compression:
    """Parse a narinfo ``Compression`` value.

    Raises:
        FormatError: not one of ``none``, ``zstd``, ``xz``, ``bzip2``, ``br``.
    """
    try:
        return Compression(text)
    except ValueError:
        raise FormatError(f"unknown compression {text[:40]!r}") from None


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZIP2_MAGIC = b"BZh"


def detect_compression(head: bytes) -> Compression:
    """The compression whose magic bytes start ``head`` (zstd, xz, bzip2); else ``NONE``.

    Brotli has no magic number, so it is never detected.
    """
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    if head.startswith(_XZ_MAGIC):
        return Compression.XZ
    if head.startswith(_BZIP2_MAGIC):
        return Compression.BZIP2
    return Compression.NONE


class _Codec(Protocol):
    def pieces(self, data: bytes) -> Iterator[bytes]: ...

    def complete(self) -> bool: ...


class Decompressor:
    """Incremental decompression of one stream, capped at ``max_output`` bytes in total.

    Example::

        d = Decompressor(Compression.ZSTD, max_output=nar_size)
        for chunk in body:
            hasher.update(d.feed(chunk))
        d.finish()
    """

    def __init__(self, compression: Compression, *, max_output: int) -> None:
        self.compression = compression
        """The stream's compression."""
        self.max_output = max_output
        """The most output allowed, in bytes."""
        self.total = 0
        """Output produced so far, in bytes."""
        self._codec = _codec(compression)

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """Decompress ``data`` (the next input), yielding output in pieces of at most ``PIECE`` bytes.

        Raises:
            FormatError: the input is corrupt, or the output would exceed ``max_output``.
        """
        for piece in self._codec.pieces(data):
            self.total += len(piece)
            if self.total > self.max_output:
                raise FormatError(
                    f"{self.compression.value} stream: decompressed output exceeds {self.max_output} bytes"
                )
            yield piece

    def feed(self, data: bytes) -> bytes:
        """Decompress ``data``, returning all output it yields (at most ``max_output`` in total).

        Raises:
            FormatError: the input is corrupt, or the output would exceed ``max_output``.
        """
        return b"".join(self.pieces(data))

    def feed_to(self, data: bytes, sink: Callable[[bytes], object]) -> None:
        """Decompress ``data``, passing each piece to ``sink`` (constant memory).

        Raises:
            FormatError: the input is corrupt, or the output would exceed ``max_output``.
        """
        for piece in self.pieces(data):
            sink(piece)

    def finish(self) -> None:
        """Check that the input formed whole streams.

        Raises:
            FormatError: the stream is truncated.
        """
        if not self._codec.complete():
            raise FormatError(f"{self.compression.value} stream is truncated")


class DecompressingReader:
    """A ``read(n)`` callable over compressed input from another ``read(n)``, for ``nar.read_nar``.

    At most ``n`` bytes are returned per call and memory stays bounded; at the
    end of the input the stream is checked to be complete.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        compression: Compression,
        *,
        max_output: int,
        block: int = 1 << 16,
    ) -> None:
        self._read = read
        self._block = block
        self._decompressor = Decompressor(compression, max_output=max_output)
        self._pieces: Iterator[bytes] = iter(())
        self._piece = b""
        self._done = False

    def read(self, n: int) -> bytes:
        """Up to ``n`` decompressed bytes; ``b""`` at the end.

        Raises:
            FormatError: the input is corrupt, truncated, or decompresses beyond ``max_output``.
        """
        while not self._piece:
            if self._done:
                return b""
            piece = next(self._pieces, None)
            if piece is not None:
                self._piece = piece
                continue
            data = self._read(self._block)
            if not data:
                self._decompressor.finish()
                self._done = True
                return b""
            self._pieces = self._decompressor.pieces(bytes(data))
        out = self._piece[:n]
        self._piece = self._piece[n:]
        return out


def _codec(compression: Compression) -> _Codec:
    if compression is Compression.NONE:
        return _Identity()
    if compression is Compression.ZSTD:
        return _Zstd()
    if compression is Compression.XZ:
        return _Stdlib(lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), lzma.LZMAError, strip_zeros=True)
    if compression is Compression.BZIP2:
        return _Stdlib(bz2.BZ2Decompressor, OSError, strip_zeros=False)
    return _Brotli()


class _Identity:
    def pieces(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), PIECE):
            yield data[start : start + PIECE]

    def complete(self) -> bool:
        return True


class _StdDecompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    @property
    def needs_input(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


class _Stdlib:
    """lzma and bz2: one decompressor per concatenated stream, ``max_length`` per step."""

    def __init__(
        self, new: Callable[[], _StdDecompressor], error: type[Exception], *, strip_zeros: bool
    ) -> None:
        self._new = new
        self._error = error
        self._strip_zeros = strip_zeros  # xz allows zero padding between and after streams
        self._d: _StdDecompressor | None = None
        self._streams = 0

    def pieces(self, data: bytes) -> Iterator[bytes]:
        while True:
            if self._d is None:
                if self._strip_zeros:
                    data = data.lstrip(b"\0")
                if not data:
                    return
                self._d = self._new()
            d = self._d
            try:
                out = d.decompress(data, PIECE)
            except self._error as e:
                raise FormatError(f"corrupt compressed stream: {e}") from None
            data = b""
            if out:
                yield out
            if d.eof:
                self._streams += 1
                self._d = None
                data = d.unused_data
            elif d.needs_input:
                return

    def complete(self) -> bool:
        return self._d is None and self._streams > 0


class _Brotli:
    def __init__(self) -> None:
        try:
            import brotli
        except ImportError:
            raise FormatError(
                "br stream: brotli support is not installed", next_steps=["pip install 'vega[brotli]'"]
            ) from None
        self._brotli = brotli
        self._d = brotli.Decompressor()

    def pieces(self, data: bytes) -> Iterator[bytes]:
        d = self._d
        while True:
            if data and d.is_finished():
                raise FormatError("br stream: trailing bytes after the end")
            try:
                out = d.process(data, output_buffer_limit=PIECE)
            except self._brotli.error as e:
                raise FormatError(f"corrupt br stream: {e}") from None
            data = b""
            if out:
                yield out
            # NOTE: can_accept_more_data() is true while output is still pending; stop on no output.
            if d.is_finished() or (not out and d.can_accept_more_data()):
                return

    def complete(self) -> bool:
        return bool(self._d.is_finished())


# zstd frame tracking (RFC 8878 §3.1.1)
_ZSTD_MAGIC_NUMBER = 0xFD2FB528
_BLOCK_MAX = 1 << 17
_FCS_SIZES = (0, 2, 4, 8)
_DID_SIZES = (0, 1, 2, 4)
(_MAGIC, _FRAME_HEADER, _BLOCK_HEADER, _BLOCK_BODY, _CHECKSUM, _SKIP_SIZE, _SKIP_BODY) = range(7)


class _Zstd:
    """Feeds a frame to ``zstandard`` a few blocks at a time, so each step's output is bounded."""

    def __init__(self) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        self._obj: zstandard.ZstdDecompressionObj | None = None
        self._state = _MAGIC
        self._need = 4  # header bytes wanted in _head
        self._head = bytearray()
        self._left = 0  # body bytes still to pass (block or skippable frame)
        self._last = False
        self._checksum = False
        self._batch: list[bytes] = []
        self._bound = 0  # the most output _batch can produce
        self._frames = 0

    def pieces(self, data: bytes) -> Iterator[bytes]:
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._state in (_BLOCK_BODY, _SKIP_BODY):
                n = min(self._left, len(view) - pos)
                if self._state == _BLOCK_BODY:
                    self._batch.append(bytes(view[pos : pos + n]))
                pos += n
                self._left -= n
                if not self._left:
                    yield from self._body_done()
                continue
            n = min(self._need - len(self._head), len(view) - pos)
            self._head += view[pos : pos + n]
            pos += n
            if len(self._head) == self._need:
                yield from self._header_done()
            if self._bound >= PIECE:
                yield from self._flush()
        yield from self._flush()

    def _header_done(self) -> Iterator[bytes]:
        head = bytes(self._head)
        state = self._state
        if state == _MAGIC:
            magic = int.from_bytes(head, "little")
            if magic == _ZSTD_MAGIC_NUMBER:
                self._state, self._need = _FRAME_HEADER, 5
                return
            if magic & 0xFFFFFFF0 == 0x184D2A50:
                self._reset(_SKIP_SIZE, 4)
                return
            raise FormatError(f"zstd stream: bad frame magic {head.hex()}")
        if state == _FRAME_HEADER and len(head) == 5:
            fhd = head[4]
            if fhd & 0x08:
                raise FormatError("zstd stream: reserved bit set in the frame header")
            single = (fhd >> 5) & 1
            fcs = _FCS_SIZES[fhd >> 6] or single
            self._checksum = bool(fhd & 0x04)
            self._need = 5 + (1 - single) + _DID_SIZES[fhd & 3] + fcs  # always more than 5
        elif state == _FRAME_HEADER:
            self._obj = self._dctx.decompressobj()
            self._batch.append(head)
            self._reset(_BLOCK_HEADER, 3)
        elif state == _BLOCK_HEADER:
            value = int.from_bytes(head, "little")
            self._last = bool(value & 1)
            kind = (value >> 1) & 3
            size = value >> 3
            if kind == 3 or (kind < 2 and size > _BLOCK_MAX):
                raise FormatError("zstd stream: corrupt block header")
            self._batch.append(head)
            self._bound += _BLOCK_MAX if kind == 2 else size
            self._reset(_BLOCK_BODY, 0)
            self._left = 1 if kind == 1 else size
            if not self._left:
                yield from self._body_done()
        elif state == _CHECKSUM:
            self._batch.append(head)
            yield from self._frame_done()
        else:  # _SKIP_SIZE
            self._reset(_SKIP_BODY, 0)
            self._left = int.from_bytes(head, "little")
            if not self._left:
                self._reset(_MAGIC, 4)

    def _body_done(self) -> Iterator[bytes]:
        if self._state == _SKIP_BODY:
            self._reset(_MAGIC, 4)
        elif not self._last:
            self._reset(_BLOCK_HEADER, 3)
        elif self._checksum:
            self._reset(_CHECKSUM, 4)
        else:
            yield from self._frame_done()

    def _frame_done(self) -> Iterator[bytes]:
        yield from self._flush()
        assert self._obj is not None  # noqa: S101 - set by the frame header
        if not self._obj.eof:  # pragma: no cover - defensive: the decoder raises on such frames first
            raise FormatError("zstd stream: corrupt frame")
        self._obj = None
        self._frames += 1
        self._reset(_MAGIC, 4)

    def _reset(self, state: int, need: int) -> None:
        self._state = state
        self._need = need
        self._head = bytearray()

    def _flush(self) -> Iterator[bytes]:
        if not self._batch:
            return
        data = b"".join(self._batch)
        self._batch = []
        self._bound = 0
        assert self._obj is not None  # noqa: S101 - a batch only exists inside a frame
        try:
            out = self._obj.decompress(data)
        except zstandard.ZstdError as e:
            raise FormatError(f"corrupt zstd stream: {e}") from None
        if out:
            yield out

    def complete(self) -> bool:
        return self._frames > 0 and self._state == _MAGIC and not self._head


class Compressor:
    """Streaming compression for the push pipeline (zstd level 3 multi-threaded by default).

    Example::

        c = Compressor(Compression.ZSTD)
        out = c.compress(nar_chunk) + ... + c.finish()
    """

    def __init__(self, compression: Compression, *, level: int | None = None, threads: int = -1) -> None:
        self.compression = compression
        """The compression produced."""
        self._compress: Callable[[bytes], bytes]
        self._flush: Callable[[], bytes]
        if compression is Compression.NONE:
            self._compress, self._flush = bytes, bytes
        elif compression is Compression.ZSTD:
            obj = zstandard.ZstdCompressor(level=3 if level is None else level, threads=threads).compressobj()
            self._compress, self._flush = obj.compress, obj.flush
        elif compression is Compression.XZ:
            xz = lzma.LZMACompressor(lzma.FORMAT_XZ, preset=6 if level is None else level)
            self._compress, self._flush = xz.compress, xz.flush
        elif compression is Compression.BZIP2:
            bz = bz2.BZ2Compressor(9 if level is None else level)
            self._compress, self._flush = bz.compress, bz.flush
        else:
            raise FormatError("br: compression is not supported, only decompression")

    def compress(self, data: bytes) -> bytes:
        """Compress the next input; returns whatever output is ready (maybe empty)."""
        return self._compress(data)

    def finish(self) -> bytes:
        """End the stream; returns the remaining output."""
        return self._flush()


def sniffing_reader(read: Callable[[int], bytes], *, max_output: int) -> Callable[[int], bytes]:
    """A ``read(n)`` over ``read`` that decompresses zstd, xz or bzip2 input, detected by magic bytes.

    Input with no known magic is passed through unchanged. Nothing is read
    from ``read`` before the first call.
    """
    head = b""
    inner: Callable[[int], bytes] | None = None

    def replay(n: int) -> bytes:
        nonlocal head
        if head:
            out, head = head[:n], head[n:]
            return out
        return read(n)

    def first(n: int) -> bytes:
        nonlocal head, inner
        if inner is None:
            while len(head) < len(_XZ_MAGIC):
                data = read(len(_XZ_MAGIC) - len(head))
                if not data:
                    break
                head += data
            compression = detect_compression(head)
            if compression is Compression.NONE:
                inner = replay
            else:
                inner = DecompressingReader(replay, compression, max_output=max_output).read
        return inner(n)

    return first
