"""Control-plane JSON messages, in both directions, with ``from_json``/``to_json`` beside each.

Untrusted JSON arrives as ``object`` and is narrowed by hand; every failure is
a FormatError naming the JSON path (``"fileSize: expected a non-negative
integer"``). Unknown fields are ignored. Field names stay in the wire
spelling only inside these functions.

Spec: protocol.md §4 (write API, error body), §6 (status, keys), §7.2 (the
decision inside AttestResult); docs/server-api.md for the endpoints this
implementation adds (``/api/info``, ``/api/repro/queue``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from vega.core import nixbase32
from vega.core.hashes import HashAlgorithm, NixHash
from vega.core.jsonfields import expect_bool as _bool
from vega.core.jsonfields import expect_list as _list
from vega.core.jsonfields import expect_object as _object
from vega.core.jsonfields import expect_optional_str as _opt_str
from vega.core.jsonfields import expect_size as _size
from vega.core.jsonfields import expect_str as _str
from vega.core.promotion import PromotionDecision
from vega.core.storepath import StorePath, parse_store_path
from vega.errors import FormatError

__all__ = [
    "DISPATCH_REASONS",
    "FAILURE_CLASSES",
    "MAX_EXCERPT_BYTES",
    "VERDICTS",
    "AttestBody",
    "AttestResult",
    "DispatchFailedBody",
    "ErrorBody",
    "FailureClass",
    "InfoResponse",
    "KeyResponse",
    "PushResult",
    "ReproCandidate",
    "ReproQueueResponse",
    "StatusResponse",
    "UploadUrlRequest",
    "UploadUrlResponse",
    "Verdict",
    "is_safe_attr",
    "is_safe_dir",
    "nar_url_for",
    "parse_nar_url",
    "parse_sha256",
]

_NIX32 = "[0123456789abcdfghijklmnpqrsvwxyz]"
_SHA256 = re.compile(rf"sha256:{_NIX32}{{52}}")
_NAR_URL = re.compile(rf"nar/({_NIX32}{{52}})\.nar\.zst")
_ATTR = re.compile(r"[A-Za-z0-9_+-]+(\.[A-Za-z0-9_+-]+)*(\^(\*|[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*))?")
_DIR = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9][A-Za-z0-9._-]{0,99}|owner:[0-9]+")
_SUBSTITUTER = re.compile(r"/[A-Za-z0-9._:/-]+")
_HASH_PART = re.compile(rf"{_NIX32}{{32}}")

Verdict = Literal["reproducible", "diverged", "uncorroborated", "mirrored", "unknown"]
VERDICTS: tuple[Verdict, ...] = ("reproducible", "diverged", "uncorroborated", "mirrored", "unknown")
"""Every ``verdict`` of ``/api/status`` (§6.1)."""
DispatchReason = Literal["unresolvable", "build-failed"]
DISPATCH_REASONS: tuple[DispatchReason, ...] = ("unresolvable", "build-failed")
"""Every ``reason`` of ``/api/repro/dispatch-failed`` (§4.5)."""
FailureClass = Literal[
    "impure-host-path", "sandbox-denied", "network", "out-of-space", "timeout", "eval", "other"
]
FAILURE_CLASSES: tuple[FailureClass, ...] = (
    "impure-host-path",
    "sandbox-denied",
    "network",
    "out-of-space",
    "timeout",
    "eval",
    "other",
)
"""Every ``diagnosis`` of a failed reproduction (changes-0.19.md, last section)."""
MAX_EXCERPT_BYTES = 2048
"""Largest ``excerpt`` of a failure report, in UTF-8 bytes."""


def parse_sha256(text: str, path: str) -> NixHash:
    """Parse ``sha256:<52 nix32>``, the only hash form of the write API.

    Raises:
        FormatError: any other text, naming ``path``.
    """
    if not _SHA256.fullmatch(text):
        raise FormatError(f"{path}: expected sha256:<52 Nix base-32 characters>, got {text[:80]!r}")
    try:
        return NixHash(HashAlgorithm.SHA256, nixbase32.decode(text[7:]))
    except FormatError:
        raise FormatError(f"{path}: not a valid Nix base-32 digest: {text[:80]!r}") from None


def is_safe_attr(attr: str) -> bool:
    """The attr sanitiser (§4.2): 1-255 characters of the published flake-attribute grammar."""
    return 1 <= len(attr) <= 255 and _ATTR.fullmatch(attr) is not None


def is_safe_dir(dir_: str) -> bool:
    """The sub-flake dir sanitiser (§4.2): relative, 1-255 characters, no ``.`` or ``..`` segment."""
    return (
        1 <= len(dir_) <= 255 and _DIR.fullmatch(dir_) is not None and not {".", ".."} & set(dir_.split("/"))
    )


def nar_url_for(file_hash: NixHash) -> str:
    """The content-addressed object key ``nar/<nix32>.nar.zst`` of a compressed NAR."""
    return f"nar/{file_hash.nix32}.nar.zst"


def parse_nar_url(text: str, path: str = "narUrl") -> NixHash:
    """The file hash named by ``nar/<nix32>.nar.zst``.

    Raises:
        FormatError: not of that form.
    """
    match = _NAR_URL.fullmatch(text)
    if match is None:
        raise FormatError(f"{path}: expected nar/<52 Nix base-32 characters>.nar.zst, got {text[:80]!r}")
    return parse_sha256(f"sha256:{match.group(1)}", path)


def _base_name(text: str, path: str) -> StorePath:
    if text.startswith("/"):
        raise FormatError(f"{path}: expected a store path base name, got {text[:80]!r}")
    try:
        return parse_store_path(text)
    except FormatError as e:
        raise FormatError(f"{path}: {e.message}") from None


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """``{"error": "<message>"}`` on every non-2xx response (§4.0)."""

    error: str
    """The message."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"error": self.error}

    @classmethod
    def from_json(cls, obj: object) -> ErrorBody:
        """Read an error body. Raises FormatError."""
        return cls(_str(_object(obj), "error"))


@dataclass(frozen=True, slots=True)
class UploadUrlRequest:
    """``POST /api/cache/upload-url`` body (§4.1); ``narUrl`` must name ``fileHash``."""

    file_hash: NixHash
    """SHA-256 of the compressed NAR."""

    @property
    def nar_url(self) -> str:
        """The object key."""
        return nar_url_for(self.file_hash)

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"narUrl": self.nar_url, "fileHash": str(self.file_hash)}

    @classmethod
    def from_json(cls, obj: object) -> UploadUrlRequest:
        """Read and check the body. Raises FormatError."""
        body = _object(obj)
        from_url = parse_nar_url(_str(body, "narUrl"))
        file_hash = parse_sha256(_str(body, "fileHash"), "fileHash")
        if from_url != file_hash:
            raise FormatError("narUrl: does not name fileHash (objects are content-addressed)")
        return cls(file_hash)


@dataclass(frozen=True, slots=True)
class UploadUrlResponse:
    """``{"url": ...}``: where to PUT the bytes (§4.1)."""

    url: str
    """Absolute URL."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"url": self.url}

    @classmethod
    def from_json(cls, obj: object) -> UploadUrlResponse:
        """Read the response. Raises FormatError."""
        url = _str(_object(obj), "url")
        if not url.startswith(("http://", "https://")):
            raise FormatError("url: expected an absolute http(s) URL")
        return cls(url)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestBody:
    """The body of ``/api/cache/attest`` and ``/api/cache/push`` (§4.2)."""

    store_path: StorePath
    """The output."""
    file_hash: NixHash
    """SHA-256 of the compressed NAR; also names the object."""
    file_size: int
    """Bytes of the compressed NAR."""
    nar_hash: NixHash
    """SHA-256 of the NAR."""
    nar_size: int
    """Bytes of the NAR."""
    references: tuple[StorePath, ...]
    """References, order as sent."""
    deriver: StorePath | None = None
    """The ``.drv``, when known."""
    attr: str | None = None
    """Flake attribute (top-level outputs only)."""
    dir: str | None = None
    """Sub-flake directory (only with ``attr``)."""
    no_continent: bool = False
    """The builder opted out of continent publication."""
    compression: str = "zstd"
    """Always ``zstd``."""

    def __post_init__(self) -> None:
        if self.nar_hash.algorithm is not HashAlgorithm.SHA256 or self.file_hash.algorithm is not (
            HashAlgorithm.SHA256
        ):
            raise FormatError("fileHash and narHash must be sha256")
        if self.attr is not None and not is_safe_attr(self.attr):
            raise FormatError(f"attr: not a flake attribute: {self.attr[:80]!r}")
        if self.dir is not None:
            if self.attr is None:
                raise FormatError("dir: only allowed together with attr")
            if not is_safe_dir(self.dir):
                raise FormatError(f"dir: not a relative sub-flake directory: {self.dir[:80]!r}")
        if self.deriver is not None and not self.deriver.name.endswith(".drv"):
            raise FormatError(f"deriver: expected a .drv base name, got {str(self.deriver)[:80]!r}")
        if self.compression != "zstd":
            raise FormatError(f'compression: expected "zstd", got {self.compression[:20]!r}')

    @property
    def url(self) -> str:
        """The object key ``nar/<nix32>.nar.zst``."""
        return nar_url_for(self.file_hash)

    def to_json(self) -> dict[str, object]:
        """The wire form, omitting absent optional fields as the client does."""
        out: dict[str, object] = {
            "storePath": self.store_path.absolute,
            "url": self.url,
            "compression": self.compression,
            "fileHash": str(self.file_hash),
            "fileSize": self.file_size,
            "narHash": str(self.nar_hash),
            "narSize": self.nar_size,
            "references": [str(r) for r in self.references],
        }
        if self.deriver is not None:
            out["deriver"] = str(self.deriver)
        if self.attr is not None:
            out["attr"] = self.attr
        if self.dir is not None:
            out["dir"] = self.dir
        if self.no_continent:
            out["noContinent"] = True
        return out

    @classmethod
    def from_json(cls, obj: object) -> AttestBody:
        """Read and check every field. Raises FormatError naming the field."""
        body = _object(obj)
        store_text = _str(body, "storePath")
        if not store_text.startswith("/nix/store/"):
            raise FormatError(f"storePath: expected /nix/store/<hash>-<name>, got {store_text[:80]!r}")
        try:
            store_path = parse_store_path(store_text)
        except FormatError as e:
            raise FormatError(f"storePath: {e.message}") from None
        compression = _str(body, "compression")
        file_hash = parse_sha256(_str(body, "fileHash"), "fileHash")
        if parse_nar_url(_str(body, "url"), "url") != file_hash:
            raise FormatError("url: does not name fileHash (objects are content-addressed)")
        references = tuple(
            _base_name(r if isinstance(r, str) else "", f"references[{i}]")
            for i, r in enumerate(_list(body, "references"))
        )
        deriver = _opt_str(body, "deriver")
        no_continent = body.get("noContinent")
        if no_continent is not None and not isinstance(no_continent, bool):
            raise FormatError("noContinent: expected true or false")
        return cls(
            store_path=store_path,
            compression=compression,
            file_hash=file_hash,
            file_size=_size(body, "fileSize"),
            nar_hash=parse_sha256(_str(body, "narHash"), "narHash"),
            nar_size=_size(body, "narSize"),
            references=references,
            deriver=None if deriver is None else _base_name(deriver, "deriver"),
            attr=_opt_str(body, "attr"),
            dir=_opt_str(body, "dir"),
            no_continent=bool(no_continent),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestResult:
    """``/api/cache/attest`` response (§4.3)."""

    decision: PromotionDecision
    """The promotion decision after this attestation."""
    published_tenant: bool
    """Signed into the tenant namespace."""
    published_shared: bool
    """Signed into the shared tier."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {
            "decision": self.decision.to_json(),
            "publishedTenant": self.published_tenant,
            "publishedShared": self.published_shared,
        }

    @classmethod
    def from_json(cls, obj: object) -> AttestResult:
        """Read the response. Raises FormatError."""
        body = _object(obj)
        return cls(
            decision=PromotionDecision.from_json(body.get("decision")),
            published_tenant=_bool(body, "publishedTenant"),
            published_shared=_bool(body, "publishedShared"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PushResult:
    """``/api/cache/push`` response (§4.4)."""

    published: bool
    """Signed into the owner namespace."""
    tenant: str
    """``owner:<userId>``."""
    substituter: str
    """Server-relative base, ``/tenant/owner:<userId>``."""

    def __post_init__(self) -> None:
        if not _SUBSTITUTER.fullmatch(self.substituter):
            raise FormatError(f"substituter: expected a server-relative path, got {self.substituter[:80]!r}")

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"published": self.published, "tenant": self.tenant, "substituter": self.substituter}

    @classmethod
    def from_json(cls, obj: object) -> PushResult:
        """Read the response. Raises FormatError."""
        body = _object(obj)
        return cls(
            published=_bool(body, "published"),
            tenant=_str(body, "tenant"),
            substituter=_str(body, "substituter"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusResponse:
    """``GET /api/status/<hash>`` (§6.1)."""

    verdict: Verdict
    """The reproducibility verdict."""
    agree: int
    """Agreeing builders."""
    in_shared_cache: bool
    """Promoted into the shared tier."""
    tenants: tuple[str, ...]
    """Tenants that published it."""
    diverged: bool = False
    """More than one fingerprint was attested (a Vega extension; clients that do not know it
    ignore it). Dissent never blocks a reproduced output, so it is shown here instead."""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise FormatError(f"verdict: expected one of {', '.join(VERDICTS)}, got {self.verdict!r}")
        for i, t in enumerate(self.tenants):
            if not _TENANT.fullmatch(t):
                raise FormatError(f"tenants[{i}]: not a tenant: {t[:80]!r}")

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {
            "verdict": self.verdict,
            "agree": self.agree,
            "inSharedCache": self.in_shared_cache,
            "tenants": list(self.tenants),
            "diverged": self.diverged,
        }

    @classmethod
    def from_json(cls, obj: object) -> StatusResponse:
        """Read the response strictly. Raises FormatError."""
        body = _object(obj)
        verdict = _str(body, "verdict")
        if verdict not in VERDICTS:
            raise FormatError(f"verdict: expected one of {', '.join(VERDICTS)}, got {verdict[:40]!r}")
        tenants = _list(body, "tenants")
        return cls(
            verdict=verdict,
            agree=_size(body, "agree"),
            in_shared_cache=_bool(body, "inSharedCache"),
            tenants=tuple(t if isinstance(t, str) else "" for t in tenants),
            diverged=body.get("diverged") is True,
        )


@dataclass(frozen=True, slots=True)
class KeyResponse:
    """``GET <tenant-base>/key`` (§6.2)."""

    public_key: str
    """``<name>:<base64>``."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"publicKey": self.public_key}

    @classmethod
    def from_json(cls, obj: object) -> KeyResponse:
        """Read the response. Raises FormatError."""
        return cls(_str(_object(obj), "publicKey"))


@dataclass(frozen=True, slots=True)
class DispatchFailedBody:
    """``POST /api/repro/dispatch-failed`` body (§4.5), with the optional diagnosis (0.19)."""

    hash: str
    """The candidate's store-path hash."""
    reason: DispatchReason
    """``unresolvable`` or ``build-failed``."""
    diagnosis: FailureClass | None = None
    """The failure's class (changes-0.19.md), when the reproducer classified it."""
    excerpt: str | None = None
    """A redacted excerpt of the failure's log, at most :data:`MAX_EXCERPT_BYTES` UTF-8 bytes."""

    def to_json(self) -> dict[str, object]:
        """The wire form (``diagnosis``/``excerpt`` only when present)."""
        out: dict[str, object] = {"hash": self.hash, "reason": self.reason}
        if self.diagnosis is not None:
            out["diagnosis"] = self.diagnosis
        if self.excerpt is not None:
            out["excerpt"] = self.excerpt
        return out

    @classmethod
    def from_json(cls, obj: object) -> DispatchFailedBody:
        """Read and check the body. Raises FormatError."""
        body = _object(obj)
        hash_part = _str(body, "hash")
        if not _HASH_PART.fullmatch(hash_part):
            raise FormatError(f"hash: expected a 32-character store-path hash, got {hash_part[:80]!r}")
        reason = _str(body, "reason")
        if reason not in DISPATCH_REASONS:
            raise FormatError(f"reason: expected unresolvable or build-failed, got {reason[:40]!r}")
        diagnosis = _opt_str(body, "diagnosis")
        if diagnosis is not None and diagnosis not in FAILURE_CLASSES:
            raise FormatError(
                f"diagnosis: expected one of {', '.join(FAILURE_CLASSES)}, got {diagnosis[:40]!r}"
            )
        excerpt = _opt_str(body, "excerpt")
        if excerpt is not None and len(excerpt.encode("utf-8")) > MAX_EXCERPT_BYTES:
            raise FormatError(f"excerpt: longer than {MAX_EXCERPT_BYTES} bytes")
        return cls(hash_part, reason, diagnosis, excerpt)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReproCandidate:
    """One output awaiting independent reproduction (docs/server-api.md)."""

    hash: str
    """Store-path hash (pass it as ``VEGA_HASH``)."""
    store_path: str
    """``/nix/store/<hash>-<name>``."""
    nar_hash: str
    """The leading attested ``sha256:<nix32>``."""
    flake_ref: str
    """``github:<owner>/<repo>``."""
    attr: str
    """Flake attribute."""
    rev: str
    """Commit."""
    dir: str | None
    """Sub-flake directory."""
    since_ms: int
    """When it was queued."""
    attempts: int
    """Reported build failures so far."""

    def to_json(self) -> dict[str, object]:
        """The wire form (``dir`` is ``""`` when absent, as the workflow input expects)."""
        return {
            "hash": self.hash,
            "storePath": self.store_path,
            "narHash": self.nar_hash,
            "flakeRef": self.flake_ref,
            "attr": self.attr,
            "rev": self.rev,
            "dir": self.dir or "",
            "since": self.since_ms,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, obj: object, path: str = "") -> ReproCandidate:
        """Read one candidate. Raises FormatError."""
        body = _object(obj, path or "body")
        return cls(
            hash=_str(body, "hash", path=path),
            store_path=_str(body, "storePath", path=path),
            nar_hash=_str(body, "narHash", path=path),
            flake_ref=_str(body, "flakeRef", path=path),
            attr=_str(body, "attr", path=path),
            rev=_str(body, "rev", path=path),
            dir=_opt_str(body, "dir", path=path) or None,
            since_ms=_size(body, "since", path=path),
            attempts=_size(body, "attempts", path=path),
        )


@dataclass(frozen=True, slots=True)
class ReproQueueResponse:
    """``GET /api/repro/queue``: candidates, oldest first."""

    candidates: tuple[ReproCandidate, ...]
    """The queue."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {"candidates": [c.to_json() for c in self.candidates]}

    @classmethod
    def from_json(cls, obj: object) -> ReproQueueResponse:
        """Read the response. Raises FormatError."""
        items = _list(_object(obj), "candidates")
        return cls(tuple(ReproCandidate.from_json(c, f"candidates[{i}].") for i, c in enumerate(items)))


@dataclass(frozen=True, slots=True, kw_only=True)
class InfoResponse:
    """``GET /api/info``: what a client needs to configure itself (docs/server-api.md)."""

    version: str
    """Server version."""
    shared_key: str
    """The shared narinfo public key."""
    log_origin: str
    """The transparency log's origin line."""
    log_key: str
    """The log's public key (checkpoint signatures)."""
    github_url: str
    """GitHub web base URL for the device flow."""
    github_api_url: str
    """GitHub API base URL."""
    github_client_id: str
    """The GitHub App client id for ``vega login``."""
    capabilities: tuple[str, ...]
    """Optional endpoints this server has."""

    def to_json(self) -> dict[str, object]:
        """The wire form."""
        return {
            "version": self.version,
            "sharedKey": self.shared_key,
            "log": {"origin": self.log_origin, "publicKey": self.log_key},
            "github": {
                "url": self.github_url,
                "apiUrl": self.github_api_url,
                "clientId": self.github_client_id,
            },
            "capabilities": list(self.capabilities),
        }

    @classmethod
    def from_json(cls, obj: object) -> InfoResponse:
        """Read the response. Raises FormatError."""
        body = _object(obj)
        log = _object(body.get("log"), "log")
        github = _object(body.get("github"), "github")
        caps = _list(body, "capabilities")
        return cls(
            version=_str(body, "version"),
            shared_key=_str(body, "sharedKey"),
            log_origin=_str(log, "origin", path="log."),
            log_key=_str(log, "publicKey", path="log."),
            github_url=_str(github, "url", path="github."),
            github_api_url=_str(github, "apiUrl", path="github."),
            github_client_id=_str(github, "clientId", path="github."),
            capabilities=tuple(
                c if isinstance(c, str) else _str({}, f"capabilities[{i}]") for i, c in enumerate(caps)
            ),
        )
