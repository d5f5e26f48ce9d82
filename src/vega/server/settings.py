"""ServerSettings: defaults, then a TOML file, then ``VEGA_SERVER_*`` variables, then flags.

Secrets (the shared narinfo signing key, the log key, a database URL with a
password, the GitHub App's client secret) never come from the TOML file: only
from the environment (``VEGA_SERVER_SIGNING_KEY``, ``VEGA_SERVER_LOG_KEY``,
``VEGA_SERVER_DATABASE_URL``, ``VEGA_SERVER_GITHUB_CLIENT_SECRET``) or from a
file named by a ``*_FILE`` variable or by ``signing_key_file``/``log_key_file``/
``database_url_file``/``github_client_secret_file`` in the TOML.
With nothing configured, everything lives under the data directory:
``server.db`` (SQLite, WAL), ``nars/`` and ``keys/`` (created on first run by
``vega-server serve``).

A public URL whose host is not loopback must be https; development identity
mode (``dev``) refuses a non-loopback public URL unless ``dev_force`` is set.

Only this module (and ``__main__``) reads the environment; the merge itself is
the pure :func:`resolve_settings`.

Spec: house-style.md §4.7; issue 4 ("Running it").
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vega.errors import ConfigError
from vega.server.identity.oidc import parse_reproducer_workflows

__all__ = [
    "ServerSettings",
    "is_loopback_host",
    "load_settings",
    "read_secret",
    "resolve_settings",
]

GITHUB_CLIENT_ID = "Iv23liYWrhwLxxmY8iK3"
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """Everything ``vega-server`` needs, resolved once."""

    data_dir: Path
    """Root of the default database, NAR directory and key files."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8080
    """Port to listen on."""
    public_url: str = ""
    """The URL clients use (OIDC audience, upload URLs); defaults to ``http://host:port``."""
    database_url: str = ""
    """``sqlite:///...`` or ``postgresql://...``; defaults to ``<data_dir>/server.db``."""
    nar_dir: Path | None = None
    """Where NAR objects live; defaults to ``<data_dir>/nars``."""
    signing_key: str | None = field(default=None, repr=False)
    """The shared narinfo secret key text, when given inline (environment only)."""
    signing_key_file: Path | None = None
    """File holding the shared narinfo secret key; default ``<data_dir>/keys/shared.key``."""
    shared_key_name: str = "vega-cache-1"
    """Name of a freshly generated shared key."""
    log_key: str | None = field(default=None, repr=False)
    """The log's secret key text, when given inline (environment only)."""
    log_key_file: Path | None = None
    """File holding the log's secret key; default ``<data_dir>/keys/log.key``."""
    log_key_name: str = "vega-log-1"
    """Name of a freshly generated log key."""
    log_origin: str = ""
    """The log's checkpoint origin; defaults to ``<public host>/log``."""
    quorum: int = 2
    """Distinct owners that must agree for promotion."""
    min_reproductions: int = 1
    """Reproducer-lane matches required for promotion."""
    settling_s: int = 600
    """Seconds agreement must stand before promotion."""
    reproducer_workflows: tuple[str, ...] = ()
    """``owner/repo/.github/workflows/<file>.yml@<ref>`` entries whose runs count as reproductions.
    The ref is required (``refs/heads/<branch>``, ``refs/tags/<tag>``, ``refs/tags/<prefix>*`` or a
    full commit SHA); ``job_workflow_ref`` must match one exactly (docs/adr/0011)."""
    reproducer_self_hosted: tuple[str, ...] = ()
    """``owner/repo`` repositories whose self-hosted runners may reproduce; every other
    reproduction must run on a GitHub-hosted runner (``runner_environment``)."""
    oidc_issuers: tuple[str, ...] = (ACTIONS_ISSUER,)
    """Accepted OIDC issuers."""
    github_url: str = "https://github.com"
    """GitHub web base URL (device flow)."""
    github_api_url: str = "https://api.github.com"
    """GitHub API base URL (user lookup at enrolment)."""
    github_client_id: str = GITHUB_CLIENT_ID
    """The GitHub App client id clients use for ``vega login``."""
    github_client_secret: str | None = field(default=None, repr=False)
    """That app's client secret (environment or file only). When set, enrolment accepts only
    user tokens issued to that app (GitHub's "check a token" API); when unset, any user token
    of the user is accepted and ``serve`` warns loudly."""
    upload_url_ttl_s: int = 21600
    """Lifetime of a presigned upload URL (the production value, protocol.md §4.1)."""
    max_upload_bytes: int = 16 * 2**30
    """Largest compressed NAR accepted."""
    max_nar_bytes: int = 64 * 2**30
    """Largest uncompressed NAR accepted (decompression cap)."""
    max_json_bytes: int = 1 << 20
    """Largest JSON request body."""
    narinfo_max_age_s: int = 60
    """Cache lifetime of served narinfo files."""
    attest_path_burst: int = 16
    """Attestations one owner may make of one store path at once (then 429; ADR 0012)."""
    attest_path_per_hour: int = 16
    """Refill rate of ``attest_path_burst`` (0: no per-path limit)."""
    attest_owner_burst: int = 20_000
    """Attestations one owner may make at once, over all paths."""
    attest_owner_per_hour: int = 200_000
    """Refill rate of ``attest_owner_burst`` (0: no per-owner limit)."""
    orphan_retention_s: int = 7 * 24 * 3600
    """Age after which a NAR object nothing needs is deleted by the sweep; 0 keeps them all."""
    dev: bool = False
    """Development identity mode (loudly labelled; loopback only unless forced)."""
    dev_force: bool = False
    """Allow development mode on a non-loopback public URL."""
    # -- connection, worker and lifetime bounds (docs/adr/0013; docs/security/server.md) --
    http_read_timeout_s: int = 30
    """Drop a connection whose client sends nothing this long while a request (head or body) is awaited."""
    http_keep_alive_s: int = 5
    """Close an idle keep-alive connection after this long."""
    http_max_connections: int = 1000
    """Open connections and requests in progress at once; past it, 503 (uvicorn ``limit_concurrency``)."""
    worker_threads: int = 40
    """Threads doing blocking work (database, files, signing) for requests."""
    max_concurrent_uploads: int = 16
    """Presigned PUT bodies received at once (each also uses three threads of its own)."""
    upload_wait_s: int = 60
    """How long a PUT of an object waits for another PUT of the same object (then 503)."""
    credential_ttl_s: int = 7 * 24 * 3600
    """Lifetime of an owner credential; a credential claiming a longer one is refused."""
    oidc_max_token_lifetime_s: int = 3600
    """Longest ``exp - iat`` accepted on an OIDC token (GitHub's are minutes)."""

    def __post_init__(self) -> None:
        _check(self)
        _check_bounds(self)

    @property
    def resolved_public_url(self) -> str:
        """The public URL without a trailing slash."""
        return (self.public_url or f"http://{_url_host(self.host)}:{self.port}").rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        """The database URL."""
        return self.database_url or f"sqlite:///{self.data_dir / 'server.db'}"

    @property
    def resolved_nar_dir(self) -> Path:
        """The NAR directory."""
        return self.nar_dir or self.data_dir / "nars"

    @property
    def resolved_signing_key_file(self) -> Path:
        """Where the shared key is read from (and written on first run)."""
        return self.signing_key_file or self.data_dir / "keys" / "shared.key"

    @property
    def resolved_log_key_file(self) -> Path:
        """Where the log key is read from (and written on first run)."""
        return self.log_key_file or self.data_dir / "keys" / "log.key"

    @property
    def resolved_log_origin(self) -> str:
        """The log's origin line."""
        return self.log_origin or f"{urlsplit(self.resolved_public_url).netloc}/log"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def is_loopback_host(host: str) -> bool:
    """Whether a host name or address is loopback (``localhost``, 127/8, ``::1``)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(s: ServerSettings) -> None:
    url = urlsplit(s.resolved_public_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"public_url must be an absolute http(s) URL, got {s.public_url!r}")
    if url.query or url.fragment or url.username:
        raise ConfigError("public_url must not carry credentials, a query or a fragment")
    loopback = is_loopback_host(url.hostname)
    if not s.public_url and not is_loopback_host(s.host):
        raise ConfigError(
            f"listening on {s.host} needs the https URL clients will use (public_url)",
            next_steps=[
                "vega-server serve --host 0.0.0.0 --public-url https://cache.example.org "
                "(TLS terminated in front of vega-server; see docs/deployment.md)",
                "or keep the default --host 127.0.0.1",
            ],
        )
    if url.scheme != "https" and not loopback:
        raise ConfigError(
            f"public_url {s.resolved_public_url!r} is not loopback, so it must be https",
            next_steps=['set public_url = "https://..." (TLS in front of vega-server)'],
        )
    if s.dev and not (loopback and is_loopback_host(s.host)) and not s.dev_force:
        raise ConfigError(
            "development identity mode is for loopback only",
            next_steps=["use a loopback public_url, or set VEGA_SERVER_DEV_FORCE=1 knowingly"],
        )
    for name in ("port", "quorum", "upload_url_ttl_s", "max_upload_bytes", "max_nar_bytes", "max_json_bytes"):
        if int(getattr(s, name)) < (0 if name == "port" else 1):
            raise ConfigError(f"{name} must be positive, got {getattr(s, name)}")
    if s.min_reproductions < 1:
        raise ConfigError(
            f"min_reproductions must be at least 1, got {s.min_reproductions}: owners cost nothing, "
            "so agreement without an independent reproduction never promotes (docs/adr/0011)"
        )
    parse_reproducer_workflows(s.reproducer_workflows)
    for repository in s.reproducer_self_hosted:
        if not _REPOSITORY.fullmatch(repository):
            raise ConfigError(f"reproducer_self_hosted: {repository[:200]!r} is not owner/repo")
    for name in ("settling_s", "narinfo_max_age_s", "orphan_retention_s", *_RATE_LIMITS):
        if int(getattr(s, name)) < 0:
            raise ConfigError(f"{name} must be non-negative, got {getattr(s, name)}")
    if s.github_client_secret is not None and not s.github_client_secret.strip():
        raise ConfigError("github_client_secret is empty")
    if not 0 <= s.port <= 65535:
        raise ConfigError(f"port out of range: {s.port}")


_BOUNDS: dict[str, tuple[int, int]] = {  # setting: (least, most) accepted at start-up
    "http_read_timeout_s": (1, 3600),
    "http_keep_alive_s": (1, 3600),
    "http_max_connections": (1, 1_000_000),
    "worker_threads": (1, 10_000),
    "max_concurrent_uploads": (1, 10_000),
    "upload_wait_s": (0, 3600),
    "upload_url_ttl_s": (1, 7 * 24 * 3600),
    "credential_ttl_s": (60, 90 * 24 * 3600),
    "oidc_max_token_lifetime_s": (60, 24 * 3600),
    "settling_s": (0, 30 * 24 * 3600),
    "narinfo_max_age_s": (0, 7 * 24 * 3600),
}


def _check_bounds(s: ServerSettings) -> None:
    """Refuse limits and lifetimes outside sane ranges (an absurd TTL is a misconfiguration)."""
    for name, (least, most) in _BOUNDS.items():
        value = getattr(s, name)
        if not least <= value <= most:
            raise ConfigError(f"{name} must be from {least} to {most}, got {value}")


_SECRETS = {"signing_key", "log_key", "github_client_secret"}
_FIELDS = {f.name: f for f in fields(ServerSettings)}
_INTS = {"port", "quorum", "min_reproductions", "settling_s", "upload_url_ttl_s", "max_upload_bytes"} | {
    "max_nar_bytes",
    "max_json_bytes",
    "narinfo_max_age_s",
    "orphan_retention_s",
}
_INTS |= set(_BOUNDS)
_RATE_LIMITS = ("attest_path_burst", "attest_path_per_hour", "attest_owner_burst", "attest_owner_per_hour")
_INTS |= set(_RATE_LIMITS)
_BOOLS = {"dev", "dev_force"}
_SECRET_FILE_KEYS = {"database_url_file": "database_url", "github_client_secret_file": "github_client_secret"}
_PATHS = {"data_dir", "nar_dir", "signing_key_file", "log_key_file"}
_LISTS = {"reproducer_workflows", "reproducer_self_hosted", "oidc_issuers"}


def _coerce(name: str, value: object, where: str) -> Any:
    if name in _INTS:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {name} must be an integer")
        try:
            return int(value)  # type: ignore[call-overload]  # str or int from TOML/env; checked below
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {name} must be an integer, got {value!r}") from None
    if name in _BOOLS:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
            "",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: {name} must be a boolean, got {value!r}")
    if name in _PATHS:
        if not isinstance(value, str | Path) or not str(value):
            raise ConfigError(f"{where}: {name} must be a path")
        return Path(value).expanduser()
    if name in _LISTS:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: {name} must be a list of strings")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {name} must be a string")
    return value


def read_secret(path: Path, what: str) -> str:
    """Read a secret from a file (one line, surrounding whitespace dropped).

    Raises:
        ConfigError: the file cannot be read or is empty.
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"cannot read {what} from {path}: {e.strerror}") from None
    if not text:
        raise ConfigError(f"{what} file {path} is empty")
    return text


def resolve_settings(
    *,
    environ: Mapping[str, str],
    config: Mapping[str, object] | None = None,
    overrides: Mapping[str, object] | None = None,
    default_data_dir: Path,
) -> ServerSettings:
    """Merge defaults, a parsed TOML table, ``VEGA_SERVER_*`` variables and flags, in that order.

    Args:
        environ: the environment.
        config: the parsed TOML file, if any.
        overrides: command-line values (None values are ignored).
        default_data_dir: the data directory when nothing names one.

    Raises:
        ConfigError: an unknown key, a secret in the TOML file, a bad value, or a rule broken.
    """
    values: dict[str, Any] = {}
    for key, value in (config or {}).items():
        if key in _SECRETS or key == "database_url":
            raise ConfigError(
                f"config file: {key} is a secret and cannot be set in the config file",
                next_steps=[f"set VEGA_SERVER_{key.upper()} or {key}_file instead"],
            )
        if key in _SECRET_FILE_KEYS:
            continue
        if key not in _FIELDS:
            raise ConfigError(f"config file: unknown setting {key!r}")
        values[key] = _coerce(key, value, "config file")
    for name in _FIELDS:
        env = environ.get(f"VEGA_SERVER_{name.upper()}")
        if env is not None:
            values[name] = _coerce(name, env, f"VEGA_SERVER_{name.upper()}")
    for name, env_name in (
        ("signing_key", "SIGNING_KEY"),
        ("log_key", "LOG_KEY"),
        ("database_url", "DATABASE_URL"),
        ("github_client_secret", "GITHUB_CLIENT_SECRET"),
    ):
        file_name = environ.get(f"VEGA_SERVER_{env_name}_FILE")
        if file_name and name not in values:
            values[name] = read_secret(Path(file_name), name.replace("_", " "))
    for file_key, name in _SECRET_FILE_KEYS.items():
        named = (config or {}).get(file_key)
        if name not in values and isinstance(named, str) and named:
            values[name] = read_secret(Path(named).expanduser(), name.replace("_", " "))
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
    values.setdefault("data_dir", default_data_dir)
    return ServerSettings(**values)


def load_settings(overrides: Mapping[str, object], config_file: Path | None = None) -> ServerSettings:
    """Resolve settings from the real environment, ``config_file`` (or ``VEGA_SERVER_CONFIG``), flags.

    Raises:
        ConfigError: the file is unreadable or not TOML, or :func:`resolve_settings` refuses.
    """
    environ = dict(os.environ)
    path = config_file or (Path(environ["VEGA_SERVER_CONFIG"]) if environ.get("VEGA_SERVER_CONFIG") else None)
    config: dict[str, object] | None = None
    if path is not None:
        try:
            config = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    xdg = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    environ.pop("VEGA_SERVER_CONFIG", None)
    return resolve_settings(
        environ=environ, config=config, overrides=overrides, default_data_dir=Path(xdg) / "vega-server"
    )
