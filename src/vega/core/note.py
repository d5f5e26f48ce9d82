r"""C2SP signed notes: text signed by one or more keys; Ed25519 and cosignature keys.

A note is UTF-8 text ending in a newline, a blank line, then one or more
signature lines (c2sp.org/signed-note)::

    This is an example message.

    — example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3...

Each signature line is ``— <key name> base64(key ID || signature)`` with a
4-byte big-endian key ID, ``SHA-256(name || 0x0A || type || public key)[:4]``.
Two signature types are supported:

* ``0x01`` Ed25519 over the note text (signed-note);
* ``0x04`` timestamped Ed25519 witness cosignatures (c2sp.org/tlog-cosignature):
  the signature is ``u64 timestamp || 64-byte Ed25519`` over
  ``"cosignature/v1\ntime <timestamp>\n" || text``.

Key texts (sumdb/note forms)::

    verifier key   <name>+<8 hex key ID>+<base64(type || 32-byte public key)>
    signer key     PRIVATE+KEY+<name>+<8 hex key ID>+<base64(type || 32-byte seed)>

Invariants: names are non-empty with no Unicode space and no ``+``; the text
has no control character other than newline; a parsed note has 1 to
:data:`MAX_SIGNATURES` signatures and at most :data:`MAX_NOTE_BYTES` bytes.
Verification follows the spec: signatures whose (name, key ID) match no known
key are ignored; a known key's failing signature rejects the whole note; at
least one known signature must verify.

Spec: c2sp.org/signed-note, c2sp.org/tlog-cosignature (Ed25519, type 0x04).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vega.errors import FormatError, VerificationError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Note",
    "NoteSignature",
    "SignerKey",
    "VerifierKey",
    "add_signatures",
    "cosignature_message",
    "format_note",
    "format_signer_key",
    "format_verifier_key",
    "is_valid_key_name",
    "key_id",
    "open_note",
    "parse_note",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
    "signature_for",
    "verify_note",
]

ALG_ED25519 = 0x01
"""Signature type byte of plain Ed25519 note signatures (signed-note)."""
ALG_COSIGNATURE_V1 = 0x04
"""Signature type byte of timestamped Ed25519 witness cosignatures (tlog-cosignature)."""

MAX_SIGNATURES = 100
"""Most signature lines a parsed note may carry (the spec requires accepting 16)."""
MAX_NOTE_BYTES = 1 << 20
"""Largest note accepted by :func:`parse_note`, in bytes."""

_SIG_PREFIX = "\u2014 "
_SIG_BYTES = 64
_COSIG_BYTES = 8 + _SIG_BYTES
_MAX_TIMESTAMP = 2**63 - 1
_ALGS = (ALG_ED25519, ALG_COSIGNATURE_V1)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile(r"[0-9a-f]{8}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_valid_key_name(name: str) -> bool:
    """Whether ``name`` may be a key name: non-empty, no Unicode space, no ``+``."""
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() or c < " " or "\ud800" <= c <= "\udfff" for c in name)
    )


def key_id(name: str, key_type: int, public_key: bytes) -> int:
    """Return the C2SP key ID: ``SHA-256(name || 0x0A || type || public key)[:4]`` as an integer."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def cosignature_message(timestamp: int, text: str) -> bytes:
    """Return what a tlog-cosignature/v1 signs: the header, the time line, then the note text."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A note verifier: a name, a signature type and a 32-byte Ed25519 public key."""

    name: str
    """The key name (for a log, its origin; for a witness, its name)."""
    public_key: bytes
    """The 32-byte Ed25519 public key."""
    key_type: int = ALG_ED25519
    """:data:`ALG_ED25519` or :data:`ALG_COSIGNATURE_V1`."""
    key_id: int = field(init=False, compare=False)
    """The key ID signature lines carry, derived from the other fields."""

    def __post_init__(self) -> None:
        _check_key_fields(self.name, self.key_type, self.public_key, "public key")
        object.__setattr__(self, "key_id", key_id(self.name, self.key_type, self.public_key))

    def is_valid(self, text: str, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID) is this key's signature of ``text``; never raises."""
        message = text.encode()
        if self.key_type == ALG_COSIGNATURE_V1:
            if len(signature) != _COSIG_BYTES:
                return False
            timestamp = int.from_bytes(signature[:8], "big")
            if timestamp > _MAX_TIMESTAMP:
                return False
            message = cosignature_message(timestamp, text)
            signature = signature[8:]
        if len(signature) != _SIG_BYTES:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True, slots=True)
class SignerKey:
    """A note signer: a name, a signature type and a 32-byte Ed25519 seed."""

    name: str
    """The key name."""
    seed: bytes = field(repr=False)
    """The 32-byte Ed25519 seed (secret)."""
    key_type: int = ALG_ED25519
    """:data:`ALG_ED25519` or :data:`ALG_COSIGNATURE_V1`."""
    verifier: VerifierKey = field(init=False, compare=False)
    """The matching verifier key."""

    def __post_init__(self) -> None:
        _check_key_fields(self.name, self.key_type, self.seed, "seed")
        public = (
            Ed25519PrivateKey.from_private_bytes(self.seed)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        object.__setattr__(self, "verifier", VerifierKey(self.name, public, self.key_type))

    @property
    def key_id(self) -> int:
        """The key ID of the matching verifier key."""
        return self.verifier.key_id


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, key ID and the signature bytes after the ID."""

    name: str
    """The key name."""
    key_id: int
    """The 32-bit key ID."""
    signature: bytes
    """The signature (for cosignatures: the 8-byte timestamp then the Ed25519 signature)."""

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise FormatError(f"note signature: invalid key name {self.name[:80]!r}")
        if not 0 <= self.key_id < 2**32:
            raise FormatError(f"note signature: key ID out of range: {self.key_id}")
        if not self.signature:
            raise FormatError(f"note signature by {self.name[:80]!r}: empty signature")

    def line(self) -> str:
        """Render the signature line, with its final newline."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A note: its text (ending in a newline) and its signatures, verified or not."""

    text: str
    """The signed text, including its final newline."""
    signatures: tuple[NoteSignature, ...] = ()
    """The signature lines, in order."""

    def __post_init__(self) -> None:
        _check_text(self.text)


def parse_note(data: bytes | str) -> Note:
    """Parse a signed note without checking any signature.

    Raises:
        FormatError: not a well-formed signed note (see the module docstring).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > MAX_NOTE_BYTES:
        raise FormatError(f"note: {len(raw)} bytes exceeds the limit of {MAX_NOTE_BYTES}")
    try:
        msg = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError("note: not valid UTF-8") from e
    if _CONTROL.search(msg):
        raise FormatError("note: contains a control character other than newline")
    if not msg.endswith("\n"):
        raise FormatError("note: does not end with a newline")
    split = msg.rfind("\n\n")
    if split < 0:
        raise FormatError("note: no blank line between the text and the signatures")
    text, sigs = msg[: split + 1], msg[split + 2 :]
    lines = sigs.split("\n")[:-1]
    if not lines:
        raise FormatError("note: no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(f"note: {len(lines)} signatures exceeds the limit of {MAX_SIGNATURES}")
    return Note(text, tuple(_parse_signature_line(i + 1, line) for i, line in enumerate(lines)))


def format_note(note: Note) -> bytes:
    """Render a note: text, blank line, signature lines.

    Raises:
        FormatError: the note has no signatures.
    """
    if not note.signatures:
        raise FormatError("note: cannot format a note without signatures")
    return (note.text + "\n" + "".join(s.line() for s in note.signatures)).encode()


def signature_for(text: str, signer: SignerKey, *, timestamp: int | None = None) -> NoteSignature:
    """Sign ``text`` with ``signer``.

    Args:
        text: the note text.
        signer: the key; a cosignature key (:data:`ALG_COSIGNATURE_V1`) needs ``timestamp``.
        timestamp: POSIX seconds for cosignatures (the caller's clock); not allowed otherwise.

    Raises:
        FormatError: the text is not note text, or the timestamp is missing, out of
            range, or given for a plain Ed25519 key.
    """
    _check_text(text)
    private = Ed25519PrivateKey.from_private_bytes(signer.seed)
    if signer.key_type == ALG_ED25519:
        if timestamp is not None:
            raise FormatError(f"note signer {signer.name!r}: a timestamp is only for cosignatures")
        return NoteSignature(signer.name, signer.key_id, private.sign(text.encode()))
    if timestamp is None or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise FormatError(f"cosigner {signer.name!r}: needs a timestamp in [0, 2**63), got {timestamp}")
    sig = private.sign(cosignature_message(timestamp, text))
    return NoteSignature(signer.name, signer.key_id, timestamp.to_bytes(8, "big") + sig)


def add_signatures(note: Note, signatures: Sequence[NoteSignature]) -> Note:
    """Append signatures; an existing signature by the same (name, key ID) is replaced."""
    new = {(s.name, s.key_id) for s in signatures}
    kept = tuple(s for s in note.signatures if (s.name, s.key_id) not in new)
    return Note(note.text, kept + tuple(signatures))


def sign_note(note: Note | str, signers: Sequence[SignerKey], *, timestamp: int | None = None) -> Note:
    """Sign a note (or bare text) with each signer; see :func:`signature_for` for ``timestamp``.

    Raises:
        FormatError: as :func:`signature_for`.
    """
    base = Note(note) if isinstance(note, str) else note
    return add_signatures(base, [signature_for(base.text, s, timestamp=timestamp) for s in signers])


def verify_note(note: Note, known: Sequence[VerifierKey]) -> tuple[NoteSignature, ...]:
    """Check a note's signatures against known keys and return the verified ones.

    Signatures whose (name, key ID) match no known key are ignored.

    Raises:
        VerificationError: a signature by a known key does not verify, or none
            of the known keys signed the note.
    """
    by_id = {(k.name, k.key_id): k for k in known}
    verified = []
    for sig in note.signatures:
        key = by_id.get((sig.name, sig.key_id))
        if key is None:
            continue
        if not key.is_valid(note.text, sig.signature):
            raise VerificationError(f"note: the signature by {sig.name!r} ({sig.key_id:08x}) does not verify")
        verified.append(sig)
    if not verified:
        names = ", ".join(sorted(f"{k.name}+{k.key_id:08x}" for k in known)) or "none"
        raise VerificationError(f"note: not signed by any known key (known: {names})")
    return tuple(verified)


def open_note(data: bytes | str, known: Sequence[VerifierKey]) -> Note:
    """Parse a note and verify it (:func:`parse_note` then :func:`verify_note`).

    Raises:
        FormatError: not a well-formed note.
        VerificationError: as :func:`verify_note`.
    """
    note = parse_note(data)
    verify_note(note, known)
    return note


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse ``<name>+<hex key ID>+<base64(type || public key)>``.

    Raises:
        FormatError: malformed, an unsupported type, or a key ID that does not match.
    """
    name, kid, key_type, material = _parse_key_text(text, "verifier key")
    key = VerifierKey(name, material, key_type)
    _check_id(key.key_id, kid, "verifier key", name)
    return key


def format_verifier_key(key: VerifierKey) -> str:
    """Render ``<name>+<hex key ID>+<base64(type || public key)>``."""
    blob = base64.b64encode(bytes([key.key_type]) + key.public_key).decode("ascii")
    return f"{key.name}+{key.key_id:08x}+{blob}"


def parse_signer_key(text: str) -> SignerKey:
    """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>``.

    Raises:
        FormatError: malformed, an unsupported type, or a key ID that does not
            match the key derived from the seed.
    """
    prefix = "PRIVATE+KEY+"
    if not text.startswith(prefix):
        raise FormatError("signer key: must start with PRIVATE+KEY+")
    name, kid, key_type, material = _parse_key_text(text[len(prefix) :], "signer key")
    key = SignerKey(name, material, key_type)
    _check_id(key.key_id, kid, "signer key", name)
    return key


def format_signer_key(key: SignerKey) -> str:
    """Render ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>`` (secret: handle with care)."""
    blob = base64.b64encode(bytes([key.key_type]) + key.seed).decode("ascii")
    return f"PRIVATE+KEY+{key.name}+{key.key_id:08x}+{blob}"


def _check_key_fields(name: str, key_type: int, material: bytes, what: str) -> None:
    if not is_valid_key_name(name):
        raise FormatError(f"note key: invalid key name {name[:80]!r}")
    if key_type not in _ALGS:
        raise FormatError(f"note key {name!r}: unsupported signature type 0x{key_type:02x}")
    if len(material) != 32:
        raise FormatError(f"note key {name!r}: expected a 32-byte {what}, got {len(material)} bytes")


def _check_id(derived: int, stated: int, what: str, name: str) -> None:
    if derived != stated:
        raise FormatError(f"{what} {name!r}: key ID {stated:08x} does not match the key ({derived:08x})")


def _parse_key_text(text: str, what: str) -> tuple[str, int, int, bytes]:
    # NOTE: the base64 part may itself contain "+", so split at most twice.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise FormatError(f"{what}: expected <name>+<key ID>+<key>")
    name, kid, blob = parts
    if not is_valid_key_name(name):
        raise FormatError(f"{what}: invalid key name {name[:80]!r}")
    if not _HEX8.fullmatch(kid):
        raise FormatError(f"{what} {name!r}: key ID must be 8 lowercase hex digits, got {kid[:20]!r}")
    raw = _b64decode(blob)
    if raw is None or len(raw) != 33:
        raise FormatError(f"{what} {name!r}: key must be base64 of a type byte and 32 bytes")
    return name, int(kid, 16), raw[0], raw[1:]


def _parse_signature_line(number: int, line: str) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise FormatError(f"note signature line {number}: must start with an em dash and a space")
    name, space, blob = line[len(_SIG_PREFIX) :].partition(" ")
    if not space or not is_valid_key_name(name):
        raise FormatError(f"note signature line {number}: expected '— <key name> <base64>'")
    raw = _b64decode(blob)
    if raw is None or len(raw) < 5:
        raise FormatError(f"note signature line {number}: signature must be base64 of more than 4 bytes")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def _b64decode(text: str) -> bytes | None:
    """Decode strict, canonical standard base64; None if it is not."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise FormatError("note text: must end with a newline")
    if _CONTROL.search(text):
        raise FormatError("note text: contains a control character other than newline")
    if _SURROGATE.search(text):
        raise FormatError("note text: not valid Unicode (lone surrogate)")
