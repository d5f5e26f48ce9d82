"""Client settings: flags and the environment merged once into a frozen :class:`Settings`.

Only this module reads the process environment and the wall clock (``read_environ``,
``system_clock_ms``); everything else receives them. The merge itself, :func:`load_settings`, is
a pure function of an ``environ`` mapping.

Deliberate departures from cli.md, as issue 5 asks: ``::1`` counts as loopback in the URL rule,
and the credential lives under ``$XDG_CONFIG_HOME/vega`` when that variable is an absolute path
(``~/.config/vega`` otherwise).

Spec: cli.md §1.2 (environment), §1.3 (control-plane URL rule), §1.5 (credential location);
house-style.md §4.7.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from vega.client.http import HttpLimits, require_safe_url
from vega.errors import ConfigError

__all__ = [
    "DEFAULT_URL",
    "GITHUB_CLIENT_ID",
    "GITHUB_URL",
    "Settings",
    "config_dir",
    "load_settings",
    "normalise_url",
    "read_environ",
    "read_settings",
    "system_clock_ms",
]

DEFAULT_URL = "https://vega-cache.dev"
"""The default control plane (cli.md §1.3)."""
GITHUB_URL = "https://github.com"
"""The GitHub used when the control plane advertises none (protocol.md §9)."""
GITHUB_CLIENT_ID = "Iv23liYWrhwLxxmY8iK3"
"""The Vega GitHub App's public client id (protocol.md §1)."""


def normalise_url(url: str) -> str:
    """Validate a control-plane URL and return its normalised form (cli.md §1.3, ``::1`` allowed).

    Raises:
        ConfigError: ``control plane must be a valid https URL: <what is wrong>; refusing to send
            credentials over plaintext.`` (the URL itself is never echoed).
    """
    return require_safe_url(url)


def config_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/vega`` when that is an absolute path, else ``$HOME/.config/vega``.

    Raises:
        ConfigError: neither ``XDG_CONFIG_HOME`` nor ``HOME`` is usable.
    """
    xdg = environ.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "vega"
    home = environ.get("HOME", "")
    if not home:
        raise ConfigError("cannot find the configuration directory: HOME is not set")
    return Path(home) / ".config" / "vega"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the account commands need, resolved once."""

    url: str | None
    """Normalised control plane from ``--url``/``--control-plane`` or ``$VEGA_URL``, if asked for."""
    config_dir: Path
    """Directory of the credential file (created 0700)."""
    http: HttpLimits = HttpLimits()  # noqa: RUF009 - frozen value
    """Timeouts, body caps and retries of every request."""
    status_timeout_s: float = 10.0
    """Deadline of the ``vega status`` reachability probe."""
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """The environment the settings came from (front ends read colour rules from it)."""

    @property
    def credential_path(self) -> Path:
        """The credential file (cli.md §1.5)."""
        return self.config_dir / "credential"

    @property
    def login_url(self) -> str:
        """The control plane ``vega login`` enrols with: the flag, ``$VEGA_URL``, else the default."""
        return self.url or DEFAULT_URL


def load_settings(
    environ: Mapping[str, str],
    *,
    url: str | None = None,
    control_plane: str | None = None,
    use_env_url: bool = False,
) -> Settings:
    """Merge flags and ``environ`` into :class:`Settings` (pure).

    Args:
        environ: the environment variables.
        url: ``--url``; wins over ``control_plane``.
        control_plane: ``--control-plane`` (alias of ``--url``).
        use_env_url: consult ``$VEGA_URL`` when no flag is given (only ``vega login`` does,
            cli.md §1.2).

    Raises:
        ConfigError: the chosen URL is invalid, or no configuration directory can be found.
    """
    chosen = url or control_plane or (environ.get("VEGA_URL") or None if use_env_url else None)
    return Settings(
        url=normalise_url(chosen) if chosen else None,
        config_dir=config_dir(environ),
        environ=MappingProxyType(dict(environ)),
    )


def read_environ() -> Mapping[str, str]:
    """A snapshot of the process environment (the one place the client reads it)."""
    return MappingProxyType(dict(os.environ))


def read_settings(
    *, url: str | None = None, control_plane: str | None = None, use_env_url: bool = False
) -> Settings:
    """:func:`load_settings` over the process environment."""
    return load_settings(read_environ(), url=url, control_plane=control_plane, use_env_url=use_env_url)


def system_clock_ms() -> int:
    """The wall clock in epoch milliseconds (the one place the client reads it)."""
    return int(time.time() * 1000)
