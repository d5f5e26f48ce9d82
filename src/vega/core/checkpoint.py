r"""C2SP checkpoints: a log's signed tree head as a note, witness cosignatures and k-of-n policy.

The note text of a checkpoint (c2sp.org/tlog-checkpoint)::

    example.com/behind-the-sofa                     origin: the log's identity
    20852163                                        tree size, decimal, no leading zeroes
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=    root hash, base64 of 32 bytes
    <extension lines, optional, non-empty>

The log signs it as a signed note (Ed25519, ``vega.core.note``); witnesses add
tlog-cosignature/v1 signatures (type 0x04: an 8-byte timestamp and an Ed25519
signature over ``"cosignature/v1\ntime <t>\n" || text``). A client accepts a
checkpoint when the log's signature verifies and at least ``k`` of its ``n``
configured witnesses cosigned it (:func:`verify_witness_policy`).

Spec: c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature, c2sp.org/signed-note.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from vega.core.merkle import HASH_SIZE
from vega.core.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Note,
    NoteSignature,
    SignerKey,
    VerifierKey,
    parse_note,
    sign_note,
    verify_note,
)
from vega.errors import ConfigError, FormatError, VerificationError

__all__ = [
    "Checkpoint",
    "cosign_checkpoint",
    "cosignature_timestamp",
    "format_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
    "verify_witness_policy",
]

_SIZE = re.compile(r"0|[1-9][0-9]*")
_BAD_LINE = re.compile("[\x00-\x1f\ud800-\udfff]")
_MAX_SIZE_DIGITS = 20


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, size and root hash, with optional extension lines."""

    origin: str
    """The log's identity, e.g. ``vega.example/log``; non-empty, one line."""
    size: int
    """The number of leaves."""
    root_hash: bytes
    """The RFC 9162 root of the tree of ``size`` leaves (32 bytes)."""
    extensions: tuple[str, ...] = ()
    """Opaque extension lines (not recommended by the spec); each non-empty, one line."""

    def __post_init__(self) -> None:
        _check_line("origin", self.origin)
        if type(self.size) is not int or self.size < 0:
            raise FormatError(f"checkpoint: size must be a non-negative integer, got {self.size!r}")
        if len(self.root_hash) != HASH_SIZE:
            raise FormatError("checkpoint: root hash must be 32 bytes")
        for i, line in enumerate(self.extensions):
            _check_line(f"extension line {i + 1}", line)


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """Render the checkpoint's note text (with its final newline)."""
    lines = (
        checkpoint.origin,
        str(checkpoint.size),
        base64.b64encode(checkpoint.root_hash).decode("ascii"),
        *checkpoint.extensions,
    )
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint's note text (not a whole signed note: see :func:`open_checkpoint`).

    Raises:
        FormatError: not a checkpoint body.
    """
    if not text.endswith("\n"):
        raise FormatError("checkpoint: text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError(f"checkpoint: expected at least 3 lines, got {len(lines)}")
    origin, size_text, root_text, *extensions = lines
    if len(size_text) > _MAX_SIZE_DIGITS or not _SIZE.fullmatch(size_text):
        raise FormatError(
            f"checkpoint: size must be a decimal with no leading zeroes, got {size_text[:40]!r}"
        )
    try:
        root = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as e:
        raise FormatError(f"checkpoint: root hash is not base64: {root_text[:60]!r}") from e
    if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != root_text:
        raise FormatError(f"checkpoint: root hash must be base64 of 32 bytes, got {root_text[:60]!r}")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: SignerKey) -> Note:
    """Sign a checkpoint as the log; ``vega.core.note.format_note`` renders the result.

    Raises:
        FormatError: ``signer`` is not a plain Ed25519 key.
    """
    if signer.key_type != ALG_ED25519:
        raise FormatError(f"checkpoint: the log key {signer.name!r} must be an Ed25519 (type 0x01) key")
    return sign_note(format_checkpoint(checkpoint), [signer])


def open_checkpoint(
    data: bytes | str, log_key: VerifierKey, *, origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Parse a signed checkpoint and verify the log's signature and origin.

    Args:
        data: the signed note, as served at ``<prefix>/checkpoint``.
        log_key: the log's verifier key.
        origin: the expected origin line; defaults to the log key's name.

    Returns:
        The checkpoint and the note (whose other signatures, e.g. cosignatures,
        are not yet verified: see :func:`verify_witness_policy`).

    Raises:
        FormatError: not a signed note, or its text is not a checkpoint.
        VerificationError: the log's signature is missing or invalid, or the
            origin is not the expected one.
    """
    note = parse_note(data)
    verify_note(note, [log_key])
    checkpoint = parse_checkpoint(note.text)
    want = log_key.name if origin is None else origin
    if checkpoint.origin != want:
        raise VerificationError(f"checkpoint: origin {checkpoint.origin[:80]!r} is not the expected {want!r}")
    return checkpoint, note


def cosign_checkpoint(note: Note, cosigner: SignerKey, timestamp: int) -> Note:
    """Add (or replace) a witness cosignature made at ``timestamp`` (POSIX seconds).

    Raises:
        FormatError: the note's text is not a checkpoint, the key is not a
            cosignature (type 0x04) key, or the timestamp is out of range.
    """
    parse_checkpoint(note.text)
    if cosigner.key_type != ALG_COSIGNATURE_V1:
        raise FormatError(f"cosigner {cosigner.name!r}: not a cosignature (type 0x04) key")
    return sign_note(note, [cosigner], timestamp=timestamp)


def cosignature_timestamp(signature: NoteSignature) -> int:
    """Return the POSIX timestamp of a tlog-cosignature/v1 signature.

    Raises:
        FormatError: the signature is not 8 + 64 bytes long.
    """
    if len(signature.signature) != 72:
        raise FormatError(
            f"cosignature by {signature.name!r}: expected 72 bytes, got {len(signature.signature)}"
        )
    return int.from_bytes(signature.signature[:8], "big")


def verify_witness_policy(note: Note, witnesses: Sequence[VerifierKey], k: int) -> tuple[NoteSignature, ...]:
    """Require valid cosignatures from at least ``k`` distinct witnesses of ``witnesses``.

    Signatures by keys that are not among ``witnesses`` are ignored.

    Returns:
        The verified cosignatures, one per witness that cosigned.

    Raises:
        ConfigError: ``k`` is not between 1 and the number of distinct witnesses.
        VerificationError: a configured witness's signature does not verify, or
            fewer than ``k`` witnesses cosigned.
    """
    distinct = list({(w.name, w.key_id): w for w in witnesses}.values())
    if not 1 <= k <= len(distinct):
        raise ConfigError(f"witness policy: k must be between 1 and {len(distinct)} witnesses, got {k}")
    signed = []
    for witness in distinct:
        mine = [s for s in note.signatures if (s.name, s.key_id) == (witness.name, witness.key_id)]
        for sig in mine:
            if not witness.is_valid(note.text, sig.signature):
                raise VerificationError(
                    f"checkpoint: the cosignature by witness {witness.name!r} ({witness.key_id:08x}) "
                    "does not verify"
                )
        signed.extend(mine[:1])
    if len(signed) < k:
        raise VerificationError(
            f"checkpoint: cosigned by {len(signed)} of {len(distinct)} witnesses, the policy requires {k}"
        )
    return tuple(signed)


def _check_line(what: str, line: str) -> None:
    if not line or _BAD_LINE.search(line):
        raise FormatError(
            f"checkpoint: {what} must be one non-empty line without control characters or lone surrogates"
        )
