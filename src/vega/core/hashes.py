"""Nix hashes: an algorithm and a digest, and every text form Nix prints or accepts.

Forms (Nix src/libutil/hash.cc, as of Nix 2.8):

* ``<algo>:<text>`` where the text is base-16, Nix base-32 or base-64; which
  one is decided by its length alone (for sha256: 64, 52 or 44 characters).
  This is the narinfo form, always written with Nix base-32.
* SRI: ``<algo>-<base64>``; the padding may be left off.
* A bare base-16, Nix base-32 or base-64 text when the algorithm is known
  from elsewhere (a ``.drv`` output, ``nix hash to-sri --type``).

Algorithm names are lower case. Base-16 is accepted in either case and
written in lower case.

Spec: protocol.md §2.2. Upstream: Nix src/libutil/hash.cc.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vega.core import nixbase32
from vega.errors import FormatError

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "HashAlgorithm",
    "HashEncoding",
    "NixHash",
    "format_nix_hash",
    "hash_bytes",
    "parse_hash_algorithm",
    "parse_nix_hash",
]


class HashAlgorithm(enum.StrEnum):
    """A hash algorithm Nix knows, named as Nix spells it."""

    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"

    @property
    def digest_size(self) -> int:
        """The digest length in bytes."""
        return _DIGEST_SIZE[self]

    def new(self) -> _Hash:
        """A fresh :mod:`hashlib` object for streaming input.

        Returns:
            A hash object with ``update`` and ``digest``.
        """
        return hashlib.new(self.value)


_DIGEST_SIZE = {
    HashAlgorithm.MD5: 16,
    HashAlgorithm.SHA1: 20,
    HashAlgorithm.SHA256: 32,
    HashAlgorithm.SHA512: 64,
}


class HashEncoding(enum.StrEnum):
    """A text encoding of a digest."""

    BASE16 = "base16"
    NIX32 = "nix32"
    BASE64 = "base64"
    SRI = "sri"


def parse_hash_algorithm(name: str) -> HashAlgorithm:
    """Parse an algorithm name as Nix spells it (``md5``, ``sha1``, ``sha256``, ``sha512``).

    Args:
        name: The name.

    Returns:
        The algorithm.

    Raises:
        FormatError: Not one of the four names.
    """
    try:
        return HashAlgorithm(name)
    except ValueError:
        raise FormatError(f"unknown hash algorithm {name[:40]!r}") from None


@dataclass(frozen=True, slots=True)
class NixHash:
    """A digest together with the algorithm that made it."""

    algorithm: HashAlgorithm
    """The algorithm."""
    digest: bytes
    """The raw digest, ``algorithm.digest_size`` bytes."""

    def __post_init__(self) -> None:
        if len(self.digest) != self.algorithm.digest_size:
            raise FormatError(
                f"{self.algorithm.value} digest: expected {self.algorithm.digest_size} bytes,"
                f" got {len(self.digest)}"
            )

    @property
    def base16(self) -> str:
        """The digest in lower-case hexadecimal."""
        return self.digest.hex()

    @property
    def nix32(self) -> str:
        """The digest in Nix base-32."""
        return nixbase32.encode(self.digest)

    @property
    def base64(self) -> str:
        """The digest in padded standard base-64."""
        return base64.b64encode(self.digest).decode("ascii")

    @property
    def sri(self) -> str:
        """The SRI form, ``<algo>-<base64>``."""
        return f"{self.algorithm.value}-{self.base64}"

    def encoded(self, encoding: HashEncoding) -> str:
        """The digest alone in one encoding (SRI gives the whole SRI form).

        Args:
            encoding: The encoding.

        Returns:
            The text.
        """
        if encoding is HashEncoding.BASE16:
            return self.base16
        if encoding is HashEncoding.NIX32:
            return self.nix32
        if encoding is HashEncoding.BASE64:
            return self.base64
        return self.sri

    def prefixed(self, encoding: HashEncoding = HashEncoding.NIX32) -> str:
        """``<algo>:<digest>`` in one encoding; SRI gives ``<algo>-<base64>``.

        Args:
            encoding: The encoding of the digest; Nix base-32 by default (the narinfo form).

        Returns:
            The text.
        """
        if encoding is HashEncoding.SRI:
            return self.sri
        return f"{self.algorithm.value}:{self.encoded(encoding)}"

    def __str__(self) -> str:
        return f"{self.algorithm.value}:{nixbase32.encode(self.digest)}"


def format_nix_hash(h: NixHash) -> str:
    """The narinfo form ``<algo>:<nix32>`` (e.g. ``sha256:1b8m03r6...``).

    Args:
        h: The hash.

    Returns:
        The text.
    """
    return f"{h.algorithm.value}:{nixbase32.encode(h.digest)}"


def hash_bytes(algorithm: HashAlgorithm, data: bytes) -> NixHash:
    """Hash ``data`` with ``algorithm``.

    Args:
        algorithm: The algorithm.
        data: The bytes to hash.

    Returns:
        The hash.
    """
    return NixHash(algorithm, hashlib.new(algorithm.value, data).digest())


_PREFIX = re.compile(r"(md5|sha1|sha256|sha512)([:-])")
_HEX = re.compile(r"[0-9a-fA-F]*")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def parse_nix_hash(text: str, algorithm: HashAlgorithm | None = None) -> NixHash:
    """Parse any form of a hash that Nix prints or accepts.

    Args:
        text: ``<algo>:<base16|nix32|base64>``, ``<algo>-<base64>`` (SRI), or,
            when ``algorithm`` is given, the bare digest in base-16, Nix base-32
            or base-64 (chosen by length, as Nix does).
        algorithm: The expected algorithm. A prefixed ``text`` must name it.

    Returns:
        The hash.

    Raises:
        FormatError: ``text`` is not a hash of the expected algorithm.
    """
    match = _PREFIX.match(text)
    if match is None:
        if algorithm is None:
            raise FormatError(f"hash {text[:140]!r} does not name its algorithm")
        return _parse_digest(text, algorithm, text, sri=False)
    named = HashAlgorithm(match.group(1))
    if algorithm is not None and named is not algorithm:
        raise FormatError(f"hash {text[:140]!r} should have type {algorithm.value!r}")
    return _parse_digest(text[match.end() :], named, text, sri=match.group(2) == "-")


def _parse_digest(rest: str, algorithm: HashAlgorithm, text: str, *, sri: bool) -> NixHash:
    size = algorithm.digest_size
    if not sri:
        if len(rest) == 2 * size:
            if not _HEX.fullmatch(rest):
                raise FormatError(f"invalid base-16 hash {text[:140]!r}")
            return NixHash(algorithm, bytes.fromhex(rest))
        if len(rest) == nixbase32.encoded_len(size):
            try:
                return NixHash(algorithm, nixbase32.decode(rest))
            except FormatError:
                raise FormatError(f"invalid base-32 hash {text[:140]!r}") from None
        if len(rest) != (4 * size // 3 + 3) & ~3:
            raise FormatError(f"hash {text[:140]!r} has wrong length for hash type {algorithm.value!r}")
    digest = _b64decode(rest)
    if digest is None or len(digest) != size:
        what = "SRI hash" if sri else "base-64 hash"
        raise FormatError(f"invalid {what} {text[:140]!r}")
    return NixHash(algorithm, digest)


def _b64decode(text: str) -> bytes | None:
    if not _B64.fullmatch(text):
        return None
    body = text.rstrip("=")
    if len(text) - len(body) and len(text) % 4:
        return None  # padding present but not to a whole group
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except binascii.Error:
        return None
