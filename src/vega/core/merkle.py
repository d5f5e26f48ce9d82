"""RFC 9162 Merkle tree hashing, inclusion and consistency proofs: prove and verify.

The tree is stored as *complete subtree* hashes: a node ``(level, index)`` is the
root of the subtree over the leaves ``[index << level, (index + 1) << level)``
(sumdb's stored hash layout). Any root or proof of any size is computed from
O(log n) such nodes, read through a caller-supplied :data:`HashReader` in **one**
batched call (never with an empty list), so a database-backed reader issues one
query and a tile-backed reader (``vega.core.tiles``) fetches each tile once.

Hashes are raw 32-byte values::

    leaf hash   SHA-256(0x00 || data)
    node hash   SHA-256(0x01 || left || right)
    empty root  SHA-256("")

Proof ordering is RFC 9162's: inclusion proofs are ``PATH(m, D[n])`` (deepest
sibling first), consistency proofs are ``SUBPROOF(m, D[n], true)``; a consistency
proof from size 0, or between equal sizes, is empty (RFC 9162 §2.1.4).

Spec: shared/spec/protocol.md §2.7, §5.3, §5.4; RFC 9162 §2.1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from vega.errors import FormatError, VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "HashReader",
    "NodeId",
    "leaf_hash",
    "node_hash",
    "prove_consistency",
    "prove_inclusion",
    "root_from_leaf_hashes",
    "stored_nodes_for_append",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1)."""

NodeId = tuple[int, int]
"""``(level, index)``: the complete subtree over leaves ``[index << level, (index + 1) << level)``."""

HashReader = Callable[[Sequence[NodeId]], Sequence[bytes]]
"""Returns the stored hashes of the given nodes, in the same order; may raise."""

_Range = tuple[int, int]


def leaf_hash(data: bytes) -> bytes:
    """Hash a leaf: SHA-256(0x00 || data) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an interior node: SHA-256(0x01 || left || right) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def stored_nodes_for_append(index: int, leaf: bytes, read: HashReader) -> list[tuple[NodeId, bytes]]:
    """Compute the node hashes that become complete when a leaf is appended.

    Args:
        index: position of the new leaf (the tree size before the append).
        leaf: the new leaf's hash (see :func:`leaf_hash`), 32 bytes.
        read: reader of earlier stored nodes; called at most once, for the
            left siblings on the new leaf's path (O(log n) nodes).

    Returns:
        ``[((0, index), leaf), ((1, index >> 1), ...), ...]``: the leaf, then
        each parent completed by it, lowest first.

    Raises:
        FormatError: a negative index, a leaf that is not 32 bytes, or a reader
            answer of the wrong shape. Whatever ``read`` raises passes through.
    """
    if index < 0:
        raise FormatError(f"append: index must be non-negative, got {index}")
    _check_hash("append: leaf hash", leaf)
    siblings: list[NodeId] = []
    level = 0
    while (index >> level) & 1:
        siblings.append((level, (index >> level) - 1))
        level += 1
    hashes = _read(read, siblings)
    out: list[tuple[NodeId, bytes]] = [((0, index), leaf)]
    h = leaf
    for (lvl, sib), left in zip(siblings, hashes, strict=True):
        h = node_hash(left, h)
        out.append(((lvl + 1, (sib + 1) >> 1), h))
    return out


def tree_root(size: int, read: HashReader) -> bytes:
    """Compute MTH(D[size]) from at most log2(size) + 1 stored nodes (one ``read`` call).

    Raises:
        FormatError: a negative size, or a reader answer of the wrong shape.
    """
    if size < 0:
        raise FormatError(f"tree root: size must be non-negative, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return _hashes_of(read, [(0, size)])[0]


def prove_inclusion(index: int, size: int, read: HashReader) -> tuple[bytes, ...]:
    """Compute the RFC 9162 inclusion proof ``PATH(index, D[size])``, deepest first.

    Raises:
        FormatError: ``index`` is not in ``[0, size)``, or a reader answer of the
            wrong shape.
    """
    if not 0 <= index < size:
        raise FormatError(f"inclusion proof: index {index} is not below the tree size {size}")
    # RFC 9162 §2.1.3.1: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k,
    # PATH(m - k, D[k:n]) : MTH(D[0:k]) otherwise; collected root-most first.
    ranges: list[_Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return tuple(_hashes_of(read, ranges))


def prove_consistency(size1: int, size2: int, read: HashReader) -> tuple[bytes, ...]:
    """Compute the RFC 9162 consistency proof ``SUBPROOF(size1, D[size2], true)``.

    The proof is empty when ``size1 == 0`` or ``size1 == size2`` (RFC 9162 §2.1.4).

    Raises:
        FormatError: not ``0 <= size1 <= size2``, or a reader answer of the wrong shape.
    """
    if not 0 <= size1 <= size2:
        raise FormatError(f"consistency proof: sizes must satisfy 0 <= {size1} <= {size2}")
    if size1 in (0, size2):
        return ()
    # RFC 9162 §2.1.4.1: SUBPROOF(m, D[lo:hi], b), unrolled; collected root-most first.
    ranges: list[_Range] = []
    lo, hi, m, complete = 0, size2, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return tuple(_hashes_of(read, ranges))


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is entry ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 §2.1.3.2, with the proof length checked first (protocol.md §2.7,
    trillian's decomposition) so a wrong length gets a precise message.

    Raises:
        VerificationError: on any mismatch, including malformed inputs.
    """
    what = f"inclusion proof for entry {index}"
    _verify_hash(what, "leaf hash", leaf_hash)
    _verify_hash(what, "root", root)
    for i, p in enumerate(proof):
        _verify_hash(what, f"proof hash {i}", p)
    # RFC 9162 §2.1.3.2, step 1: the index must be inside the tree.
    if not 0 <= index < size:
        raise VerificationError(f"{what}: index is not below the tree size {size}")
    inner = (index ^ (size - 1)).bit_length()
    want = inner + (index >> inner).bit_count()
    if len(proof) != want:
        raise VerificationError(f"{what}: expected {want} hashes for size {size}, got {len(proof)}")
    # Step 2.
    fn, sn = index, size - 1
    # Step 3.
    r = leaf_hash
    # Step 4. (4a, "sn is 0 before the path ends", and step 5's "sn is 0" hold
    # exactly when the length is inner + border, checked above.)
    for p in proof:
        # Step 4b.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        # Step 4c.
        fn >>= 1
        sn >>= 1
    # Step 5.
    if r != root:
        raise VerificationError(
            f"{what}: computed root {r.hex()} does not match the expected root {root.hex()} for size {size}"
        )


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree (``size2``, ``root2``) extends the tree (``size1``, ``root1``).

    RFC 9162 §2.1.4.2. Conventions (RFC 9162 §2.1.4): for ``size1 == size2``
    the proof must be empty and the roots equal; for ``size1 == 0`` the proof
    must be empty and ``root1`` must be the empty-tree root.

    Raises:
        VerificationError: on any mismatch, including malformed inputs.
    """
    what = f"consistency proof from size {size1} to {size2}"
    _verify_hash(what, "first root", root1)
    _verify_hash(what, "second root", root2)
    for i, p in enumerate(proof):
        _verify_hash(what, f"proof hash {i}", p)
    if not 0 <= size1 <= size2:
        raise VerificationError(f"{what}: sizes must satisfy 0 <= first <= second")
    if size1 in (0, size2):
        if proof:
            raise VerificationError(f"{what}: expected 0 hashes, got {len(proof)}")
        want_root1 = EMPTY_ROOT if size1 == 0 else root2
        if root1 != want_root1:
            raise VerificationError(f"{what}: first root {root1.hex()} is not {want_root1.hex()}")
        return
    # Expected length (trillian): the inclusion decomposition of entry size1 - 1
    # in size2, minus the levels below the first tree's rightmost complete subtree,
    # plus that subtree's hash unless size1 is itself a power of two.
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> inner).bit_count()
    shift = (size1 & -size1).bit_length() - 1
    power_of_two = size1 == 1 << shift
    want = inner - shift + border + (0 if power_of_two else 1)
    # RFC 9162 §2.1.4.2, step 1: an empty proof fails (the length check covers it).
    if len(proof) != want:
        raise VerificationError(f"{what}: expected {want} hashes, got {len(proof)}")
    # Step 2.
    path = [root1, *proof] if power_of_two else list(proof)
    # Step 3.
    fn, sn = size1 - 1, size2 - 1
    # Step 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6. (6a, "sn is 0 before the path ends", and step 7's "sn is 0" hold
    # exactly when the length is as computed above.)
    for c in path[1:]:
        # Step 6b.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        # Step 6c.
        fn >>= 1
        sn >>= 1
    # Step 7.
    if fr != root1:
        raise VerificationError(f"{what}: computed first root {fr.hex()} does not match {root1.hex()}")
    if sr != root2:
        raise VerificationError(f"{what}: computed second root {sr.hex()} does not match {root2.hex()}")


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Compute MTH over leaf hashes held in memory (for tests and small trees).

    Raises:
        FormatError: a hash that is not 32 bytes.
    """
    for i, h in enumerate(hashes):
        _check_hash(f"leaf hash {i}", h)
    levels: list[list[bytes]] = [list(hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])

    def read(ids: Sequence[NodeId]) -> list[bytes]:
        return [levels[level][index] for level, index in ids]

    return tree_root(len(hashes), read)


def _split(n: int) -> int:
    """Return the largest power of two strictly less than ``n`` (n > 1; RFC 9162 §2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtrees(lo: int, hi: int) -> list[NodeId]:
    """Return the complete subtrees of ``[lo, hi)``, left to right, largest first.

    Every range produced by the RFC 9162 recursion starts at a multiple of the
    smallest power of two not below its length, so these nodes are aligned and
    MTH of the range is their right fold.
    """
    out: list[NodeId] = []
    for level in range((hi - lo).bit_length() - 1, -1, -1):
        if (hi - lo) >> level & 1:
            out.append((level, lo >> level))
            lo += 1 << level
    return out


def _hashes_of(read: HashReader, ranges: Sequence[_Range]) -> list[bytes]:
    """Return MTH of each range, reading every needed node in one call."""
    parts = [_subtrees(lo, hi) for lo, hi in ranges]
    ids = list(dict.fromkeys(node for nodes in parts for node in nodes))
    got = dict(zip(ids, _read(read, ids), strict=True))
    out = []
    for nodes in parts:
        h = got[nodes[-1]]
        for node in reversed(nodes[:-1]):
            h = node_hash(got[node], h)
        out.append(h)
    return out


def _read(read: HashReader, ids: Sequence[NodeId]) -> list[bytes]:
    """Call ``read`` once (not at all for no nodes) and check the answer's shape."""
    if not ids:
        return []
    hashes = list(read(ids))
    if len(hashes) != len(ids):
        raise FormatError(f"hash reader: asked for {len(ids)} hashes, got {len(hashes)}")
    for node, h in zip(ids, hashes, strict=True):
        _check_hash(f"hash reader: node {node}", h)
    return hashes


def _check_hash(what: str, h: object) -> None:
    if not isinstance(h, bytes) or len(h) != HASH_SIZE:
        raise FormatError(f"{what}: expected {HASH_SIZE} bytes, got {_describe(h)}")


def _verify_hash(what: str, name: str, h: object) -> None:
    if not isinstance(h, bytes) or len(h) != HASH_SIZE:
        raise VerificationError(f"{what}: {name} must be {HASH_SIZE} bytes, got {_describe(h)}")


def _describe(h: object) -> str:
    return f"{len(h)} bytes" if isinstance(h, bytes) else type(h).__name__
