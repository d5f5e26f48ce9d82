r"""Narinfo: a binary cache's description of one store path, and its signature fingerprint.

Line-oriented ``Key: value`` records, each ended by ``\n``, in the order Nix
writes them (what ``nix copy --to file://…`` produces)::

    StorePath: /nix/store/bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top
    URL: nar/16ngagifvqhaqpna0iqw06cvbqfwkicr4174rw89r0a1cpj1m78s.nar.zst
    Compression: zstd
    FileHash: sha256:16ngagifvqhaqpna0iqw06cvbqfwkicr4174rw89r0a1cpj1m78s
    FileSize: 226
    NarHash: sha256:0pvaq3wd8k5if5fkskycwi6f8hmbnjd2w15svggdnhmfwhz6ynd4
    NarSize: 576
    References: bgj4cnpq2171av33avlvh81xaknd9zw4-sigexp-top ypn9maq8xyyd2x8izylmrg2m3nmzvi0n-sigexp-dep
    Deriver: f5nzml3j2sr2nf8idrq9j351f117v0xk-sigexp-top.drv
    Sig: test-1:DE4jvxutMaMipMxbD7EjaIJFB7ogGl/FpO4XiunCYu6FOEhEFRzFGCZsdPim/cSYnxwR+eHp+qAWBoHAf9nPCQ==
    CA: fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h

``References`` is always written (``References: `` with its trailing space
when empty); ``Deriver``, ``Sig`` (repeatable) and ``CA`` are optional; ``CA``
comes last, after the signatures, as Nix writes it. Unknown lines are kept
verbatim and written after everything else.

Only the fingerprint ``1;<StorePath>;<NarHash>;<NarSize>;<sorted full
references joined by ",">`` is signed (§2.5): :class:`SignedFields` holds
exactly what it covers; everything else in :class:`NarInfo` (URL, compression,
file hash and size, deriver, CA, unknown lines) is an unsigned hint of the
cache. NOTE: Nix's fingerprint does not cover ``CA`` either; a
content-addressed path is checked by its address, not by a signature.

Strict in what we write, liberal in what we read: :func:`parse_narinfo` takes
every narinfo Nix 2.x accepts, as Nix reads it (``NarInfo::NarInfo`` in
nar-info.cc), so that what ``vega verify`` checks is what Nix would install:

* ``NarHash`` and ``FileHash`` in any encoding Nix reads: ``sha256:`` with
  Nix base-32, base-16 (Cachix writes it) or base-64, and SRI ``sha256-…``;
  the fingerprint always renders the hash in Nix base-32, as Nix does. A
  ``FileHash`` may name another algorithm (it is an unsigned hint); a
  ``NarHash`` must be SHA-256 (the only one Nix writes, and the only one a
  NAR can be re-hashed with here);
* ``Compression`` missing or empty means ``bzip2`` (Nix's default);
  ``FileHash`` and ``FileSize`` may be missing (None);
* ``Deriver: unknown-deriver`` (and an empty ``Deriver``) means no deriver;
* a repeated key: the last one counts, as in Nix; ``References`` may repeat
  only while the earlier ones were empty, ``CA`` only while empty ("extra
  References"/"extra CA" in Nix); a reference repeated within the list counts
  once (Nix keeps a set);
* unknown keys are kept verbatim in :attr:`NarInfo.extra_lines` and ignored.

What Nix refuses is refused (no ``StorePath``, ``URL`` or ``NarHash``, a bad
store path, a bad hash or size), each with the line number. Nix also refuses a
zero ``NarSize`` and a last line without ``\n``; those are accepted here.
:func:`format_narinfo` writes only Nix's canonical form (SHA-256 in
``sha256:<nix32>``, every field present).

Spec: protocol.md §2.4 (format), §2.5 (fingerprint).
Upstream: Nix src/libstore/nar-info.cc, path-info.cc (``fingerprint``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from vega.core import signing
from vega.core.hashes import HashAlgorithm, NixHash, format_nix_hash, parse_nix_hash
from vega.core.signing import PublicKey, SecretKey
from vega.core.storepath import STORE_DIR, StorePath, parse_store_path
from vega.errors import FormatError, VerificationError

__all__ = [
    "DEFAULT_COMPRESSION",
    "MAX_NARINFO_BYTES",
    "UNKNOWN_DERIVER",
    "NarInfo",
    "SignedFields",
    "fingerprint",
    "format_narinfo",
    "parse_narinfo",
    "sign_narinfo",
    "verify_narinfo_signature",
]

MAX_NARINFO_BYTES = 4 << 20
"""Default cap on a narinfo's size (tens of thousands of references fit)."""

_MAX_SIZE = 2**64 - 1  # Nix keeps sizes in uint64_t
_DECIMAL = re.compile(r"[0-9]{1,64}")
_PREFIXED_HASH = re.compile(r"[a-z0-9]+[:-]")
DEFAULT_COMPRESSION = "bzip2"
"""What a narinfo without ``Compression`` means (Nix: nar-info.cc)."""
UNKNOWN_DERIVER = "unknown-deriver"
"""The ``Deriver`` value old Nix versions wrote for "no deriver"."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_WHITESPACE = re.compile(r"[\t\n\v\f\r ]+")
_SINGLE_KEYS = (
    "StorePath",
    "URL",
    "Compression",
    "FileHash",
    "FileSize",
    "NarHash",
    "NarSize",
    "References",
    "Deriver",
    "CA",
)
_KNOWN_KEYS = frozenset((*_SINGLE_KEYS, "Sig"))
_REQUIRED = ("StorePath", "URL", "NarHash", "NarSize")


def _quote(value: str) -> str:
    return json.dumps(value[:120], ensure_ascii=False)


def _check_size(value: object, what: str) -> None:
    if type(value) is not int or not 0 <= value <= _MAX_SIZE:
        raise FormatError(f"{what} must be an integer from 0 to 2^64-1, got {value!r}")


def _check_hash(value: object, what: str, *, any_algorithm: bool = False) -> None:
    if not isinstance(value, NixHash) or not (any_algorithm or value.algorithm is HashAlgorithm.SHA256):
        raise FormatError(f"{what} must be a sha256 NixHash, got {value!r}")


def _check_text(value: object, what: str, *, allow_empty: bool) -> str:
    if not isinstance(value, str) or not (allow_empty or value):
        raise FormatError(f"{what} must be a {'' if allow_empty else 'non-empty '}string, got {value!r}")
    return value


def _check_tuple(value: object, what: str) -> tuple[object, ...]:
    if not isinstance(value, tuple):
        raise FormatError(f"{what} must be a tuple, got {type(value).__name__}")
    return value


def _split_line(line: str) -> tuple[str, str]:
    """§2.4: split at the first ": "; else a trailing ":" ends the key; else the line is the key."""
    key, sep, value = line.partition(": ")
    if sep:
        return key, value
    if line.endswith(":"):
        return line[:-1], ""
    return line, ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedFields:
    """What a narinfo signature covers (§2.5): path, NAR hash and size, references."""

    store_path: StorePath
    """The store path described."""
    nar_hash: NixHash
    """SHA-256 of the uncompressed NAR."""
    nar_size: int
    """Bytes in the uncompressed NAR."""
    references: tuple[StorePath, ...]
    """The paths it refers to, in the order written (Nix writes them sorted); no repeats."""

    def __post_init__(self) -> None:
        if not isinstance(self.store_path, StorePath):
            raise FormatError(f"store_path must be a StorePath, got {self.store_path!r}")
        _check_hash(self.nar_hash, "nar_hash")
        _check_size(self.nar_size, "nar_size")
        for ref in _check_tuple(self.references, "references"):
            if not isinstance(ref, StorePath):
                raise FormatError(f"references must hold StorePath values, got {ref!r}")
        if len(set(self.references)) != len(self.references):
            raise FormatError("references must not repeat a path")


@dataclass(frozen=True, slots=True, kw_only=True)
class NarInfo:
    """One narinfo: the signed fields apart from the cache's unsigned hints."""

    signed: SignedFields
    """The fields the fingerprint covers."""
    url: str
    """Where the (compressed) NAR is, relative to the cache root."""
    compression: str
    """``none``, ``xz``, ``zstd``, ``bzip2``, ``br``, …"""
    file_hash: NixHash | None
    """Hash of the file at ``url`` (SHA-256 in what Vega writes); None when the cache omits it."""
    file_size: int | None
    """Bytes in the file at ``url``; None when the cache omits it."""
    deriver: StorePath | None = None
    """The ``.drv`` that built it, when known."""
    ca: str | None = None
    """The content address (``fixed:r:sha256:…``, ``text:sha256:…``), when content-addressed."""
    sigs: tuple[str, ...] = ()
    """The ``Sig`` values, ``<keyname>:<base64>``, in order."""
    extra_lines: tuple[str, ...] = ()
    """Lines with keys this module does not know, verbatim, in order."""

    def __post_init__(self) -> None:
        if not isinstance(self.signed, SignedFields):
            raise FormatError(f"signed must be SignedFields, got {self.signed!r}")
        _check_text(self.url, "url", allow_empty=False)
        _check_text(self.compression, "compression", allow_empty=False)
        if self.file_hash is not None:
            _check_hash(self.file_hash, "file_hash", any_algorithm=True)
        if self.file_size is not None:
            _check_size(self.file_size, "file_size")
        if self.deriver is not None and not isinstance(self.deriver, StorePath):
            raise FormatError(f"deriver must be a StorePath or None, got {self.deriver!r}")
        if self.ca is not None:
            _check_text(self.ca, "ca", allow_empty=False)
        for sig in _check_tuple(self.sigs, "sigs"):
            _check_text(sig, "each of sigs", allow_empty=True)
        for line in _check_tuple(self.extra_lines, "extra_lines"):
            text = _check_text(line, "each of extra_lines", allow_empty=False)
            if "\n" in text or _split_line(text)[0] in _KNOWN_KEYS:
                raise FormatError(f"extra line {_quote(text)} is not an unknown-key line")

    @property
    def store_path(self) -> StorePath:
        """The store path described (signed)."""
        return self.signed.store_path

    @property
    def nar_hash(self) -> NixHash:
        """SHA-256 of the uncompressed NAR (signed)."""
        return self.signed.nar_hash

    @property
    def nar_size(self) -> int:
        """Bytes in the uncompressed NAR (signed)."""
        return self.signed.nar_size

    @property
    def references(self) -> tuple[StorePath, ...]:
        """The paths it refers to (signed)."""
        return self.signed.references


def _to_text(data: str | bytes, max_bytes: int) -> str:
    if isinstance(data, bytes):
        raw = data
        if len(raw) > max_bytes:
            raise FormatError(f"narinfo is larger than {max_bytes} bytes")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"narinfo is not UTF-8 (byte {e.start})") from None
    if len(data) > max_bytes:
        raise FormatError(f"narinfo is larger than {max_bytes} bytes")
    try:
        size = len(data.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise FormatError(f"narinfo is not encodable as UTF-8 (character {e.start})") from None
    if size > max_bytes:
        raise FormatError(f"narinfo is larger than {max_bytes} bytes")
    return data


def parse_narinfo(data: str | bytes, *, max_bytes: int = MAX_NARINFO_BYTES) -> NarInfo:
    r"""Parse a narinfo as Nix 2.x reads it (§2.4; see the module docstring for the rules).

    Lines are split on ``\n`` only (a CR stays in the value), empty lines are
    skipped, ``Sig`` may repeat, unknown lines are kept in :attr:`NarInfo.extra_lines`.

    Args:
        data: The narinfo text, or its UTF-8 bytes.
        max_bytes: Refuse larger input.

    Returns:
        The narinfo.

    Raises:
        FormatError: ``data`` is not a valid narinfo; the message names the line.
    """
    text = _to_text(data, max_bytes)
    fields: dict[str, tuple[int, str]] = {}
    sigs: list[str] = []
    extra: list[str] = []
    references: list[StorePath] = []
    ca: str | None = None
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        key, value = _split_line(line)
        where = f"narinfo line {lineno}: {key}"
        if key == "Sig":
            sigs.append(value)
        elif key == "References":
            # Nix: a second non-empty References is "extra References"; an empty one adds nothing.
            if references and value.strip(" "):
                raise FormatError(f"{where}: a second References list")
            for token in _ASCII_WHITESPACE.split(value):
                ref = _path_of(where, token, absolute=False) if token else None
                if ref is not None and ref not in references:  # Nix keeps a set
                    references.append(ref)
        elif key == "CA":
            if ca is not None and value:
                raise FormatError(f"{where}: a second CA")
            ca = ca or value or None
        elif key in _SINGLE_KEYS:
            fields[key] = (lineno, value)  # Nix: the last one counts
        else:
            extra.append(line)
    for key in _REQUIRED:
        if key not in fields:
            raise FormatError(f"narinfo: missing {key}")

    def field(key: str) -> tuple[str, str]:
        lineno, value = fields[key]
        return f"narinfo line {lineno}: {key}", value

    def size_of(key: str) -> int:
        where, value = field(key)
        if not _DECIMAL.fullmatch(value) or int(value) > _MAX_SIZE:
            raise FormatError(f"{where} must be a non-negative integer, got {_quote(value)}")
        return int(value)

    def hash_of(key: str, algorithm: HashAlgorithm | None) -> NixHash:
        where, value = field(key)
        try:
            if not _PREFIXED_HASH.match(value):
                raise FormatError("no algorithm prefix")
            return parse_nix_hash(value, algorithm)
        except FormatError:
            want = "a sha256 hash" if algorithm else "a hash"
            raise FormatError(
                f"{where} must be {want} (sha256:<nix32|base16|base64> or sha256-<base64>), "
                f"got {_quote(value)}"
            ) from None

    where, value = field("URL")
    if not value:
        raise FormatError(f"{where} must not be empty")
    url = value
    where, value = field("StorePath")
    store_path = _path_of(where, value, absolute=True)
    deriver = None
    if "Deriver" in fields and field("Deriver")[1] not in ("", UNKNOWN_DERIVER):
        deriver = _path_of(*field("Deriver"), absolute=False)
    signed = SignedFields(
        store_path=store_path,
        nar_hash=hash_of("NarHash", HashAlgorithm.SHA256),
        nar_size=size_of("NarSize"),
        references=tuple(references),
    )
    return NarInfo(
        signed=signed,
        url=url,
        compression=fields.get("Compression", (0, ""))[1] or DEFAULT_COMPRESSION,
        file_hash=hash_of("FileHash", None) if "FileHash" in fields else None,
        file_size=size_of("FileSize") if "FileSize" in fields else None,
        deriver=deriver,
        ca=ca,
        sigs=tuple(sigs),
        extra_lines=tuple(extra),
    )


def _path_of(where: str, value: str, *, absolute: bool) -> StorePath:
    if absolute != value.startswith(STORE_DIR + "/"):
        form = "an absolute store path" if absolute else "a store path base name"
        raise FormatError(f"{where} must be {form}, got {_quote(value)}")
    try:
        return parse_store_path(value)
    except FormatError as e:
        raise FormatError(f"{where}: {e.message}") from None


def format_narinfo(info: NarInfo) -> str:
    r"""Render in Nix's order (§2.4), ``\n`` after every line.

    Raises:
        FormatError: a value holds a C0 control character or DEL, or the file hash
            (SHA-256) or size is missing.
    """
    sp = info.signed
    if info.file_hash is None or info.file_hash.algorithm is not HashAlgorithm.SHA256:
        raise FormatError("narinfo: refusing to write without a sha256 FileHash")
    if info.file_size is None:
        raise FormatError("narinfo: refusing to write without a FileSize")
    lines = [
        f"StorePath: {sp.store_path.absolute}",
        f"URL: {info.url}",
        f"Compression: {info.compression}",
        f"FileHash: {format_nix_hash(info.file_hash)}",
        f"FileSize: {info.file_size}",
        f"NarHash: {format_nix_hash(sp.nar_hash)}",
        f"NarSize: {sp.nar_size}",
        # Store-path names hold no whitespace (StorePath checks Nix's name rule).
        "References: " + " ".join(str(ref) for ref in sp.references),
    ]
    if info.deriver is not None:
        lines.append(f"Deriver: {info.deriver}")
    lines.extend(f"Sig: {sig}" for sig in info.sigs)
    if info.ca is not None:
        lines.append(f"CA: {info.ca}")
    lines.extend(info.extra_lines)
    for line in lines:
        if _CONTROL.search(line):
            raise FormatError(f"narinfo: refusing to write a control character in {_quote(line)}")
    return "".join(line + "\n" for line in lines)


def fingerprint(info: NarInfo | SignedFields) -> str:
    """The text a narinfo signature signs (§2.5), as Nix computes it.

    ``1;<StorePath>;<NarHash>;<NarSize>;<refs>`` where refs are full paths,
    sorted, joined by ``,``; with no references the text ends in ``;``.
    """
    sp = info.signed if isinstance(info, NarInfo) else info
    # NOTE: sorted full paths, whatever order the narinfo lists them in (§2.5).
    refs = ",".join(sorted(ref.absolute for ref in sp.references))
    return f"1;{sp.store_path.absolute};{format_nix_hash(sp.nar_hash)};{sp.nar_size};{refs}"


def verify_narinfo_signature(info: NarInfo, keys: Mapping[str, PublicKey]) -> str:
    """Check that some ``Sig`` of ``info`` verifies under one of ``keys`` (§2.5).

    Args:
        info: The narinfo.
        keys: Trusted public keys by key name.

    Returns:
        The name of the first key whose signature verifies.

    Raises:
        VerificationError: no signature verifies; the message says whether there
            was none, none by a trusted key, or which trusted key's did not verify.
    """
    message = fingerprint(info).encode("utf-8")
    failed: list[str] = []
    for sig in info.sigs:
        name = sig.partition(":")[0]
        key = keys.get(name)
        if key is None:
            continue
        if signing.is_valid_signature(key, message, sig):
            return name
        failed.append(name)
    path = info.store_path.absolute
    if failed:
        raise VerificationError(f"{path}: signature by {', '.join(failed)} does not verify")
    if not info.sigs:
        raise VerificationError(f"{path}: narinfo has no signatures")
    signers = ", ".join(sorted({s.partition(":")[0][:60] for s in info.sigs}))
    trusted = ", ".join(sorted(keys)) or "none"
    raise VerificationError(
        f"{path}: no signature by a trusted key (signed by {signers}; trusted: {trusted})"
    )


def sign_narinfo(info: NarInfo, secret: SecretKey) -> NarInfo:
    """Add ``secret``'s signature of the fingerprint as a ``Sig`` (unchanged if already there)."""
    sig = signing.sign(secret, fingerprint(info).encode("utf-8"))
    if sig in info.sigs:
        return info
    return replace(info, sigs=(*info.sigs, sig))
