"""The owner credential file: strict and lenient loads, atomic private writes, removal.

File: ``<config dir>/credential`` (see :func:`vega.client.settings.config_dir`), pretty-printed
JSON (2-space indent) and a trailing newline::

    {"credential": "...", "login": "...", "userId": "...", "expiresAt": <ms>, "url": "<normalised>"}

Written atomically (a new 0600 file in the same directory, fsync, rename), in a directory of
mode 0700, then ``chmod 0600`` explicitly. The GitHub token is never written anywhere.

Several control planes (issue 12): every login also keeps a copy in
``<config dir>/credentials/<host>-<digest>.json``, one per control-plane URL, so logging in to a
second server keeps the first. ``credential`` stays the one the original reads: the last login.
:func:`credential_for` picks the credential of a given control plane (``--url``).

Spec: cli.md §1.5 (texts verbatim); issue 5 (atomic, 0600 in 0700); issue 12 (several servers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from vega.client.settings import normalise_url
from vega.errors import ConfigError

__all__ = [
    "Credential",
    "all_credentials",
    "credential_for",
    "forget_credential",
    "format_expiry_date",
    "load_credential",
    "load_credential_lenient",
    "remember_credential",
    "remove_credential",
    "save_credential",
    "stored_path",
]

_LOGIN = ("vega login",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Credential:
    """One stored owner credential."""

    credential: str = field(repr=False)
    """The opaque owner credential (a bearer secret)."""
    login: str
    """GitHub login."""
    user_id: str
    """GitHub numeric user id, decimal string."""
    expires_at_ms: int | None
    """Expiry in epoch milliseconds; None (or 0) means the file names none."""
    url: str
    """Normalised control-plane URL that issued it."""

    @property
    def namespace(self) -> str:
        """``owner:<userId>``."""
        return f"owner:{self.user_id}"

    def is_expired(self, now_ms: int) -> bool:
        """``expiresAt`` truthy and before ``now_ms`` (cli.md §1.5)."""
        return bool(self.expires_at_ms) and self.expires_at_ms is not None and self.expires_at_ms < now_ms

    def to_json(self) -> dict[str, object]:
        """The file's JSON object, keys in the spec's order."""
        return {
            "credential": self.credential,
            "login": self.login,
            "userId": self.user_id,
            "expiresAt": self.expires_at_ms,
            "url": self.url,
        }


def format_expiry_date(ms: int | None) -> str:
    """``YYYY-MM-DD`` (UTC) of an epoch-millisecond time, or ``never``."""
    if not ms:
        return "never"
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return "unknown"


def _read(path: Path) -> Credential | None:
    """Parse the file; None when it is not a credential (missing files raise FileNotFoundError)."""
    raw = path.read_bytes()
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    credential, url = obj.get("credential"), obj.get("url")
    if not isinstance(credential, str) or not isinstance(url, str):
        return None
    login, user_id, expires = obj.get("login"), obj.get("userId"), obj.get("expiresAt")
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        expires = None
    return Credential(
        credential=credential,
        login=login if isinstance(login, str) else "",
        user_id=str(user_id) if isinstance(user_id, str | int) and not isinstance(user_id, bool) else "",
        expires_at_ms=int(expires) if expires is not None else None,
        url=url,
    )


def load_credential(path: Path, now_ms: int) -> Credential:
    """Strict load (commands that need auth), with the URL normalised.

    Raises:
        ConfigError: ``not enrolled: this machine has no Vega credential.``,
            ``malformed credential at <path>.``, the URL rule's message, or
            ``credential expired <YYYY-MM-DD>.`` (each but the URL rule with ``Try: vega login``).
    """
    try:
        cred = _read(path)
    except FileNotFoundError:
        raise ConfigError("not enrolled: this machine has no Vega credential.", next_steps=_LOGIN) from None
    except OSError as e:
        raise ConfigError(f"cannot read credential at {path}: {e.strerror}", next_steps=_LOGIN) from e
    if cred is None:
        raise ConfigError(f"malformed credential at {path}.", next_steps=_LOGIN)
    url = normalise_url(cred.url)
    if cred.is_expired(now_ms):
        raise ConfigError(f"credential expired {format_expiry_date(cred.expires_at_ms)}.", next_steps=_LOGIN)
    return Credential(
        credential=cred.credential,
        login=cred.login,
        user_id=cred.user_id,
        expires_at_ms=cred.expires_at_ms,
        url=url,
    )


def load_credential_lenient(path: Path) -> Credential | None:
    """Lenient load (status): None when missing, unreadable, malformed or its URL is invalid.

    Expiry is not checked here; callers use :meth:`Credential.is_expired`.
    """
    try:
        cred = _read(path)
    except OSError:
        return None
    if cred is None:
        return None
    try:
        url = normalise_url(cred.url)
    except ConfigError:
        return None
    return Credential(
        credential=cred.credential,
        login=cred.login,
        user_id=cred.user_id,
        expires_at_ms=cred.expires_at_ms,
        url=url,
    )


def save_credential(path: Path, cred: Credential) -> None:
    """Write ``cred`` atomically with mode 0600 in a directory of mode 0700.

    Raises:
        ConfigError: the file could not be written.
    """
    data = (json.dumps(cred.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        os.chmod(path, 0o600)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConfigError(f"cannot write credential at {path}: {e.strerror or e}") from e


def remove_credential(path: Path) -> bool:
    """Delete the credential file; False when there was none.

    Raises:
        ConfigError: it exists but could not be removed.
    """
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise ConfigError(f"cannot remove credential at {path}: {e.strerror or e}") from e
    return True


def stored_path(config_dir: Path, url: str) -> Path:
    """Where the credential of the control plane at (normalised) ``url`` is kept."""
    host = "".join(c if c.isalnum() or c in ".-" else "_" for c in (urlsplit(url).hostname or "host"))
    digest = hashlib.sha256(url.rstrip("/").encode("utf-8")).hexdigest()[:16]
    return config_dir / "credentials" / f"{host[:64]}-{digest}.json"


def remember_credential(config_dir: Path, cred: Credential) -> Path:
    """Save ``cred`` as its control plane's credential and as the current one; return the latter.

    Raises:
        ConfigError: a file could not be written.
    """
    save_credential(stored_path(config_dir, cred.url), cred)
    current = config_dir / "credential"
    save_credential(current, cred)
    return current


def credential_for(config_dir: Path, url: str | None, now_ms: int) -> Credential:
    """The credential for the control plane at ``url`` (strict), or the current one when None.

    Raises:
        ConfigError: not enrolled with that control plane, or the texts of :func:`load_credential`.
    """
    current = config_dir / "credential"
    if url is None:
        return load_credential(current, now_ms)
    url = normalise_url(url)
    mine = stored_path(config_dir, url)
    if mine.exists():
        return load_credential(mine, now_ms)
    cred = load_credential_lenient(current)
    if cred is not None and cred.url == url:
        return load_credential(current, now_ms)
    raise ConfigError(
        f"not enrolled with {url}: this machine has no credential for it.",
        next_steps=[
            f"vega login --url {url}",
            "vega whoami --all   (the control planes you are enrolled with)",
        ],
    )


def all_credentials(config_dir: Path) -> list[Credential]:
    """Every readable credential (the current one first, then by URL), duplicates removed."""
    found: dict[str, Credential] = {}
    current = load_credential_lenient(config_dir / "credential")
    if current is not None:
        found[current.url] = current
    store = config_dir / "credentials"
    paths = sorted(store.glob("*.json")) if store.is_dir() else []
    for path in paths:
        cred = load_credential_lenient(path)
        if cred is not None and cred.url not in found:
            found[cred.url] = cred
    return list(found.values())


def forget_credential(config_dir: Path, url: str | None) -> bool:
    """Remove the credential of ``url`` (the current one when None); False when there was none.

    The current file goes too when it is that control plane's (or unreadable, with no ``url``).

    Raises:
        ConfigError: a file exists but could not be removed.
    """
    current = config_dir / "credential"
    cred = load_credential_lenient(current)
    target = normalise_url(url) if url is not None else (cred.url if cred is not None else None)
    removed = False
    if target is not None:
        removed |= remove_credential(stored_path(config_dir, target))
    if url is None or (cred is not None and cred.url == target):
        removed |= remove_credential(current)
    return removed
