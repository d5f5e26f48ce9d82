"""C2SP tlog-tiles arithmetic (height 8): tile paths, which tiles a tree has, proofs from tiles.

A tile at level ``L`` and index ``N`` holds up to 256 consecutive hashes of the
Merkle tree level ``8 * L``: hash ``i`` is the node ``(8 * L, N * 256 + i)`` in
``vega.core.merkle``'s numbering, the root of the complete subtree over
leaves ``[(N * 256 + i) << 8L, (N * 256 + i + 1) << 8L)``. A tile of width
``W < 256`` is *partial*: the rightmost tile of its level for some tree size.
The levels in between are recomputed by hashing, so tiles alone answer every
proof (:func:`tile_hash_reader`).

Paths (relative to the log's prefix)::

    tile/<L>/<N>[.p/<W>]        hashes, 32 bytes each
    tile/entries/<N>[.p/<W>]    entry bundle: each entry as a big-endian uint16 length and its bytes

``<N>`` is written in 3-digit groups, all but the last prefixed with ``x``:
1234067 is ``x001/x234/067``.

Example (the spec's): a tree of size 70,000 has 273 full level-0 tiles, a
level-0 tile of width 112, one full level-1 tile, a level-1 tile of width 17
and a level-2 tile of width 1.

Spec: c2sp.org/tlog-tiles; protocol.md §2.7 (hashing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from vega.core.merkle import HASH_SIZE, HashReader, NodeId, node_hash
from vega.errors import FormatError

__all__ = [
    "MAX_ENTRY_BYTES",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "EntryBundle",
    "Tile",
    "TileFetcher",
    "entry_bundles_for_size",
    "format_entry_bundle",
    "parse_entry_bundle",
    "parse_entry_bundle_path",
    "parse_tile",
    "parse_tile_path",
    "read_tile",
    "tile_for_node",
    "tile_hash_reader",
    "tiles_for_size",
]

TILE_HEIGHT = 8
"""Tree levels per tile."""
TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256)."""
MAX_ENTRY_BYTES = 0xFFFF
"""Largest entry an entry bundle can hold (uint16 length prefix)."""
_MAX_LEVEL = 63
_GROUP = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_LEVEL = re.compile(r"0|[1-9][0-9]?")
_MAX_INDEX_GROUPS = 7


@dataclass(frozen=True, slots=True)
class Tile:
    """A tile: level, index within the level, and width in hashes (256 when full)."""

    level: int
    """Tile level ``L`` (0 holds leaf hashes), 0 to 63."""
    index: int
    """Tile index ``N`` within the level."""
    width: int = TILE_WIDTH
    """Number of hashes, 1 to 256."""

    def __post_init__(self) -> None:
        _check_coordinates("tile", self.level, self.index, self.width)

    @property
    def is_partial(self) -> bool:
        """Whether the tile holds fewer than 256 hashes."""
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]``."""
        return f"tile/{self.level}/{_encode_index(self.index)}{_partial_suffix(self.width)}"

    def nodes(self) -> list[NodeId]:
        """Return the tree nodes whose hashes the tile holds, in order."""
        first = self.index * TILE_WIDTH
        return [(self.level * TILE_HEIGHT, first + i) for i in range(self.width)]


@dataclass(frozen=True, slots=True)
class EntryBundle:
    """An entry bundle: the entries of the level-0 tile with the same index and width."""

    index: int
    """Bundle index ``N``: entries ``[N * 256, N * 256 + width)``."""
    width: int = TILE_WIDTH
    """Number of entries, 1 to 256."""

    def __post_init__(self) -> None:
        _check_coordinates("entry bundle", 0, self.index, self.width)

    @property
    def path(self) -> str:
        """``tile/entries/<N>[.p/<W>]``."""
        return f"tile/entries/{_encode_index(self.index)}{_partial_suffix(self.width)}"


TileFetcher = Callable[[Sequence[Tile]], Sequence[bytes]]
"""Returns the bytes of each tile, in the same order (one batch per call); may raise."""


def parse_tile_path(path: str) -> Tile:
    """Parse ``tile/<L>/<N>[.p/<W>]`` (canonical form only).

    Raises:
        FormatError: not a canonical tile path.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile" or not _LEVEL.fullmatch(parts[1]):
        raise FormatError(f"not a tile path: {path[:120]!r}")
    index, width = _parse_index_and_width(parts[2:], path)
    level = int(parts[1])
    if level > _MAX_LEVEL:
        raise FormatError(f"tile path: level {level} is above {_MAX_LEVEL}")
    return Tile(level, index, width)


def parse_entry_bundle_path(path: str) -> EntryBundle:
    """Parse ``tile/entries/<N>[.p/<W>]`` (canonical form only).

    Raises:
        FormatError: not a canonical entry bundle path.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[:2] != ["tile", "entries"]:
        raise FormatError(f"not an entry bundle path: {path[:120]!r}")
    return EntryBundle(*_parse_index_and_width(parts[2:], path))


def tile_for_node(node: NodeId, size: int) -> tuple[Tile, int, int]:
    """Locate a complete-subtree node of the tree of ``size`` leaves in that tree's tiles.

    Returns:
        ``(tile, start, count)``: the tile (partial if that is what the tree
        of ``size`` has) and the ``count`` consecutive hashes from position
        ``start`` whose subtree hash is the node's.

    Raises:
        FormatError: the node is not a complete subtree of the tree of ``size``.
    """
    level, index = node
    if level < 0 or index < 0 or level > _MAX_LEVEL or (index + 1) << level > size:
        raise FormatError(f"node {node} is not a complete subtree of the tree of size {size}")
    tile_level, sub = divmod(level, TILE_HEIGHT)
    first = index << sub  # position of the node's first hash in the level 8 * tile_level
    tile_index = first >> TILE_HEIGHT
    width = min(TILE_WIDTH, (size >> (tile_level * TILE_HEIGHT)) - tile_index * TILE_WIDTH)
    return Tile(tile_level, tile_index, width), first - tile_index * TILE_WIDTH, 1 << sub


def tiles_for_size(size: int, since: int = 0) -> Iterator[Tile]:
    """Yield the tiles of the tree of ``size`` that the tree of ``since`` does not have.

    With ``since == 0``: every tile of the tree, full and partial, level by level.
    A log publishing a new checkpoint serves exactly ``tiles_for_size(new, old)``.

    Raises:
        FormatError: not ``0 <= since <= size``.
    """
    if not 0 <= since <= size:
        raise FormatError(f"tiles: sizes must satisfy 0 <= {since} <= {size}")
    level = 0
    while size >> (level * TILE_HEIGHT):
        yield from _new_tiles(size >> (level * TILE_HEIGHT), since >> (level * TILE_HEIGHT), level)
        level += 1


def entry_bundles_for_size(size: int, since: int = 0) -> Iterator[EntryBundle]:
    """Yield the entry bundles of the tree of ``size`` that the tree of ``since`` does not have.

    Raises:
        FormatError: not ``0 <= since <= size``.
    """
    for tile in tiles_for_size(size, since):
        if tile.level:
            return
        yield EntryBundle(tile.index, tile.width)


def parse_tile(tile: Tile, data: bytes) -> tuple[bytes, ...]:
    """Split a tile's bytes into its hashes.

    Raises:
        FormatError: the data is not ``32 * width`` bytes.
    """
    if len(data) != tile.width * HASH_SIZE:
        raise FormatError(f"{tile.path}: expected {tile.width * HASH_SIZE} bytes, got {len(data)}")
    return tuple(data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE))


def read_tile(tile: Tile, read: HashReader) -> bytes:
    """Build a tile's bytes from stored node hashes (one ``read`` call)."""
    return b"".join(read(tile.nodes()))


def tile_hash_reader(size: int, fetch: TileFetcher) -> HashReader:
    """Make a ``HashReader`` for the tree of ``size`` leaves that reads tiles only.

    Each call maps the requested nodes to the tree's tiles, fetches every tile
    it needs in one ``fetch`` call, and hashes within tiles as needed. The
    hashes are as the tiles say: verify what you compute from them (a proof or
    a root) against a signed checkpoint.

    Raises (from the reader):
        FormatError: a node outside the tree, or a tile of the wrong length.
    """

    def read(nodes: Sequence[NodeId]) -> list[bytes]:
        if not nodes:
            return []
        where = [tile_for_node(node, size) for node in nodes]
        tiles = list(dict.fromkeys(tile for tile, _, _ in where))
        fetched = fetch(tiles)
        if len(fetched) != len(tiles):
            raise FormatError(f"tile fetcher: asked for {len(tiles)} tiles, got {len(fetched)}")
        hashes = {tile: parse_tile(tile, data) for tile, data in zip(tiles, fetched, strict=True)}
        return [_subtree_hash(hashes[tile][start : start + count]) for tile, start, count in where]

    return read


def format_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Encode entries as a bundle: each as a big-endian uint16 length then its bytes.

    Raises:
        FormatError: more than 256 entries, or an entry over 65,535 bytes.
    """
    if not entries or len(entries) > TILE_WIDTH:
        raise FormatError(f"entry bundle: expected 1 to {TILE_WIDTH} entries, got {len(entries)}")
    out = bytearray()
    for i, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_BYTES:
            raise FormatError(f"entry bundle: entry {i} has {len(entry)} bytes, over {MAX_ENTRY_BYTES}")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def parse_entry_bundle(data: bytes, width: int | None = None) -> tuple[bytes, ...]:
    """Decode an entry bundle; with ``width``, require exactly that many entries.

    Raises:
        FormatError: truncated, more than 256 entries, or not ``width`` entries.
    """
    entries: list[bytes] = []
    pos = 0
    while pos < len(data):
        if len(entries) == TILE_WIDTH:
            raise FormatError(f"entry bundle: more than {TILE_WIDTH} entries")
        if pos + 2 > len(data):
            raise FormatError(f"entry bundle: truncated length at byte {pos}")
        n = int.from_bytes(data[pos : pos + 2], "big")
        if pos + 2 + n > len(data):
            raise FormatError(f"entry bundle: entry {len(entries)} is truncated")
        entries.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    if width is not None and len(entries) != width:
        raise FormatError(f"entry bundle: expected {width} entries, got {len(entries)}")
    if not entries:
        raise FormatError("entry bundle: empty")
    return tuple(entries)


def _new_tiles(hashes: int, old_hashes: int, level: int) -> Iterator[Tile]:
    """Tiles at one level with ``hashes`` hashes that one with ``old_hashes`` lacks."""
    full, partial = divmod(hashes, TILE_WIDTH)
    old_full, old_partial = divmod(old_hashes, TILE_WIDTH)
    for n in range(old_full, full):
        yield Tile(level, n)
    if partial and (full, partial) != (old_full, old_partial):
        yield Tile(level, full, partial)


def _subtree_hash(hashes: Sequence[bytes]) -> bytes:
    """Hash a power-of-two run of hashes up to its subtree root."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def _encode_index(n: int) -> str:
    groups = [n % 1000]
    n //= 1000
    while n:
        groups.append(n % 1000)
        n //= 1000
    return "/".join([*(f"x{g:03d}" for g in reversed(groups[1:])), f"{groups[0]:03d}"])


def _partial_suffix(width: int) -> str:
    return "" if width == TILE_WIDTH else f".p/{width}"


def _parse_index_and_width(parts: list[str], path: str) -> tuple[int, int]:
    width = TILE_WIDTH
    if len(parts) >= 2 and parts[-2].endswith(".p"):
        if not _WIDTH.fullmatch(parts[-1]) or int(parts[-1]) >= TILE_WIDTH:
            raise FormatError(f"tile path: partial width must be 1 to 255, in {path[:120]!r}")
        width = int(parts[-1])
        parts = [*parts[:-2], parts[-2][:-2]]
    if len(parts) > _MAX_INDEX_GROUPS or not all(_GROUP.fullmatch(p) for p in parts[:-1]):
        raise FormatError(f"tile path: malformed index in {path[:120]!r}")
    if not _LAST.fullmatch(parts[-1]):
        raise FormatError(f"tile path: malformed index in {path[:120]!r}")
    index = int("".join(p.removeprefix("x") for p in parts))
    if _encode_index(index) != "/".join(parts):
        raise FormatError(f"tile path: index not in canonical form in {path[:120]!r}")
    return index, width


def _check_coordinates(what: str, level: int, index: int, width: int) -> None:
    if not 0 <= level <= _MAX_LEVEL:
        raise FormatError(f"{what}: level must be 0 to {_MAX_LEVEL}, got {level}")
    if index < 0:
        raise FormatError(f"{what}: index must be non-negative, got {index}")
    if not 1 <= width <= TILE_WIDTH:
        raise FormatError(f"{what}: width must be 1 to {TILE_WIDTH}, got {width}")
