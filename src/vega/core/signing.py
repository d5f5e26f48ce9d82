"""Nix Ed25519 keys and signatures in ``name:base64`` form, and Vega's key derivation.

Text forms (all base64 is RFC 4648 with ``=`` padding)::

    public key   <name>:<B64(32-byte Ed25519 public key)>
    secret key   <name>:<B64(seed(32) || public(32))>      libsodium layout, as `nix key` writes it
    signature    <name>:<B64(64-byte Ed25519 signature)>   RFC 8032, over the raw message bytes

Invariants: a name is non-empty and has no ``:`` (text is split at the first
``:``); a secret key's public half equals the key derived from its seed.
Base64 must be strict: alphabet ``A-Za-z0-9+/``, at most two ``=``, length a
multiple of 4, and canonical (re-encoding the bytes gives the same text), so
no two texts decode to the same key or signature.

Derived keys (§2.6): the seed of a derived key is ``SHA-256(M || info)`` where
``M`` is the master seed and ``info`` is UTF-8 with no separator.

Verification is libsodium-compatible where libsodium is stricter than RFC 8032:
a public key or signature ``R`` of small order, and a non-canonical public key
encoding, are refused before the curve check (Nix signs and verifies with
libsodium; two verifiers that must agree on promotion should agree here too).

Spec: protocol.md §2.1 (keys, signatures), §2.6 (derivation, key scopes).
Upstream: Nix src/libutil/signature/local-keys.cc (crypto.cc in Nix 2.8).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vega.errors import FormatError

__all__ = [
    "SHARED_KEY_NAME",
    "KeyScope",
    "PublicKey",
    "SecretKey",
    "derive_secret_key",
    "enroll_key",
    "format_public_key",
    "format_secret_key",
    "generate_secret_key",
    "is_printable_key",
    "is_tenant_key_name",
    "is_valid_signature",
    "key_fingerprint",
    "key_scope",
    "parse_public_key",
    "parse_secret_key",
    "safe_key_name_part",
    "sign",
    "tenant_key",
    "view_key",
]

SHARED_KEY_NAME = "vega-cache-1"
"""The master key's name; the shared tier is signed with it (§1, §2.6)."""

KeyScope = Literal["shared", "scoped", "upstream"]
"""What a key name says about who signed (§2.6, client-side classification)."""

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_PRINTABLE_KEY = re.compile(r"[A-Za-z0-9._-]+:[A-Za-z0-9+/]+=*")
_UNSAFE_NAME_CHAR = re.compile(r"[^A-Za-z0-9._-]")

_SEED_BYTES = 32
_PUBLIC_BYTES = 32
_SIGNATURE_BYTES = 64

# Encodings of the eight points of order dividing 8 (and their aliases y+p),
# compared with the sign bit cleared, as libsodium's ge25519_has_small_order does.
_SMALL_ORDER_Y = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
        "0100000000000000000000000000000000000000000000000000000000000000",  # order 1
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2: y = p - 1
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p (≡ 0)
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1 (≡ 1)
    )
)
_FIELD_PRIME = 2**255 - 19


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 public key with its Nix key name."""

    name: str
    """The key name, e.g. ``vega-cache-1``; non-empty, no ``:``."""
    key: bytes
    """The 32-byte Ed25519 public key."""

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.key) != _PUBLIC_BYTES:
            raise FormatError(f"public key {self.name!r}: expected 32 bytes, got {len(self.key)}")


@dataclass(frozen=True, slots=True)
class SecretKey:
    """An Ed25519 secret key with its Nix key name; only the seed is secret."""

    name: str
    """The key name; non-empty, no ``:``."""
    seed: bytes = field(repr=False)
    """The 32-byte Ed25519 seed (RFC 8032 private key)."""
    public: PublicKey = field(init=False, compare=False)
    """The public key derived from the seed, under the same name."""

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.seed) != _SEED_BYTES:
            raise FormatError(f"secret key {self.name!r}: expected a 32-byte seed, got {len(self.seed)}")
        raw = (
            Ed25519PrivateKey.from_private_bytes(self.seed)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        object.__setattr__(self, "public", PublicKey(self.name, raw))


def _check_name(name: str) -> None:
    if not name:
        raise FormatError("key name must not be empty")
    if ":" in name:
        raise FormatError(f"key name must not contain ':', got {name[:80]!r}")


def _strict_b64decode(text: str) -> bytes | None:
    """Decode strict, canonical base64; None when ``text`` is not."""
    if len(text) % 4 or not _BASE64.fullmatch(text):
        return None
    # The regex and the length leave only "xxxx", "xxx=" and "xx==" quads: decoding cannot fail.
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def _parse_key_text(text: str, what: str, size: int) -> tuple[str, bytes]:
    name, colon, b64 = text.partition(":")
    if not colon or not name or not b64:
        raise FormatError(f"{what}: expected <name>:<base64>, got {text[:80]!r}")
    raw = _strict_b64decode(b64)
    if raw is None:
        raise FormatError(f"{what} {name[:80]!r}: not strict base64")
    if len(raw) != size:
        raise FormatError(f"{what} {name[:80]!r}: expected {size} bytes, got {len(raw)}")
    return name, raw


def parse_public_key(text: str) -> PublicKey:
    """Parse ``<name>:<base64 of 32 bytes>``.

    Raises:
        FormatError: ``text`` is not a public key in Nix form.
    """
    name, raw = _parse_key_text(text, "public key", _PUBLIC_BYTES)
    return PublicKey(name, raw)


def parse_secret_key(text: str) -> SecretKey:
    """Parse ``<name>:<base64 of seed || public>`` as ``nix key generate-secret`` writes it.

    Surrounding whitespace (a key file's trailing newline) is not accepted: strip it first.

    Raises:
        FormatError: ``text`` is not a secret key in Nix form, or its public half does not
            belong to its seed.
    """
    name, raw = _parse_key_text(text, "secret key", _SEED_BYTES + _PUBLIC_BYTES)
    key = SecretKey(name, raw[:_SEED_BYTES])
    if key.public.key != raw[_SEED_BYTES:]:
        raise FormatError(f"secret key {name[:80]!r}: its public half does not match its seed")
    return key


def format_public_key(key: PublicKey) -> str:
    """Render ``<name>:<base64>``, the form of ``nix key convert-secret-to-public``."""
    return f"{key.name}:{base64.b64encode(key.key).decode('ascii')}"


def key_fingerprint(key: PublicKey) -> str:
    """A short fingerprint to compare a key out of band: ``SHA256:`` and 16 characters.

    The first 96 bits of the SHA-256 of the 32 key bytes, unpadded base64 (the name is not
    hashed: it is shown beside the fingerprint). Issue 12 (``vega doctor``).
    """
    digest = hashlib.sha256(key.key).digest()[:12]
    return "SHA256:" + base64.b64encode(digest).decode("ascii")


def format_secret_key(key: SecretKey) -> str:
    """Render ``<name>:<base64 of seed || public>``, the form of ``nix key generate-secret``."""
    return f"{key.name}:{base64.b64encode(key.seed + key.public.key).decode('ascii')}"


def generate_secret_key(name: str, seed: bytes) -> SecretKey:
    """Make a new secret key from 32 random bytes the caller supplies (core takes no randomness).

    Raises:
        FormatError: the name is not a key name or the seed is not 32 bytes.
    """
    return SecretKey(name, bytes(seed))


def sign(secret: SecretKey, message: bytes) -> str:
    """Sign ``message`` (RFC 8032 Ed25519, no prehash) and return ``<name>:<base64>``."""
    signature = Ed25519PrivateKey.from_private_bytes(secret.seed).sign(message)
    return f"{secret.name}:{base64.b64encode(signature).decode('ascii')}"


def is_valid_signature(public: PublicKey, message: bytes, sig_text: str) -> bool:
    """Whether ``sig_text`` is ``public``'s signature of ``message``; never raises.

    False when the signature's key name differs from ``public.name``, its base64 is
    not strict, it does not decode to 64 bytes, or the Ed25519 check fails.
    """
    name, colon, b64 = sig_text.partition(":")
    if not colon or name != public.name:
        return False
    signature = _strict_b64decode(b64)
    if signature is None or len(signature) != _SIGNATURE_BYTES:
        return False
    # libsodium refuses these before the curve equation; OpenSSL would not.
    if _has_small_order(signature[:32]) or _has_small_order(public.key):
        return False
    if not _is_canonical_point(public.key):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public.key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _has_small_order(encoding: bytes) -> bool:
    return encoding[:31] + bytes([encoding[31] & 0x7F]) in _SMALL_ORDER_Y


def _is_canonical_point(encoding: bytes) -> bool:
    """Whether the y coordinate is below p (the sign bit aside)."""
    return int.from_bytes(encoding, "little") & ((1 << 255) - 1) < _FIELD_PRIME


def derive_secret_key(master: SecretKey, info: str, name: str) -> SecretKey:
    """Derive a key whose seed is ``SHA-256(master seed || UTF-8(info))`` (§2.6).

    Raises:
        FormatError: ``name`` is not a key name.
    """
    return SecretKey(name, hashlib.sha256(master.seed + info.encode("utf-8")).digest())


def safe_key_name_part(x: str) -> str:
    """``x`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``-`` (§2.6 ``x'``)."""
    return _UNSAFE_NAME_CHAR.sub("-", x)


def tenant_key(master: SecretKey, tenant: str) -> SecretKey:
    """The per-tenant signing key ``vega-<tenant'>-1`` (``owner/repo`` or ``owner:<id>``)."""
    return derive_secret_key(master, f"vega-tenant-key-v1:{tenant}", f"vega-{safe_key_name_part(tenant)}-1")


def enroll_key(master: SecretKey) -> SecretKey:
    """The owner-enrolment (credential-signing) key ``vega-enroll-1``."""
    return derive_secret_key(master, "vega-enroll-key-v1", "vega-enroll-1")


def view_key(master: SecretKey, consumer: str) -> SecretKey:
    """The per-consumer social view key ``vega-view-<consumer'>-1``."""
    return derive_secret_key(
        master, f"vega-social-key-v1:{consumer}", f"vega-view-{safe_key_name_part(consumer)}-1"
    )


def key_scope(name: str) -> KeyScope:
    """Classify a key name: ``vega-cache-1`` shared, other ``vega-*`` scoped, else upstream."""
    if name == SHARED_KEY_NAME:
        return "shared"
    if name.startswith("vega-"):
        return "scoped"
    return "upstream"


def is_tenant_key_name(name: str) -> bool:
    """Whether ``name`` names a tenant key (``vega-*``, not the shared key, not ``vega-view-*``)."""
    return key_scope(name) == "scoped" and not name.startswith("vega-view-")


def is_printable_key(text: str) -> bool:
    """The §2.1 shape check before printing a server-supplied key; never raises."""
    return _PRINTABLE_KEY.fullmatch(text) is not None
