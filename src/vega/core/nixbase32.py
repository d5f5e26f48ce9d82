"""Nix base-32: the alphabet and bit order Nix uses for store-path digests and hashes.

The digest is read as one little-endian integer and written as 5-bit digits,
most significant first, over the alphabet ``0123456789abcdfghijklmnpqrsvwxyz``.
That is RFC 4648 base-32 of the byte-reversed digest with the zero padding at
the top instead of the bottom, so both directions run through the C codec in
:mod:`base64` plus one translation table, with no per-bit Python loop.

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
_TO_NIX = bytes.maketrans(_RFC, ALPHABET.encode())
# Every byte outside the alphabet maps to "!", which base64 rejects and we look for.
_TO_RFC = bytes(_RFC[ALPHABET.index(chr(b))] if chr(b) in ALPHABET else ord("!") for b in range(256))
_ALPHABET_SET = frozenset(ALPHABET)


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
    # Pad the big-endian integer at the top to whole 40-bit groups; then every
    # 5-bit digit of RFC 4648 base-32 lines up with Nix's, counted from the bottom.
    width = -(-length // 8) * 5
    rfc = base64.b32encode(data[::-1].rjust(width, b"\0"))
    return rfc[len(rfc) - length :].translate(_TO_NIX).decode("ascii")


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
        raise FormatError(f"nix base-32: invalid character in {text[:120]!r}") from None
    rfc = raw.translate(_TO_RFC)
    if b"!" in rfc:
        bad = next(c for c in text if c not in _ALPHABET_SET)
        raise FormatError(f"nix base-32: invalid character {bad!r} in {text[:120]!r}")
    width = -(-length // 8) * 8
    value = base64.b32decode(rfc.rjust(width, b"A"))
    extra = len(value) - n
    if value[:extra].strip(b"\0"):
        raise FormatError(f"nix base-32: non-zero bits past the last byte in {text[:120]!r}")
    return value[extra:][::-1]


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
