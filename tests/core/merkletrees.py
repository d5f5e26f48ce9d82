"""In-memory Merkle logs for the core tests: stored node hashes built only through the append path.

Shared by ``tests/core/test_merkle.py`` and ``tests/core/test_tiles.py``.

Spec: protocol.md §2.7 (RFC 9162 Merkle tree).
"""

from __future__ import annotations

from collections.abc import Sequence

from vega.core import merkle
from vega.core.merkle import NodeId

__all__ = ["Tree", "leaves_for"]


class Tree:
    """An in-memory log built only through stored_nodes_for_append; counts reader calls."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.leaves: list[bytes] = []
        self.nodes: dict[NodeId, bytes] = {}
        self.calls: list[list[NodeId]] = []
        for data in leaves:
            self.append(data)

    def read(self, ids: Sequence[NodeId]) -> list[bytes]:
        self.calls.append(list(ids))
        return [self.nodes[i] for i in ids]

    def append(self, data: bytes) -> None:
        before = len(self.calls)
        for node, h in merkle.stored_nodes_for_append(len(self.leaves), merkle.leaf_hash(data), self.read):
            assert node not in self.nodes
            self.nodes[node] = h
        assert len(self.calls) - before <= 1
        self.leaves.append(data)


def leaves_for(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]
