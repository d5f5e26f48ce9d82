"""Nix base-32: the alphabet and bit order Nix uses for store-path digests and hashes.

The digest is read as one little-endian integer and written as 5-bit digits,
most significant first, over the alphabet ``0123456789abcdfghijklmnpqrsvwxyz``.
Both directions work on that integer with a few masked shifts and one byte
translation table, with no per-bit or per-digit Python loop (about 1 µs for a
sha256 digest).

Spec: protocol.md §2.2. Upstream: Nix src/libutil/hash.cc (``printHash32``,
``parseHash32``).
"""

from __future__ import annotations

import base64

from vega.errors import FormatError

__all__ = ["ALPHABET", "decode", "encode", "encoded_len", "is_nix32"]

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
"""The 32 symbols, in digit order (no ``e o t u``)."""

_RFC = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_RFC_TO_NIX = bytes.maketrans(_RFC, ALPHABET.encode())
_DIGIT_TO_NIX = bytes.maketrans(bytes(range(32)), ALPHABET.encode())
# Every byte outside the alphabet maps to 0xFF, which we look for.
_NIX_TO_DIGIT = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else 0xFF for b in range(256))
_NIX_TO_RFC = bytes(_RFC[d] if d != 0xFF else ord("!") for d in _NIX_TO_DIGIT)
_ALPHABET_SET = frozenset(ALPHABET)

# Digit k of the encoding is bits 5k..5k+4 of the little-endian integer. For
# short inputs (every digest) we move digit k to bits 8k..8k+4 with one masked
# shift per bit of k (highest first), so that the integer's big-endian bytes
# are the digits in output order: a handful of big-integer operations instead
# of a loop per digit. Longer inputs go through RFC 4648 base-32 instead.
_SPREAD_MAX = 128
_Plan = tuple[tuple[int, int], ...]
_PLANS: dict[int, _Plan] = {}


def _plan(length: int) -> _Plan:
    """Compute (and remember) the masked shifts for ``length`` digits; called on a miss."""
    steps = []
    pos = [5 * k for k in range(length)]
    for bit in reversed(range((length - 1).bit_length())):
        mask = 0
        for k in range(length):
            if k >> bit & 1:
                mask |= 31 << pos[k]
                pos[k] += 3 << bit
        steps.append((mask, 3 << bit))
    plan = _PLANS[length] = tuple(steps)
    return plan


def encoded_len(n: int) -> int:
    """The length of the encoding of ``n`` bytes: ``ceil(8n / 5)``.

    Args:
        n: A byte count, at least zero.

    Returns:
        The number of characters (0 for 0 bytes, 32 for 20, 52 for 32).
    """
    return (8 * n + 4) // 5


def encode(data: bytes) -> str:
    """Encode bytes as Nix base-32.

    Args:
        data: Any bytes (usually a 20-, 32- or 64-byte digest).

    Returns:
        The text, :func:`encoded_len` characters long.
    """
    n = len(data)
    if n == 0:
        return ""
    length = (8 * n + 4) // 5
    if length <= _SPREAD_MAX:
        x = int.from_bytes(data, "little")
        for mask, shift in _PLANS.get(length) or _plan(length):
            moved = x & mask
            x ^= moved ^ (moved << shift)
        return x.to_bytes(length, "big").translate(_DIGIT_TO_NIX).decode("ascii")
    # Pad the big-endian integer at the top to whole 40-bit groups; then every
    # 5-bit digit of RFC 4648 base-32 lines up with Nix's, counted from the bottom.
    width = -(-length // 8) * 5
    rfc = base64.b32encode(data[::-1].rjust(width, b"\0"))
    return rfc[len(rfc) - length :].translate(_RFC_TO_NIX).decode("ascii")


def decode(text: str) -> bytes:
    """Decode Nix base-32 text.

    Args:
        text: The encoded text.

    Returns:
        The bytes, ``floor(5 * len(text) / 8)`` of them.

    Raises:
        FormatError: The length is not a possible encoded length, a character
            is outside the alphabet, or bits are set beyond the last byte.
    """
    length = len(text)
    n = length * 5 // 8
    if (8 * n + 4) // 5 != length:
        raise FormatError(f"nix base-32: invalid length {length}: {text[:120]!r}")
    if n == 0:
        return b""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raw = b"\xff"
    if length <= _SPREAD_MAX:
        digits = raw.translate(_NIX_TO_DIGIT)
        if b"\xff" in digits:
            raise _bad_character(text)
        x = int.from_bytes(digits, "big")
        for mask, shift in reversed(_PLANS.get(length) or _plan(length)):
            moved = x & (mask << shift)
            x ^= moved ^ (moved >> shift)
        if x >> (8 * n):
            raise _carry(text)
        return x.to_bytes(n, "little")
    rfc = raw.translate(_NIX_TO_RFC)
    if b"!" in rfc:
        raise _bad_character(text)
    value = base64.b32decode(rfc.rjust(-(-length // 8) * 8, b"A"))
    extra = len(value) - n
    if value[:extra].strip(b"\0"):
        raise _carry(text)
    return value[extra:][::-1]


def _bad_character(text: str) -> FormatError:
    bad = next(c for c in text if c not in _ALPHABET_SET)
    return FormatError(f"nix base-32: invalid character {bad!r} in {text[:120]!r}")


def _carry(text: str) -> FormatError:
    return FormatError(f"nix base-32: non-zero bits past the last byte in {text[:120]!r}")


def is_nix32(text: str, n: int) -> bool:
    """Whether ``text`` is the Nix base-32 encoding of exactly ``n`` bytes.

    Args:
        text: Candidate text.
        n: The expected number of bytes.

    Returns:
        True when :func:`decode` would succeed and give ``n`` bytes. Never raises.
    """
    if len(text) != (8 * n + 4) // 5:
        return False
    try:
        decode(text)
    except FormatError:
        return False
    return True
