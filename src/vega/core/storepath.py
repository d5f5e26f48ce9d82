"""Nix store paths, ``/nix/store/<digest>-<name>``, and how Nix computes them.

``digest`` is 20 bytes written as 32 Nix base-32 characters. ``name`` follows
Nix's rule (``checkName`` in Nix src/libstore/path.cc): 1 to 211 characters
from ``A-Z a-z 0-9 + - . _ ? =``, and neither ``.`` nor ``..``, nor starting
with ``.-`` or ``..-`` (current Nix; Nix 2.8 itself still creates names such as
``.foo``, so a leading dot alone is allowed).

A path's digest is computed (``makeStorePath``) from the fingerprint
``<type>:sha256:<hex>:<store dir>:<name>``: its SHA-256, XOR-folded to 20
bytes. The type says what the inner hash is: ``text:<refs...>`` for text files
such as ``.drv`` files, ``source:<refs...>`` for recursive SHA-256 content
(``nix-store --add``), ``output:out`` for other fixed outputs, and
``output:<name>`` for input-addressed derivation outputs.

Spec: protocol.md §2.3. Upstream: Nix src/libstore/path.cc, store-api.cc.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from vega.core import nixbase32
from vega.core.hashes import HashAlgorithm, NixHash
from vega.errors import FormatError

__all__ = [
    "DIGEST_SIZE",
    "MAX_NAME_LEN",
    "STORE_DIR",
    "StorePath",
    "check_name",
    "is_store_path",
    "make_fixed_output_path",
    "make_output_path",
    "make_store_path",
    "make_text_path",
    "output_path_name",
    "parse_store_path",
]

STORE_DIR = "/nix/store"
"""The store directory."""
DIGEST_SIZE = 20
"""Bytes in a store-path digest."""
MAX_NAME_LEN = 211
"""Longest name Nix allows."""

_NAME = re.compile(r"[A-Za-z0-9+\-._?=]{1,211}")
_BAD_DOTS = re.compile(r"\.\.?(?:-|$)")
_HASH_PART = re.compile(r"[0123456789abcdfghijklmnpqrsvwxyz]{32}")


def check_name(name: str) -> None:
    """Check a store-path name against Nix's rule.

    Args:
        name: The part after the dash.

    Raises:
        FormatError: The name is empty, too long, has a character Nix
            forbids, or is ``.``/``..`` (alone or before a dash).
    """
    if not _NAME.fullmatch(name) or _BAD_DOTS.match(name):
        if not name:
            raise FormatError("store path name is empty")
        if len(name) > MAX_NAME_LEN:
            raise FormatError(f"store path name longer than {MAX_NAME_LEN} characters: {name[:80]!r}...")
        raise FormatError(f"store path name not allowed: {name[:120]!r}")


@dataclass(frozen=True, slots=True, order=True)
class StorePath:
    """A store path, independent of the store directory; ``str()`` is the base name."""

    digest: bytes
    """The 20-byte digest."""
    name: str
    """The part after the dash."""

    def __post_init__(self) -> None:
        if len(self.digest) != DIGEST_SIZE:
            raise FormatError(f"store path digest: expected 20 bytes, got {len(self.digest)}")
        check_name(self.name)

    @property
    def hash_part(self) -> str:
        """The 32 Nix base-32 characters (the narinfo object key)."""
        return nixbase32.encode(self.digest)

    @property
    def absolute(self) -> str:
        """``/nix/store/<hash>-<name>``."""
        return f"{STORE_DIR}/{nixbase32.encode(self.digest)}-{self.name}"

    def in_store(self, store_dir: str) -> str:
        """The absolute path under another store directory.

        Args:
            store_dir: The store directory, without a trailing slash.

        Returns:
            ``<store_dir>/<hash>-<name>``.
        """
        return f"{store_dir}/{nixbase32.encode(self.digest)}-{self.name}"

    def __str__(self) -> str:
        return f"{nixbase32.encode(self.digest)}-{self.name}"


def parse_store_path(text: str, store_dir: str = STORE_DIR) -> StorePath:
    """Parse an absolute store path or its base name.

    Args:
        text: ``/nix/store/<hash>-<name>`` or ``<hash>-<name>``.
        store_dir: The store directory an absolute path must be in.

    Returns:
        The store path.

    Raises:
        FormatError: ``text`` is not a store path (also for a path inside one).
    """
    base = text[len(store_dir) + 1 :] if text.startswith(store_dir + "/") else text
    if len(base) < 34 or base[32] != "-" or not _HASH_PART.fullmatch(base, 0, 32):
        raise FormatError(f"not a store path: {text[:140]!r}")
    try:
        return StorePath(nixbase32.decode(base[:32]), base[33:])
    except FormatError as e:
        raise FormatError(f"not a store path: {text[:140]!r}: {e.message}") from None


def is_store_path(text: str, store_dir: str = STORE_DIR) -> bool:
    """Whether :func:`parse_store_path` accepts ``text``. Never raises.

    Args:
        text: Candidate text.
        store_dir: The store directory an absolute path must be in.

    Returns:
        True for a valid absolute store path or base name.
    """
    try:
        parse_store_path(text, store_dir)
    except FormatError:
        return False
    return True


def _compress(digest: bytes, size: int) -> bytes:
    """XOR-fold ``digest`` to ``size`` bytes (Nix ``compressHash``)."""
    acc = 0
    for start in range(0, len(digest), size):
        acc ^= int.from_bytes(digest[start : start + size].ljust(size, b"\0"), "big")
    return acc.to_bytes(size, "big")


def _type_with_refs(kind: str, references: Iterable[StorePath], self_reference: bool, store_dir: str) -> str:
    parts = [kind, *sorted({p.in_store(store_dir) for p in references})]
    if self_reference:
        parts.append("self")
    return ":".join(parts)


def make_store_path(kind: str, inner_hash: NixHash | str, name: str, store_dir: str = STORE_DIR) -> StorePath:
    """Compute a store path from its type, inner hash and name (Nix ``makeStorePath``).

    Args:
        kind: The type, e.g. ``source``, ``text:/nix/store/...``, ``output:out``.
        inner_hash: The inner hash, or the hex of a SHA-256 digest.
        name: The name.
        store_dir: The store directory that goes into the fingerprint.

    Returns:
        The store path.

    Raises:
        FormatError: ``name`` is not a valid store-path name or the hex is not
            a SHA-256 digest.
    """
    if isinstance(inner_hash, str):
        hex_text = inner_hash
        try:
            inner_hash = NixHash(HashAlgorithm.SHA256, bytes.fromhex(hex_text))
        except ValueError:
            raise FormatError(f"not the hex of a sha256 digest: {hex_text[:140]!r}") from None
    check_name(name)
    fingerprint = f"{kind}:{inner_hash.algorithm.value}:{inner_hash.digest.hex()}:{store_dir}:{name}"
    digest = hashlib.sha256(fingerprint.encode()).digest()
    return StorePath(_compress(digest, DIGEST_SIZE), name)


def make_text_path(
    name: str,
    content: bytes,
    references: Iterable[StorePath] = (),
    store_dir: str = STORE_DIR,
) -> StorePath:
    """The path of a text file added with its references (``builtins.toFile``, ``.drv`` files).

    Args:
        name: The name (for a derivation, ``<name>.drv``).
        content: The file's bytes.
        references: The store paths it refers to (order and repeats do not matter).
        store_dir: The store directory.

    Returns:
        The store path.
    """
    inner = NixHash(HashAlgorithm.SHA256, hashlib.sha256(content).digest())
    return make_store_path(_type_with_refs("text", references, False, store_dir), inner, name, store_dir)


def make_fixed_output_path(
    name: str,
    hash: NixHash,
    recursive: bool,
    references: Iterable[StorePath] = (),
    store_dir: str = STORE_DIR,
    *,
    self_reference: bool = False,
) -> StorePath:
    """The path of fixed-output content (Nix ``makeFixedOutputPath``).

    Recursive SHA-256 (the NAR hash, as ``nix-store --add`` of a file or a
    directory) gives a ``source`` path; every other case gives an
    ``output:out`` path of ``fixed:out:[r:]<algo>:<hex>:``.

    Args:
        name: The name.
        hash: The hash of the content: of its NAR when ``recursive``, else of the flat file.
        recursive: Whether ``hash`` is of the NAR serialisation.
        references: References; only possible for recursive SHA-256.
        store_dir: The store directory.
        self_reference: Whether the content refers to itself (recursive SHA-256 only).

    Returns:
        The store path.

    Raises:
        FormatError: References were given for a kind of path that cannot have them.
    """
    refs = tuple(references)
    if recursive and hash.algorithm is HashAlgorithm.SHA256:
        kind = _type_with_refs("source", refs, self_reference, store_dir)
        return make_store_path(kind, hash, name, store_dir)
    if refs or self_reference:
        raise FormatError("only recursive sha256 fixed-output paths may have references")
    method = "r:" if recursive else ""
    text = f"fixed:out:{method}{hash.algorithm.value}:{hash.digest.hex()}:"
    inner = NixHash(HashAlgorithm.SHA256, hashlib.sha256(text.encode()).digest())
    return make_store_path("output:out", inner, name, store_dir)


def output_path_name(drv_name: str, output_name: str) -> str:
    """The name of an output's path: ``<drv name>`` for ``out``, else ``<drv name>-<output>``.

    Args:
        drv_name: The derivation's name (without ``.drv``).
        output_name: The output's name.

    Returns:
        The store-path name.
    """
    return drv_name if output_name == "out" else f"{drv_name}-{output_name}"


def make_output_path(
    drv_hash_modulo: bytes, output_name: str, name: str, store_dir: str = STORE_DIR
) -> StorePath:
    """The path of an input-addressed derivation output (Nix ``makeOutputPath``).

    Args:
        drv_hash_modulo: The derivation's SHA-256 ``hashDerivationModulo``
            (computed with its outputs masked).
        output_name: The output, e.g. ``out``, ``dev``.
        name: The derivation's name.
        store_dir: The store directory.

    Returns:
        The store path.
    """
    inner = NixHash(HashAlgorithm.SHA256, drv_hash_modulo)
    return make_store_path(f"output:{output_name}", inner, output_path_name(name, output_name), store_dir)
