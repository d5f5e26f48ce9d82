"""vega.core.merkle against the literal RFC 9162 reference and the generated vectors (protocol.md §2.7)."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from functools import cache, partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tools import make_tlog_vectors

from tests import reference_merkle as ref
from tests.core.merkletrees import Tree, leaves_for
from vega.core import merkle
from vega.core.merkle import NodeId
from vega.errors import FormatError, VerificationError


def flip(proof: Sequence[bytes], bit: int) -> list[bytes]:
    out = list(proof)
    i, b = divmod(bit, 8 * merkle.HASH_SIZE)
    h = bytearray(out[i])
    h[b // 8] ^= 1 << (b % 8)
    out[i] = bytes(h)
    return out


def test_hash_constants() -> None:
    """RFC 9162 §2.1.1 / protocol.md §2.7: the empty root and the domain-separated hashes."""
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert merkle.node_hash(b"\x00" * 32, b"\x01" * 32) == ref._sha256(b"\x01" + b"\x00" * 32 + b"\x01" * 32)


def test_empty_tree_root_reads_nothing() -> None:
    t = Tree()
    assert merkle.tree_root(0, t.read) == merkle.EMPTY_ROOT
    assert merkle.root_from_leaf_hashes([]) == merkle.EMPTY_ROOT
    assert t.calls == []


def test_known_roots_from_rfc6962_test_data() -> None:
    """The eight-leaf tree of the RFC 6962 reference tests (certificate-transparency-go testdata)."""
    data = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    want = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    t = Tree(data)
    for n in range(1, 9):
        assert merkle.tree_root(n, t.read).hex() == want[n - 1]
        assert ref.mth(data[:n]).hex() == want[n - 1]


@pytest.mark.parametrize("n", range(1, 70))
def test_everything_matches_reference_exhaustively(n: int) -> None:
    leaves = leaves_for(n)
    t = Tree(leaves)
    hashes = [merkle.leaf_hash(x) for x in leaves]
    root = ref.mth(leaves)
    assert merkle.tree_root(n, t.read) == root
    assert merkle.root_from_leaf_hashes(hashes) == root
    for i in range(n):
        proof = merkle.prove_inclusion(i, n, t.read)
        assert list(proof) == ref.path(i, leaves)
        merkle.verify_inclusion(hashes[i], i, n, proof, root)
    for m in range(n + 1):
        proof = merkle.prove_consistency(m, n, t.read)
        assert list(proof) == ref.proof(m, leaves)
        merkle.verify_consistency(m, n, proof, ref.mth(leaves[:m]), root)


@settings(max_examples=60)
@given(data=st.data(), n=st.integers(1, 1000))
def test_fast_equals_reference_up_to_1000(data: st.DataObject, n: int) -> None:
    leaves = leaves_for(n)
    t = Tree(leaves)
    root = ref.mth(leaves)
    assert merkle.tree_root(n, t.read) == root
    i = data.draw(st.integers(0, n - 1))
    t.calls.clear()
    proof = merkle.prove_inclusion(i, n, t.read)
    assert len(t.calls) <= 1
    assert list(proof) == ref.path(i, leaves)
    merkle.verify_inclusion(merkle.leaf_hash(leaves[i]), i, n, proof, root)
    m = data.draw(st.integers(0, n))
    t.calls.clear()
    cproof = merkle.prove_consistency(m, n, t.read)
    assert len(t.calls) <= 1
    assert list(cproof) == ref.proof(m, leaves)
    merkle.verify_consistency(m, n, cproof, ref.mth(leaves[:m]), root)


def test_fast_equals_reference_for_every_size_up_to_1000() -> None:
    """For each size 1..1000: the root, one inclusion proof and one consistency proof, vs the reference."""
    leaves = leaves_for(1000)
    t = Tree(leaves)
    for n in range(1, 1001):
        prefix = leaves[:n]
        assert merkle.tree_root(n, t.read) == ref.mth(prefix), n
        pick = random.Random(n)
        i = pick.randrange(n)
        assert list(merkle.prove_inclusion(i, n, t.read)) == ref.path(i, prefix), (n, i)
        m = pick.randrange(n + 1)
        assert list(merkle.prove_consistency(m, n, t.read)) == ref.proof(m, prefix), (m, n)


def test_one_batched_read_and_never_empty() -> None:
    t = Tree(leaves_for(1000))
    for call in (
        lambda: merkle.tree_root(999, t.read),
        lambda: merkle.prove_inclusion(500, 999, t.read),
        lambda: merkle.prove_consistency(300, 999, t.read),
    ):
        t.calls.clear()
        call()
        assert len(t.calls) == 1
        assert 0 < len(t.calls[0]) <= 2 * 10 + 2
    for call in (
        lambda: merkle.tree_root(512, t.read),
        lambda: merkle.prove_inclusion(0, 1, t.read),
        lambda: merkle.prove_consistency(0, 9, t.read),
        lambda: merkle.prove_consistency(9, 9, t.read),
    ):
        t.calls.clear()
        call()
        assert len(t.calls) <= 1
        assert all(t.calls)


def test_append_reads_only_left_siblings() -> None:
    t = Tree(leaves_for(7))
    t.calls.clear()
    h = merkle.leaf_hash(b"x")
    out = merkle.stored_nodes_for_append(7, h, t.read)
    assert t.calls == [[(0, 6), (1, 2), (2, 0)]]
    assert [node for node, _ in out] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert out[-1][1] == ref.mth([*leaves_for(7), b"x"])
    t.calls.clear()
    assert merkle.stored_nodes_for_append(8, h, t.read) == [((0, 8), h)]
    assert t.calls == []


@given(data=st.data(), n=st.integers(1, 64))
def test_any_flipped_bit_fails(data: st.DataObject, n: int) -> None:
    leaves = leaves_for(n)
    t = Tree(leaves)
    root = ref.mth(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = merkle.prove_inclusion(i, n, t.read)
    if proof:
        bad = flip(proof, data.draw(st.integers(0, 8 * 32 * len(proof) - 1)))
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(merkle.leaf_hash(leaves[i]), i, n, bad, root)
    m = data.draw(st.integers(1, n))
    cproof = merkle.prove_consistency(m, n, t.read)
    if cproof:
        bad = flip(cproof, data.draw(st.integers(0, 8 * 32 * len(cproof) - 1)))
        with pytest.raises(VerificationError):
            merkle.verify_consistency(m, n, bad, ref.mth(leaves[:m]), root)


def test_inclusion_error_messages() -> None:
    """house-style.md §4.6: the message names entry, expected and got."""
    t = Tree(leaves_for(1234 % 64))
    leaves = leaves_for(1234)
    hashes = [merkle.leaf_hash(x) for x in leaves]
    root = merkle.root_from_leaf_hashes(hashes)
    big = Tree(leaves)
    proof = merkle.prove_inclusion(41, 1234, big.read)
    assert len(proof) == 11
    with pytest.raises(
        VerificationError, match=r"^inclusion proof for entry 41: expected 11 hashes for size 1234, got 10$"
    ):
        merkle.verify_inclusion(hashes[41], 41, 1234, proof[:10], root)
    with pytest.raises(VerificationError, match="does not match the expected root"):
        merkle.verify_inclusion(hashes[42], 41, 1234, proof, root)
    with pytest.raises(VerificationError, match="index is not below the tree size 1234"):
        merkle.verify_inclusion(hashes[41], 1234, 1234, proof, root)
    with pytest.raises(VerificationError, match="index is not below"):
        merkle.verify_inclusion(hashes[41], -1, 1234, proof, root)
    with pytest.raises(VerificationError, match="leaf hash must be 32 bytes, got 31 bytes"):
        merkle.verify_inclusion(hashes[41][:31], 41, 1234, proof, root)
    with pytest.raises(VerificationError, match="root must be 32 bytes, got str"):
        merkle.verify_inclusion(hashes[41], 41, 1234, proof, root.hex())  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="proof hash 3 must be 32 bytes, got 33 bytes"):
        merkle.verify_inclusion(hashes[41], 41, 1234, [*proof[:3], proof[3] + b"x", *proof[4:]], root)
    assert t.leaves


def test_inclusion_proof_longer_than_the_tree_needs_is_refused() -> None:
    """issue 14 (mutation audit): extra hashes after the path must not let a forged root through.

    Entry 0 of a one-entry tree needs no hash. With one extra hash ``x`` the verification loop
    would compute ``node(x, leaf)``; a server that publishes exactly that as its root must still
    be refused (a length check loosened to "at least" would accept it).
    """
    leaf = merkle.leaf_hash(b"the only entry")
    extra = hashlib.sha256(b"attacker").digest()
    forged_root = merkle.node_hash(extra, leaf)
    merkle.verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(VerificationError, match=r"expected 0 hashes for size 1, got 1$"):
        merkle.verify_inclusion(leaf, 0, 1, [extra], forged_root)
    # The same in a bigger tree: a valid path plus one extra hash, folded into a forged root.
    leaves = leaves_for(6)
    hashes = [merkle.leaf_hash(x) for x in leaves]
    proof = merkle.prove_inclusion(5, 6, Tree(leaves).read)
    root = merkle.root_from_leaf_hashes(hashes)
    merkle.verify_inclusion(hashes[5], 5, 6, proof, root)
    with pytest.raises(VerificationError, match=r"expected 2 hashes for size 6, got 3$"):
        merkle.verify_inclusion(hashes[5], 5, 6, [*proof, extra], merkle.node_hash(extra, root))


def test_consistency_conventions_and_errors() -> None:
    leaves = leaves_for(10)
    t = Tree(leaves)
    r = [ref.mth(leaves[:m]) for m in range(11)]
    merkle.verify_consistency(0, 10, [], merkle.EMPTY_ROOT, r[10])
    merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    merkle.verify_consistency(7, 7, [], r[7], r[7])
    with pytest.raises(VerificationError, match=r"from size 0 to 10: first root .* is not e3b0"):
        merkle.verify_consistency(0, 10, [], r[3], r[10])
    with pytest.raises(VerificationError, match="first root"):
        merkle.verify_consistency(7, 7, [], r[7], r[8])
    with pytest.raises(VerificationError, match="expected 0 hashes, got 1"):
        merkle.verify_consistency(7, 7, [r[1]], r[7], r[7])
    with pytest.raises(VerificationError, match="expected 0 hashes, got 1"):
        merkle.verify_consistency(0, 7, [r[1]], merkle.EMPTY_ROOT, r[7])
    with pytest.raises(VerificationError, match="sizes must satisfy"):
        merkle.verify_consistency(8, 7, [], r[8], r[7])
    with pytest.raises(VerificationError, match="sizes must satisfy"):
        merkle.verify_consistency(-1, 7, [], r[8], r[7])
    proof = merkle.prove_consistency(3, 10, t.read)
    assert len(proof) == 5
    with pytest.raises(
        VerificationError, match=r"^consistency proof from size 3 to 10: expected 5 hashes, got 0$"
    ):
        merkle.verify_consistency(3, 10, [], r[3], r[10])
    with pytest.raises(VerificationError, match="computed first root"):
        merkle.verify_consistency(3, 10, proof, r[4], r[10])
    with pytest.raises(VerificationError, match="computed second root"):
        merkle.verify_consistency(3, 10, proof, r[3], r[9])
    with pytest.raises(VerificationError, match="first root must be 32 bytes"):
        merkle.verify_consistency(3, 10, proof, b"", r[10])
    with pytest.raises(VerificationError, match="second root must be 32 bytes"):
        merkle.verify_consistency(3, 10, proof, r[3], b"")
    with pytest.raises(VerificationError, match="proof hash 0 must be 32 bytes"):
        merkle.verify_consistency(3, 10, [b"", *proof[1:]], r[3], r[10])
    # size1 a power of two: root1 is the implicit first element
    proof4 = merkle.prove_consistency(4, 10, t.read)
    merkle.verify_consistency(4, 10, proof4, r[4], r[10])
    with pytest.raises(VerificationError, match="computed second root"):
        merkle.verify_consistency(4, 10, proof4, r[5], r[10])


def test_prove_rejects_bad_arguments() -> None:
    t = Tree(leaves_for(4))
    with pytest.raises(FormatError, match="index 4 is not below the tree size 4"):
        merkle.prove_inclusion(4, 4, t.read)
    with pytest.raises(FormatError, match="index -1"):
        merkle.prove_inclusion(-1, 4, t.read)
    with pytest.raises(FormatError, match=r"sizes must satisfy 0 <= 5 <= 4"):
        merkle.prove_consistency(5, 4, t.read)
    with pytest.raises(FormatError, match="sizes must satisfy"):
        merkle.prove_consistency(-1, 4, t.read)
    with pytest.raises(FormatError, match="size must be non-negative"):
        merkle.tree_root(-1, t.read)
    with pytest.raises(FormatError, match="index must be non-negative"):
        merkle.stored_nodes_for_append(-1, merkle.EMPTY_ROOT, t.read)
    with pytest.raises(FormatError, match="append: leaf hash: expected 32 bytes, got 3 bytes"):
        merkle.stored_nodes_for_append(4, b"abc", t.read)
    with pytest.raises(FormatError, match="leaf hash 1: expected 32 bytes, got str"):
        merkle.root_from_leaf_hashes([merkle.EMPTY_ROOT, "x"])  # type: ignore[list-item]


def test_bad_reader_answers_are_format_errors() -> None:
    with pytest.raises(FormatError, match="asked for 2 hashes, got 1"):
        merkle.tree_root(3, lambda ids: [merkle.EMPTY_ROOT])
    with pytest.raises(FormatError, match=r"node \(0, 2\): expected 32 bytes, got 1 bytes"):
        merkle.tree_root(3, lambda ids: [merkle.EMPTY_ROOT, b"x"])

    def failing(ids: Sequence[NodeId]) -> Sequence[bytes]:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        merkle.prove_inclusion(0, 2, failing)


# --- generated vectors (tests/vectors/tlog, made by tools/make_tlog_vectors.py) ----------------

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "tlog"


class Vectors:
    """One vector file: leaf hashes, roots, and the valid proofs keyed by (a, b)."""

    def __init__(self, name: str) -> None:
        raw = json.loads((VECTORS / name).read_text())
        self.leaf_hashes = [bytes.fromhex(h) for h in raw["leaf_hashes"]]
        self.roots = [bytes.fromhex(h) for h in raw["roots"]]
        table = [bytes.fromhex(h) for h in raw["hashes"]]
        self.proofs: dict[tuple[int, int], list[bytes]] = {
            (a, b): [table[j] for j in refs] for a, b, refs in raw["cases"]
        }


@cache
def vectors(name: str) -> Vectors:
    return Vectors(name)


def vector_leaves() -> list[bytes]:
    return [f"vega tlog vector leaf {i}".encode() for i in range(130)]


def test_vector_files_are_complete_and_match_the_data() -> None:
    inc, con = vectors("inclusion.json"), vectors("consistency.json")
    assert set(inc.proofs) == {(n, i) for n in range(1, 131) for i in range(n)}
    assert set(con.proofs) == {(m, n) for n in range(1, 131) for m in range(n + 1)}
    leaves = vector_leaves()
    assert inc.leaf_hashes == [merkle.leaf_hash(x) for x in leaves]
    assert inc.roots == con.roots
    assert inc.roots[0] == merkle.EMPTY_ROOT
    assert inc.roots[130] == merkle.root_from_leaf_hashes(inc.leaf_hashes)


def _bit(case: int, k: int) -> int:
    """A different bit for each hash of each case, so all 256 positions get flipped across cases."""
    return (case * 97 + k * 61) % 256


def _swaps(proof: list[bytes]) -> list[list[bytes]]:
    out = []
    for k in range(len(proof) - 1):
        if proof[k] != proof[k + 1]:
            swapped = list(proof)
            swapped[k], swapped[k + 1] = swapped[k + 1], swapped[k]
            out.append(swapped)
    return out


def _fails(check: Callable[[], None]) -> bool:
    try:
        check()
    except VerificationError:
        return True
    return False


@pytest.mark.parametrize("n", range(1, 131))
def test_inclusion_vectors(n: int) -> None:
    """Every index of size n verifies, equals our prover, and every mutation of it fails."""
    v = vectors("inclusion.json")
    t = Tree(vector_leaves()[:n])
    root = v.roots[n]
    for i in range(n):
        proof = v.proofs[(n, i)]
        leaf = v.leaf_hashes[i]
        merkle.verify_inclusion(leaf, i, n, proof, root)
        assert list(merkle.prove_inclusion(i, n, t.read)) == proof
        bad: list[tuple[bytes, int, int, list[bytes], bytes]] = []
        bit_limit = 256 if n <= 16 else 1  # every bit for small trees, one rotating bit otherwise
        for k in range(len(proof)):
            for b in range(bit_limit):
                bad.append(
                    (leaf, i, n, flip(proof, k * 256 + (b if n <= 16 else _bit(n * 131 + i, k))), root)
                )
        for b in range(bit_limit):
            pick = b if n <= 16 else _bit(n * 131 + i, 99)
            bad.append((flip([leaf], pick)[0], i, n, proof, root))
            bad.append((leaf, i, n, proof, flip([root], pick)[0]))
        bad += [(leaf, i, n, p, root) for p in _swaps(proof)]
        bad.append((leaf, i, n, [*proof, leaf], root))
        bad.append((leaf, i, n, [leaf, *proof], root))
        if proof:
            bad.append((leaf, i, n, proof[:-1], root))
            bad.append((leaf, i, n, proof[1:], root))
        bad += [(leaf, j, n, proof, root) for j in (i - 1, i + 1, i + n)]
        bad.append((leaf, i, i, proof, root))  # a size not above the index
        for m in (n - 1, n + 1):
            if not i < m <= 130:
                continue
            other = v.proofs[(m, i)]
            if other != proof:  # (else the same proof is genuinely valid in both trees)
                bad.append((leaf, i, m, proof, v.roots[m]))
            if len(other) != len(proof):
                bad.append((leaf, i, m, proof, root))
        for args in bad:
            assert _fails(partial(merkle.verify_inclusion, *args)), (n, i, args[1:3])


@pytest.mark.parametrize("n", range(1, 131))
def test_consistency_vectors(n: int) -> None:
    """Every size1 <= n verifies against n, equals our prover, and every mutation fails."""
    v = vectors("consistency.json")
    t = Tree(vector_leaves()[:n])
    r = v.roots
    for m in range(n + 1):
        proof = v.proofs[(m, n)]
        merkle.verify_consistency(m, n, proof, r[m], r[n])
        assert list(merkle.prove_consistency(m, n, t.read)) == proof
        bad: list[tuple[int, int, list[bytes], bytes, bytes]] = []
        bit_limit = 256 if n <= 16 else 1
        for k in range(len(proof)):
            for b in range(bit_limit):
                bad.append(
                    (m, n, flip(proof, k * 256 + (b if n <= 16 else _bit(n * 131 + m, k))), r[m], r[n])
                )
        for b in range(bit_limit):
            pick = b if n <= 16 else _bit(n * 131 + m, 99)
            bad.append((m, n, proof, flip([r[m]], pick)[0], r[n]))
            if m:  # from the empty tree every tree is consistent (RFC 9162 §2.1.4)
                bad.append((m, n, proof, r[m], flip([r[n]], pick)[0]))
        bad += [(m, n, p, r[m], r[n]) for p in _swaps(proof)]
        bad.append((m, n, [*proof, r[m]], r[m], r[n]))
        bad.append((m, n, [r[m], *proof], r[m], r[n]))
        if proof:
            bad.append((m, n, proof[:-1], r[m], r[n]))
            bad.append((m, n, proof[1:], r[m], r[n]))
        for m2, n2 in ((m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1)):
            if not 0 < n2 <= 130 or (0 <= m2 <= n2 and v.proofs[(m2, n2)] == proof):
                continue  # beyond the vectors, or the same proof is genuinely valid for both pairs
            bad.append((m2, n2, proof, r[min(max(m2, 0), 130)], r[n2]))
        for args in bad:
            assert _fails(partial(merkle.verify_consistency, *args)), (m, n, args[:2])


def test_vector_files_are_what_the_tool_makes() -> None:
    """house-style.md §4.10: vectors are committed with their tool and never edited by hand."""
    assert make_tlog_vectors.build() == {p.name: p.read_text() for p in VECTORS.iterdir()}
