"""vega.core.tiles: C2SP tlog-tiles paths and arithmetic, and every proof computed from tiles alone."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import reference_merkle as ref
from tests.core.merkletrees import Tree
from vega.core import merkle, tiles
from vega.core.tiles import EntryBundle, Tile
from vega.errors import FormatError


@cache
def tree(n: int) -> Tree:
    return Tree([b"tile leaf %d" % i for i in range(n)])


class Server:
    """Serves the tiles of one tree size, as a static file server would; counts fetches."""

    def __init__(self, t: Tree, size: int) -> None:
        self.files = {x.path: tiles.read_tile(x, t.read) for x in tiles.tiles_for_size(size)}
        self.calls: list[list[Tile]] = []

    def fetch(self, wanted: Sequence[Tile]) -> list[bytes]:
        self.calls.append(list(wanted))
        return [self.files[x.path] for x in wanted]


def test_spec_path_example() -> None:
    """c2sp.org/tlog-tiles: index 1234067 is encoded x001/x234/067."""
    assert Tile(0, 1234067).path == "tile/0/x001/x234/067"
    assert Tile(2, 1234067, 17).path == "tile/2/x001/x234/067.p/17"
    assert EntryBundle(1234067).path == "tile/entries/x001/x234/067"
    assert EntryBundle(7, 5).path == "tile/entries/007.p/5"
    assert Tile(1, 1000).path == "tile/1/x001/000"
    assert Tile(0, 0).path == "tile/0/000"
    assert tiles.parse_tile_path("tile/0/x001/x234/067") == Tile(0, 1234067)
    assert tiles.parse_tile_path("tile/63/x001/x234/067.p/255") == Tile(63, 1234067, 255)
    assert tiles.parse_entry_bundle_path("tile/entries/x001/x234/067.p/1") == EntryBundle(1234067, 1)


def test_spec_tiles_of_size_70000_and_256() -> None:
    """c2sp.org/tlog-tiles, "Partial Tiles": the two worked examples."""
    count = Counter((t.level, t.width) for t in tiles.tiles_for_size(70_000))
    assert count == {(0, 256): 273, (0, 112): 1, (1, 256): 1, (1, 17): 1, (2, 1): 1}
    assert list(tiles.tiles_for_size(256)) == [Tile(0, 0), Tile(1, 0, 1)]
    assert list(tiles.tiles_for_size(0)) == []
    assert list(tiles.entry_bundles_for_size(70_000))[-2:] == [EntryBundle(272), EntryBundle(273, 112)]
    assert list(tiles.entry_bundles_for_size(70_001, 70_000)) == [EntryBundle(273, 113)]
    assert list(tiles.entry_bundles_for_size(70_000, 70_000)) == []


@given(st.integers(0, 200_000), st.integers(0, 200_000))
def test_new_tiles_complete_the_old_ones(a: int, b: int) -> None:
    old, new = sorted((a, b))
    before, after = set(tiles.tiles_for_size(old)), set(tiles.tiles_for_size(new))
    delta = list(tiles.tiles_for_size(new, old))
    assert len(delta) == len(set(delta))
    assert set(delta) <= after
    assert not set(delta) & before
    assert after <= before | set(delta)
    # A level's partial width is floor(size / 256**level) mod 256 (tlog-tiles).
    for t in after:
        if t.is_partial:
            assert t.width == (new // 256**t.level) % 256


def test_tile_hashes_are_the_spec_formula() -> None:
    """c2sp.org/tlog-tiles: hash i of tile n at level l is MTH(D[(n*256+i)*256**l : (n*256+i+1)*256**l])."""
    t = tree(600)
    server = Server(t, 600)
    assert sorted(server.files) == ["tile/0/000", "tile/0/001", "tile/0/002.p/88", "tile/1/000.p/2"]
    for path, data in server.files.items():
        tile = tiles.parse_tile_path(path)
        for i, h in enumerate(tiles.parse_tile(tile, data)):
            lo = (tile.index * 256 + i) * 256**tile.level
            assert h == ref.mth(t.leaves[lo : lo + 256**tile.level])


@settings(max_examples=40)
@given(data=st.data(), size=st.integers(1, 1100))
def test_every_proof_from_tiles_alone(data: st.DataObject, size: int) -> None:
    t = tree(1100)
    server = Server(t, size)
    reader = tiles.tile_hash_reader(size, server.fetch)
    assert merkle.tree_root(size, reader) == merkle.tree_root(size, t.read)
    i = data.draw(st.integers(0, size - 1))
    assert merkle.prove_inclusion(i, size, reader) == merkle.prove_inclusion(i, size, t.read)
    m = data.draw(st.integers(0, size))
    server.calls.clear()
    assert merkle.prove_consistency(m, size, reader) == merkle.prove_consistency(m, size, t.read)
    assert len(server.calls) <= 1
    if server.calls:
        assert len(server.calls[0]) == len(set(server.calls[0]))


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 512, 513, 65535, 65536, 65537, 70_000])
def test_proofs_from_tiles_at_tile_boundaries(size: int) -> None:
    t = tree(70_000)
    server = Server(t, size)
    reader = tiles.tile_hash_reader(size, server.fetch)
    root = merkle.tree_root(size, reader)
    assert root == merkle.tree_root(size, t.read)
    for i in {0, size // 3, size - 1}:
        proof = merkle.prove_inclusion(i, size, reader)
        merkle.verify_inclusion(merkle.leaf_hash(t.leaves[i]), i, size, proof, root)
    for m in {1, size // 2, size - 1}:
        if m > 0:
            proof = merkle.prove_consistency(m, size, reader)
            merkle.verify_consistency(m, size, proof, merkle.tree_root(m, t.read), root)


def test_tile_for_node() -> None:
    assert tiles.tile_for_node((0, 5), 70_000) == (Tile(0, 0), 5, 1)
    assert tiles.tile_for_node((3, 35), 70_000) == (Tile(0, 1), 24, 8)
    assert tiles.tile_for_node((0, 69_999), 70_000) == (Tile(0, 273, 112), 111, 1)
    assert tiles.tile_for_node((16, 0), 70_000) == (Tile(2, 0, 1), 0, 1)
    assert tiles.tile_for_node((9, 1), 1024) == (Tile(1, 0, 4), 2, 2)
    for node, size in (((0, 5), 5), ((-1, 0), 9), ((0, -1), 9), ((64, 0), 2**70), ((4, 0), 15)):
        with pytest.raises(FormatError, match="is not a complete subtree"):
            tiles.tile_for_node(node, size)


def test_reader_rejects_bad_tiles() -> None:
    t = tree(600)
    server = Server(t, 600)
    assert tiles.tile_hash_reader(600, server.fetch)([]) == []
    assert server.calls == []
    short = tiles.tile_hash_reader(600, lambda want: [server.files[x.path][:-1] for x in want])
    with pytest.raises(FormatError, match=r"tile/0/000: expected 8192 bytes, got 8191"):
        merkle.prove_inclusion(3, 600, short)
    few = tiles.tile_hash_reader(600, lambda want: [])
    with pytest.raises(FormatError, match="asked for 3 tiles, got 0"):
        merkle.prove_inclusion(3, 600, few)
    outside = tiles.tile_hash_reader(10, server.fetch)
    with pytest.raises(FormatError, match="not a complete subtree"):
        outside([(0, 10)])


def test_tile_nodes_and_read_tile() -> None:
    assert Tile(1, 2, 3).nodes() == [(8, 512), (8, 513), (8, 514)]
    t = tree(600)
    assert tiles.read_tile(Tile(0, 2, 88), t.read) == b"".join(t.nodes[(0, i)] for i in range(512, 600))


def test_value_checks() -> None:
    for args, message in (
        ((64, 0), "level must be 0 to 63"),
        ((-1, 0), "level must be"),
        ((0, -1), "index must be non-negative"),
        ((0, 0, 0), "width must be 1 to 256"),
        ((0, 0, 257), "width must be 1 to 256"),
    ):
        with pytest.raises(FormatError, match=message):
            Tile(*args)
    with pytest.raises(FormatError, match="entry bundle: width"):
        EntryBundle(0, 0)
    with pytest.raises(FormatError, match="sizes must satisfy 0 <= 5 <= 4"):
        list(tiles.tiles_for_size(4, 5))
    assert Tile(0, 0, 255).is_partial
    assert not Tile(0, 0).is_partial


@pytest.mark.parametrize(
    "path",
    [
        "tile/0",
        "tiles/0/000",
        "tile/01/000",
        "tile/64/000",
        "tile/100/000",
        "tile/-1/000",
        "tile/0/1",
        "tile/0/0000",
        "tile/0/x000/001",
        "tile/0/x1/000",
        "tile/0/001/000",
        "tile/0/000/",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/000.p/",
        "tile/0/.p/5",
        "tile/0/x001/x002/x003/x004/x005/x006/x007/008",
        "tile/entries/000",
        "tile/0/\u0660\u0660\u0661",
    ],
)
def test_parse_tile_path_rejects(path: str) -> None:
    with pytest.raises(FormatError):
        tiles.parse_tile_path(path)


@pytest.mark.parametrize(
    "path", ["tile/0/000", "tile/entries", "tile/entries/x000/000", "tile/entries/000.p/256"]
)
def test_parse_entry_bundle_path_rejects(path: str) -> None:
    with pytest.raises(FormatError):
        tiles.parse_entry_bundle_path(path)


@given(st.integers(0, 63), st.integers(0, 10**20), st.integers(1, 256))
def test_path_roundtrip(level: int, index: int, width: int) -> None:
    tile = Tile(level, index, width)
    assert tiles.parse_tile_path(tile.path) == tile
    bundle = EntryBundle(index, width)
    assert tiles.parse_entry_bundle_path(bundle.path) == bundle


@given(st.text(alphabet="tile/entrisx0123456789.p-", max_size=40) | st.text(max_size=40))
def test_path_parsers_raise_only_format_error(text: str) -> None:
    for parse in (tiles.parse_tile_path, tiles.parse_entry_bundle_path):
        for candidate in (text, "tile/" + text, "tile/0/" + text, "tile/entries/" + text):
            with contextlib.suppress(FormatError):
                parse(candidate)


# --- entry bundles ----------------------------------------------------------------------------


def test_entry_bundle_format() -> None:
    """c2sp.org/tlog-tiles: big-endian uint16 length-prefixed entries."""
    assert tiles.format_entry_bundle([b"ab", b"", b"c"]) == b"\x00\x02ab\x00\x00\x00\x01c"
    assert tiles.parse_entry_bundle(b"\x00\x02ab\x00\x00\x00\x01c", 3) == (b"ab", b"", b"c")
    big = b"x" * tiles.MAX_ENTRY_BYTES
    assert tiles.parse_entry_bundle(tiles.format_entry_bundle([big])) == (big,)
    with pytest.raises(FormatError, match="entry 1 has 65536 bytes"):
        tiles.format_entry_bundle([b"", big + b"x"])
    with pytest.raises(FormatError, match="expected 1 to 256 entries, got 257"):
        tiles.format_entry_bundle([b""] * 257)
    with pytest.raises(FormatError, match="expected 1 to 256 entries, got 0"):
        tiles.format_entry_bundle([])
    for data, width, message in (
        (b"\x00", None, "truncated length at byte 0"),
        (b"\x00\x03ab", None, "entry 0 is truncated"),
        (b"\x00\x00" * 257, None, "more than 256 entries"),
        (b"\x00\x00" * 3, 2, "expected 2 entries, got 3"),
        (b"", None, "empty"),
    ):
        with pytest.raises(FormatError, match=message):
            tiles.parse_entry_bundle(data, width)


def test_entry_bundle_matches_level_0_tile() -> None:
    t = tree(600)
    bundle = tiles.format_entry_bundle(t.leaves[512:600])
    tile = Tile(0, 2, 88)
    hashes = tiles.parse_tile(tile, tiles.read_tile(tile, t.read))
    assert [merkle.leaf_hash(e) for e in tiles.parse_entry_bundle(bundle, 88)] == list(hashes)


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=256))
def test_entry_bundle_roundtrip(entries: list[bytes]) -> None:
    assert tiles.parse_entry_bundle(tiles.format_entry_bundle(entries), len(entries)) == tuple(entries)


@given(st.binary(max_size=600))
def test_parse_entry_bundle_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        tiles.parse_entry_bundle(data)
