"""Owner credentials: short-lived tokens signed by the enrolment key, and their revocation.

Format (opaque to clients, protocol.md §4.6)::

    v1.<base64url(payload JSON)>.<base64url(Ed25519 signature)>

``payload`` is ``{"v":1,"sub":"<GitHub user id>","login":"<login>","iat":<ms>,"exp":<ms>,
"jti":"<32 hex>"}`` (times in epoch milliseconds, like every ``*At`` of the protocol). The
signature is by the enrolment key ``vega-enroll-1`` (derived from the master key, protocol.md
§2.6) over ``b"vega-owner-credential-v1:" + <payload part>``; base64url has no padding. The
signature is checked before the payload is parsed. A credential is accepted until ``exp`` unless
its ``jti`` is in the revocation table (component ``identity`` of the server database).

Spec: protocol.md §1 (owner credential, namespace ``owner:<userId>``), §2.6, §4.6; issue 4.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from vega.core.signing import SecretKey, enroll_key, is_valid_signature, sign
from vega.errors import AuthError, FormatError
from vega.server.db import Database, Migration

__all__ = [
    "MIGRATIONS",
    "CredentialIssuer",
    "OwnerCredential",
    "OwnerIdentity",
]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "identity",
        1,
        (
            "CREATE TABLE identity_revoked_credentials ("
            " jti TEXT PRIMARY KEY,"
            " user_id TEXT NOT NULL,"
            " expires_at_ms {bigint} NOT NULL,"
            " revoked_at_ms {bigint} NOT NULL)",
        ),
    ),
)
"""The identity component's schema (apply with ``Database.migrate``)."""

_PREFIX = "v1"
_CONTEXT = b"vega-owner-credential-v1:"
_MAX_CHARS = 2048
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_USER_ID = re.compile(r"[1-9][0-9]{0,19}")
_JTI = re.compile(r"[0-9a-f]{32}")
_ISSUED_LEEWAY_MS = 60_000


def _reject(message: str) -> AuthError:
    return AuthError(message, status=401, error=message)


@dataclass(frozen=True, slots=True)
class OwnerIdentity:
    """The verified owner behind a credential."""

    user_id: str
    """Immutable numeric GitHub user id, decimal string."""
    login: str
    """GitHub login at enrolment time (display only; ids are what bind)."""

    @property
    def namespace(self) -> str:
        """The owner namespace ``owner:<userId>`` (protocol.md §1)."""
        return f"owner:{self.user_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerCredential:
    """The signed contents of one owner credential."""

    user_id: str
    """``sub``: the GitHub user id."""
    login: str
    """The GitHub login."""
    issued_at_ms: int
    """``iat`` in epoch milliseconds."""
    expires_at_ms: int
    """``exp`` in epoch milliseconds."""
    jti: str
    """Unique id, 32 lower-case hex characters; what revocation names."""

    def __post_init__(self) -> None:
        if not _USER_ID.fullmatch(self.user_id):
            raise FormatError("owner credential: sub must be a positive decimal id")
        if not _JTI.fullmatch(self.jti):
            raise FormatError("owner credential: jti must be 32 hex characters")
        if self.expires_at_ms <= self.issued_at_ms:
            raise FormatError("owner credential: exp must be after iat")

    def to_json(self) -> dict[str, object]:
        """The payload object."""
        return {
            "v": 1,
            "sub": self.user_id,
            "login": self.login,
            "iat": self.issued_at_ms,
            "exp": self.expires_at_ms,
            "jti": self.jti,
        }

    @classmethod
    def from_json(cls, obj: object) -> OwnerCredential:
        """Parse a payload object.

        Raises:
            FormatError: a field is missing or has the wrong type.
        """
        if not isinstance(obj, dict) or obj.get("v") != 1:
            raise FormatError("owner credential: unknown payload version")
        sub, login, iat, exp, jti = (obj.get(k) for k in ("sub", "login", "iat", "exp", "jti"))
        if not (isinstance(sub, str) and isinstance(login, str) and isinstance(jti, str)):
            raise FormatError("owner credential: sub, login and jti must be strings")
        if (
            not (isinstance(iat, int) and isinstance(exp, int))
            or isinstance(iat, bool)
            or isinstance(exp, bool)
        ):
            raise FormatError("owner credential: iat and exp must be integers")
        return cls(user_id=sub, login=login, issued_at_ms=iat, expires_at_ms=exp, jti=jti)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise FormatError("owner credential: not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise FormatError("owner credential: not base64url") from e
    if _b64url(data) != text:
        raise FormatError("owner credential: non-canonical base64url")
    return data


class CredentialIssuer:
    """Issues, verifies and revokes owner credentials.

    Args:
        master: the master secret key; the enrolment key is derived from it (§2.6).
        db: the server database; the ``identity`` migrations are applied here.
        now: clock, epoch seconds.
        ttl_s: lifetime of a new credential.
    """

    def __init__(
        self,
        master: SecretKey,
        db: Database,
        now: Callable[[], float],
        *,
        ttl_s: int = 7 * 24 * 3600,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("credential lifetime must be positive")
        self._key = enroll_key(master)
        self._db = db
        self._now = now
        self.ttl_s = ttl_s
        """Lifetime of newly issued credentials, seconds."""
        db.migrate(MIGRATIONS)

    def issue(self, user_id: str, login: str) -> tuple[str, OwnerCredential]:
        """A new signed credential for ``user_id`` and its contents."""
        now_ms = int(self._now() * 1000)
        claims = OwnerCredential(
            user_id=user_id,
            login=login,
            issued_at_ms=now_ms,
            expires_at_ms=now_ms + self.ttl_s * 1000,
            jti=secrets.token_hex(16),
        )
        payload = _b64url(json.dumps(claims.to_json(), separators=(",", ":")).encode("utf-8"))
        _, _, sig_b64 = sign(self._key, _CONTEXT + payload.encode("ascii")).partition(":")
        return f"{_PREFIX}.{payload}.{_b64url(base64.b64decode(sig_b64))}", claims

    def parse(self, token: str) -> OwnerCredential:
        """Check the signature of ``token`` and return its contents (expiry not checked).

        Raises:
            AuthError: not a credential signed by this server's enrolment key.
        """
        if not token or len(token) > _MAX_CHARS or not token.isascii():
            raise _reject("owner credential is malformed")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _PREFIX:
            raise _reject("owner credential is malformed")
        try:
            signature = _unb64url(parts[2])
        except FormatError:
            raise _reject("owner credential is malformed") from None
        sig_text = f"{self._key.name}:{base64.b64encode(signature).decode('ascii')}"
        if not is_valid_signature(self._key.public, _CONTEXT + parts[1].encode("ascii"), sig_text):
            raise _reject("owner credential signature is invalid")
        try:
            return OwnerCredential.from_json(json.loads(_unb64url(parts[1]).decode("utf-8")))
        except (FormatError, UnicodeDecodeError, ValueError, RecursionError):
            raise _reject("owner credential is malformed") from None

    def verify(self, token: str) -> OwnerIdentity:
        """The owner a valid, unexpired, unrevoked credential names.

        A credential whose lifetime (``exp - iat``) is longer than :attr:`ttl_s`, or issued in
        the future, is refused: however it was signed, it is not one this configuration issues.

        Raises:
            AuthError: the credential is malformed, signed by another key, expired, revoked, or
                has an absurd lifetime.
        """
        claims = self.parse(token)
        now_ms = int(self._now() * 1000)
        if now_ms >= claims.expires_at_ms:
            raise _reject("owner credential has expired")
        if claims.expires_at_ms - claims.issued_at_ms > self.ttl_s * 1000:
            raise _reject(f"owner credential lifetime is longer than this server's {self.ttl_s} s")
        if claims.issued_at_ms > now_ms + _ISSUED_LEEWAY_MS:
            raise _reject("owner credential was issued in the future")
        with self._db.transaction(write=False) as tx:
            revoked = tx.fetchone("SELECT 1 FROM identity_revoked_credentials WHERE jti = ?", (claims.jti,))
        if revoked:
            raise _reject("owner credential has been revoked")
        return OwnerIdentity(user_id=claims.user_id, login=claims.login)

    def revoke(self, token: str) -> OwnerCredential:
        """Revoke ``token`` for good (idempotent); expired credentials may be revoked too.

        Raises:
            AuthError: the credential is not one this server signed.
        """
        claims = self.parse(token)
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO identity_revoked_credentials (jti, user_id, expires_at_ms, revoked_at_ms)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (jti) DO NOTHING",
                (claims.jti, claims.user_id, claims.expires_at_ms, int(self._now() * 1000)),
            )
        return claims
