"""RFC 9162 §2.1 written literally: MTH, PATH, PROOF/SUBPROOF over a list of leaf data.

Recursive, obviously correct, slow. Used only by tests and tools/make_tlog_vectors.py
as the reference that vega.core.merkle is checked against. Do not optimise.

Spec: RFC 9162 §2.1.1 (MTH), §2.1.3.1 (PATH), §2.1.4.1 (PROOF, SUBPROOF).
"""

# The RFC writes "A : B" for concatenation; list + list keeps the text literal.
# ruff: noqa: RUF005

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1: the Merkle Tree Hash of the list of inputs D[n]."""
    n = len(d)
    if n == 0:
        # MTH({}) = SHA-256()
        return _sha256(b"")
    if n == 1:
        # MTH({d(0)}) = SHA-256(0x00 || d(0))
        return _sha256(b"\x00" + d[0])
    k = _k(n)
    # MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
    return _sha256(b"\x01" + mth(d[0:k]) + mth(d[k:n]))


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1: PATH(m, D[n]), the audit path for leaf m."""
    n = len(d)
    if not 0 <= m < n:
        raise ValueError("m out of range")
    if n == 1:
        # PATH(0, {d(0)}) = {}
        return []
    k = _k(n)
    if m < k:
        # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
        return path(m, d[0:k]) + [mth(d[k:n])]
    # PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
    return path(m - k, d[k:n]) + [mth(d[0:k])]


def proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for 0 < m < n.

    Outside that range this returns the empty proof (size1 == 0 or size1 == size2).
    """
    n = len(d)
    if not 0 <= m <= n:
        raise ValueError("m out of range")
    if m in (0, n):
        return []
    return subproof(m, d, True)


def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1: SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
        return [] if b else [mth(d)]
    k = _k(n)
    if m <= k:
        # SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
        return subproof(m, d[0:k], b) + [mth(d[k:n])]
    # SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
    return subproof(m - k, d[k:n], False) + [mth(d[0:k])]


def root(d: Sequence[bytes]) -> bytes:
    """Alias of :func:`mth`."""
    return mth(d)
