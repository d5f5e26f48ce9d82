"""NAR compression codecs (protocol.md §2.4 Compression): round trips, caps, hostile streams."""

from __future__ import annotations

import bz2
import contextlib
import io
import lzma
import sys
from collections.abc import Callable

import brotli
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from vega.core.compression import (
    PIECE,
    Compression,
    Compressor,
    DecompressingReader,
    Decompressor,
    detect_compression,
    parse_compression,
    sniffing_reader,
)
from vega.errors import FormatError

CODECS = list(Compression)


def compress(c: Compression, data: bytes) -> bytes:
    if c is Compression.BROTLI:
        return bytes(brotli.compress(data))
    x = Compressor(c)
    return x.compress(data) + x.finish()


def drain(read: Callable[[int], bytes]) -> None:
    while read(1 << 16):
        pass


def decode_all(c: Compression, data: bytes) -> None:
    d = Decompressor(c, max_output=1 << 30)
    d.feed(data)
    d.finish()


def decompress_in_chunks(c: Compression, data: bytes, cuts: list[int], max_output: int = 1 << 30) -> bytes:
    d = Decompressor(c, max_output=max_output)
    out = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out.append(d.feed(data[prev:cut]))
        prev = cut
    d.finish()
    return b"".join(out)


@pytest.mark.parametrize("name", ["none", "zstd", "xz", "bzip2", "br"])
def test_parse_compression_names(name: str) -> None:
    assert parse_compression(name).value == name


@pytest.mark.parametrize("name", ["", "gzip", "ZSTD", "zst", "lz4"])
def test_parse_compression_refuses_unknown(name: str) -> None:
    with pytest.raises(FormatError, match="unknown compression"):
        parse_compression(name)


def test_extensions_are_nix_file_suffixes() -> None:
    assert [c.extension for c in CODECS] == ["", ".zst", ".xz", ".bz2", ".br"]


def test_detect_compression_by_magic() -> None:
    assert detect_compression(compress(Compression.ZSTD, b"x")) is Compression.ZSTD
    assert detect_compression(compress(Compression.XZ, b"x")) is Compression.XZ
    assert detect_compression(compress(Compression.BZIP2, b"x")) is Compression.BZIP2
    assert detect_compression(b"\x0d\0\0\0\0\0\0\0nix-archive-1") is Compression.NONE
    assert detect_compression(b"") is Compression.NONE


SAMPLE = bytes(range(256)) * 50 + bytes(300_000) + b"abc" * 40_000


@pytest.mark.parametrize("c", CODECS, ids=lambda c: c.value)
def test_round_trip_whole_and_byte_split(c: Compression) -> None:
    data = compress(c, SAMPLE)
    assert decompress_in_chunks(c, data, []) == SAMPLE
    assert decompress_in_chunks(c, data, list(range(0, len(data), 997))) == SAMPLE


@given(st.sampled_from(CODECS), st.binary(max_size=3000), st.lists(st.integers(0, 4000), max_size=6))
def test_round_trip_property(c: Compression, payload: bytes, cuts: list[int]) -> None:
    data = compress(c, payload)
    assert decompress_in_chunks(c, data, [x for x in cuts if x <= len(data)]) == payload


@pytest.mark.parametrize("c", CODECS, ids=lambda c: c.value)
def test_output_cap_is_enforced(c: Compression) -> None:
    data = compress(c, SAMPLE)
    assert decompress_in_chunks(c, data, [], max_output=len(SAMPLE)) == SAMPLE
    with pytest.raises(FormatError, match=f"decompressed output exceeds {len(SAMPLE) - 1} bytes"):
        decompress_in_chunks(c, data, [], max_output=len(SAMPLE) - 1)


@pytest.fixture(scope="module")
def bombs() -> dict[Compression, bytes]:
    """64 MiB of zeros, compressed (a few KB each)."""
    zeros = bytes(64 << 20)
    return {
        Compression.ZSTD: zstandard.ZstdCompressor(level=1).compress(zeros),
        Compression.XZ: lzma.compress(zeros, preset=0),
        Compression.BZIP2: bz2.compress(zeros, 1),
        Compression.BROTLI: bytes(brotli.compress(zeros, quality=0)),
    }


@pytest.mark.parametrize("c", [Compression.ZSTD, Compression.XZ, Compression.BZIP2, Compression.BROTLI])
def test_bomb_fails_with_a_clear_error_near_the_cap(c: Compression, bombs: dict[Compression, bytes]) -> None:
    cap = 8 << 20
    d = Decompressor(c, max_output=cap)
    with pytest.raises(FormatError, match=f"{c.value} stream: decompressed output exceeds {cap} bytes"):
        d.feed(bombs[c])
    assert d.total <= cap + 2 * PIECE


def test_bomb_through_the_reader(bombs: dict[Compression, bytes]) -> None:
    r = DecompressingReader(io.BytesIO(bombs[Compression.ZSTD]).read, Compression.ZSTD, max_output=4 << 20)
    with pytest.raises(FormatError, match="exceeds"):
        drain(r.read)


def test_pieces_are_bounded() -> None:
    data = compress(Compression.ZSTD, bytes(20 << 20))
    d = Decompressor(Compression.ZSTD, max_output=1 << 30)
    sizes = []
    d.feed_to(data, lambda piece: sizes.append(len(piece)))
    d.finish()
    assert sum(sizes) == 20 << 20
    assert max(sizes) <= PIECE


@pytest.mark.parametrize("c", [c for c in CODECS if c is not Compression.NONE], ids=lambda c: c.value)
def test_truncated_stream_is_refused_at_finish(c: Compression) -> None:
    data = compress(c, SAMPLE)
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(FormatError, match=r"truncated|corrupt"):
            decode_all(c, data[:cut])


@pytest.mark.parametrize("c", [c for c in CODECS if c is not Compression.NONE], ids=lambda c: c.value)
def test_trailing_garbage_is_refused(c: Compression) -> None:
    with pytest.raises(FormatError):
        decode_all(c, compress(c, b"payload") + b"garbage!")


@pytest.mark.parametrize("c", CODECS, ids=lambda c: c.value)
@given(junk=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_format_error(c: Compression, junk: bytes) -> None:
    d = Decompressor(c, max_output=1 << 20)
    try:
        d.feed(junk)
        d.finish()
    except FormatError:
        pass


@pytest.mark.parametrize("c", [c for c in CODECS if c is not Compression.NONE], ids=lambda c: c.value)
@given(data=st.data())
def test_corrupted_streams_raise_only_format_error(c: Compression, data: st.DataObject) -> None:
    raw = bytearray(compress(c, b"some NAR bytes " * 20))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    d = Decompressor(c, max_output=1 << 20)
    try:
        d.feed(bytes(raw))
        d.finish()
    except FormatError:
        pass


def test_concatenated_streams_are_accepted() -> None:
    z = zstandard.ZstdCompressor()
    skippable = (0x184D2A53).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    empty_skippable = (0x184D2A50).to_bytes(4, "little") + bytes(4)
    zs = z.compress(b"one") + skippable + empty_skippable + z.compress(b"two") + z.compress(b"")
    assert decompress_in_chunks(Compression.ZSTD, zs, list(range(len(zs)))) == b"onetwo"
    xz = lzma.compress(b"one") + bytes(8) + lzma.compress(b"two") + bytes(4)
    assert decompress_in_chunks(Compression.XZ, xz, [len(xz) // 2]) == b"onetwo"
    bzs = bz2.compress(b"one") + bz2.compress(b"two")
    assert decompress_in_chunks(Compression.BZIP2, bzs, []) == b"onetwo"


def test_zstd_checksums_and_single_segment_frames() -> None:
    with_sum = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True).compress(SAMPLE)
    assert decompress_in_chunks(Compression.ZSTD, with_sum, [7]) == SAMPLE
    bad = bytearray(with_sum)
    bad[-1] ^= 1
    with pytest.raises(FormatError, match="corrupt zstd stream"):
        decompress_in_chunks(Compression.ZSTD, bytes(bad), [])
    dict_id = zstandard.ZstdCompressor(write_dict_id=True).compress(b"x" * 100)
    assert decompress_in_chunks(Compression.ZSTD, dict_id, []) == b"x" * 100


def test_zstd_header_errors() -> None:
    frame = zstandard.ZstdCompressor().compress(b"hello")
    reserved = bytearray(frame)
    reserved[4] |= 0x08
    with pytest.raises(FormatError, match="reserved bit"):
        Decompressor(Compression.ZSTD, max_output=100).feed(bytes(reserved))
    # frame header, then a block header of the reserved type 3
    fhd = frame[:4] + bytes([0x20]) + b"\x05"
    with pytest.raises(FormatError, match="corrupt block header"):
        Decompressor(Compression.ZSTD, max_output=100).feed(fhd + (0b111).to_bytes(3, "little"))
    oversized_raw = ((1 << 17) + 1) << 3 | 1
    with pytest.raises(FormatError, match="corrupt block header"):
        Decompressor(Compression.ZSTD, max_output=100).feed(fhd + oversized_raw.to_bytes(3, "little"))
    # a "last" raw block shorter than the frame header's content size: the decoder disagrees
    with pytest.raises(FormatError, match="corrupt"):
        Decompressor(Compression.ZSTD, max_output=100).feed(
            fhd + ((2 << 3) | 1).to_bytes(3, "little") + b"ab"
        )


def test_reader_returns_at_most_n_and_checks_completeness() -> None:
    data = compress(Compression.XZ, SAMPLE)
    r = DecompressingReader(io.BytesIO(data).read, Compression.XZ, max_output=len(SAMPLE), block=100)
    out = []
    while chunk := r.read(333):
        assert len(chunk) <= 333
        out.append(chunk)
    assert b"".join(out) == SAMPLE
    assert r.read(10) == b""
    truncated = DecompressingReader(io.BytesIO(data[:-5]).read, Compression.XZ, max_output=len(SAMPLE))
    with pytest.raises(FormatError, match="truncated"):
        drain(truncated.read)


@pytest.mark.parametrize("c", CODECS[:4], ids=lambda c: c.value)
def test_sniffing_reader_detects_compression(c: Compression) -> None:
    data = compress(c, SAMPLE)
    src = io.BytesIO(data)
    read = sniffing_reader(lambda n: src.read(min(n, 2)), max_output=len(SAMPLE))
    assert b"".join(iter(lambda: read(4096), b"")) == SAMPLE


def test_sniffing_reader_passes_short_plain_input_through() -> None:
    read = sniffing_reader(io.BytesIO(b"abc").read, max_output=10)
    assert read(1) == b"a"
    assert read(10) == b"bc"
    assert read(10) == b""


def test_brotli_missing_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "brotli", None)
    with pytest.raises(FormatError, match="brotli support is not installed"):
        Decompressor(Compression.BROTLI, max_output=10)


def test_compressor_levels_and_brotli_refusal() -> None:
    for c in (Compression.ZSTD, Compression.XZ, Compression.BZIP2):
        x = Compressor(c, level=1)
        assert decompress_in_chunks(c, x.compress(b"data") + x.finish(), []) == b"data"
    with pytest.raises(FormatError, match="only decompression"):
        Compressor(Compression.BROTLI)


def test_multithreaded_zstd_output_is_a_valid_stream() -> None:
    x = Compressor(Compression.ZSTD, threads=2)
    out = b"".join(x.compress(SAMPLE[i : i + 65536]) for i in range(0, len(SAMPLE), 65536)) + x.finish()
    assert decompress_in_chunks(Compression.ZSTD, out, []) == SAMPLE


def test_brotli_bytes_after_the_end_are_refused() -> None:
    d = Decompressor(Compression.BROTLI, max_output=100)
    assert d.feed(compress(Compression.BROTLI, b"abc")) == b"abc"
    with pytest.raises(FormatError, match="trailing bytes"):
        d.feed(b"x")


@given(
    prefix=st.sampled_from([b"", b"\x28\xb5\x2f\xfd", b"\xfd7zXZ\x00", b"BZh9", b"\x0d" + bytes(7)]),
    junk=st.binary(max_size=300),
)
def test_sniffing_reader_on_arbitrary_bytes_raises_only_format_error(prefix: bytes, junk: bytes) -> None:
    read = sniffing_reader(io.BytesIO(prefix + junk).read, max_output=1 << 20)
    with contextlib.suppress(FormatError):
        drain(read)
