"""``vega-server``: settings, first-run defaults, keys, and uvicorn.

Usage::

    vega-server serve [--data-dir DIR] [--host 127.0.0.1] [--port N] [--public-url URL]
                      [--dev] [--config FILE]
    vega-server dev-ci-token --repo OWNER/REPO --sha SHA [--data-dir DIR] [...]  (development mode)
    vega-server revoke HASH --reason TEXT [--data-dir DIR] [--config FILE]

First run with no configuration works: the data directory is created (0700)
with ``server.db`` (SQLite, WAL), ``nars/``, and fresh keys written 0600 under
``keys/``: the shared narinfo key (``vega-cache-1`` unless ``shared_key_name``
says otherwise; tenant and enrolment keys derive from it, protocol.md §2.6)
and a separate log key for checkpoint notes. A commented ``server.toml`` is
written beside them. ``serve`` prints the nix.conf lines that trust this
server, then runs uvicorn; a background thread promotes store paths whose
settling window has passed.

Spec: issue 4 ("Running it"); house-style.md §4.7, §4.9.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from vega import __version__
from vega.core.signing import (
    SecretKey,
    format_public_key,
    format_secret_key,
    generate_secret_key,
    parse_secret_key,
)
from vega.errors import ConfigError, FormatError, VegaError
from vega.server.settings import ServerSettings, load_settings

if TYPE_CHECKING:
    from vega.server.db import Database
    from vega.server.service import CacheService

__all__ = ["OPEN_ENROLMENT_WARNING", "ensure_keys", "entry", "main", "nix_conf_lines", "revocation_service"]

log = logging.getLogger("vega.server")

_CONFIG_TEMPLATE = """\
# vega-server configuration (TOML). Every setting can also be given as VEGA_SERVER_<NAME>.
# Secrets never go here: use VEGA_SERVER_SIGNING_KEY(_FILE), VEGA_SERVER_LOG_KEY(_FILE),
# VEGA_SERVER_DATABASE_URL(_FILE), VEGA_SERVER_GITHUB_CLIENT_SECRET(_FILE), or
# signing_key_file / log_key_file / database_url_file / github_client_secret_file.
# Without the GitHub App's client secret, enrolment accepts any GitHub user token.
#
# host = "127.0.0.1"
# port = 8080
# public_url = "https://cache.example.org"   # must be https unless loopback
# nar_dir = "/var/lib/vega-server/nars"
# shared_key_name = "vega-cache-1"
# quorum = 2                 # distinct owners that must agree
# min_reproductions = 1      # independent reproductions required (at least 1)
# settling_s = 600           # seconds agreement must stand before promotion
# orphan_retention_s = 604800  # delete NAR objects nothing needs after this long (0: never)
# reproducer_workflows = ["vega-org/vega/.github/workflows/reproduce.yml@refs/heads/main"]  # ref required
# reproducer_self_hosted = []  # owner/repo whose self-hosted runners may reproduce
# oidc_issuers = ["https://token.actions.githubusercontent.com"]
# github_url = "https://github.com"
# github_client_id = "Iv23liYWrhwLxxmY8iK3"
# github_client_secret_file = "/etc/vega-server/github-client-secret"
"""


OPEN_ENROLMENT_WARNING = (
    "vega-server: WARNING: no GitHub App client secret is configured, so enrolment accepts ANY "
    "GitHub user token:\n"
    "  an app that holds a user's token for another purpose can enrol as that user.\n"
    "  Set VEGA_SERVER_GITHUB_CLIENT_SECRET(_FILE) or github_client_secret_file to the secret of "
    "the GitHub App named by github_client_id.\n"
)
"""Printed by ``serve`` when enrolment cannot check which app a GitHub token was issued to."""


def _write_secret(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 (never overwriting), fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


def _load_or_create(inline: str | None, path: Path, name: str, what: str) -> tuple[SecretKey, bool]:
    if inline is not None:
        text, created = inline, False
    elif path.exists():
        text, created = path.read_text(encoding="utf-8").strip(), False
    else:
        text, created = format_secret_key(generate_secret_key(name, os.urandom(32))), True
        _write_secret(path, text)
    try:
        return parse_secret_key(text), created
    except FormatError as e:
        raise ConfigError(f"{what} is not a Nix secret key ({path}): {e.message}") from None


def ensure_keys(settings: ServerSettings) -> tuple[SecretKey, SecretKey, bool]:
    """Load the shared and log secret keys, creating missing key files (0600) on first run.

    Returns:
        ``(shared, log, created)`` where ``created`` says whether any key was generated now.

    Raises:
        ConfigError: a key is unreadable or malformed, or both keys are the same key.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    shared, c1 = _load_or_create(
        settings.signing_key, settings.resolved_signing_key_file, settings.shared_key_name, "shared key"
    )
    log_key, c2 = _load_or_create(
        settings.log_key, settings.resolved_log_key_file, settings.log_key_name, "log key"
    )
    if shared.seed == log_key.seed:
        raise ConfigError("the log key must differ from the shared narinfo key")
    template = settings.data_dir / "server.toml"
    if c1 and not template.exists():
        template.write_text(_CONFIG_TEMPLATE, encoding="utf-8")
    return shared, log_key, c1 or c2


def nix_conf_lines(settings: ServerSettings, shared: SecretKey) -> list[str]:
    """The nix.conf lines that make Nix substitute from this server's shared tier."""
    return [
        f"extra-substituters = {settings.resolved_public_url}",
        f"extra-trusted-public-keys = {format_public_key(shared.public)}",
    ]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "data_dir": getattr(args, "data_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "public_url": getattr(args, "public_url", None),
        "dev": True if getattr(args, "dev", False) else None,
    }


def _serve(settings: ServerSettings, out: TextIO, run: Callable[..., None]) -> int:
    from vega.server.app import create_app
    from vega.server.blobs import LocalBlobStore
    from vega.server.db import open_database
    from vega.server.http import uvicorn_options
    from vega.server.service import ServerKeys

    _check_port_free(settings.host, settings.port)
    shared, log_key, created = ensure_keys(settings)
    db = open_database(settings.resolved_database_url)
    blobs = LocalBlobStore(settings.resolved_nar_dir)
    app = create_app(settings, db, blobs, _now_ms, keys=ServerKeys(shared=shared, log=log_key))
    if created:
        out.write(
            f"vega-server: first run: new keys in {settings.resolved_signing_key_file.parent} (mode 0600)\n"
            "vega-server: back them up now: a lost shared key means every client must trust a new one, "
            "and a lost log key ends the log (docs/deployment.md, 'Keys')\n"
        )
    if settings.dev:
        from vega.server.identity.dev import DEV_BANNER

        out.write(f"vega-server: {DEV_BANNER}\n")
    if not app.state.authenticator.checks_app:
        out.write(OPEN_ENROLMENT_WARNING)
    out.write(f"vega-server: serving {settings.resolved_public_url} from {settings.data_dir}\n")
    out.write("Add to nix.conf to substitute from this server:\n")
    for line in nix_conf_lines(settings, shared):
        out.write(f"  {line}\n")
    out.flush()
    stop = threading.Event()
    interval = max(1.0, min(float(settings.settling_s), 30.0))

    def sweeper() -> None:
        while not stop.wait(interval):
            try:
                app.state.service.sweep()
            except Exception:
                log.exception("promotion sweep failed")
            if settings.orphan_retention_s > 0:
                try:
                    app.state.service.collect_orphans(settings.orphan_retention_s * 1000)
                except Exception:
                    log.exception("orphan sweep failed")

    thread = threading.Thread(target=sweeper, name="vega-sweeper", daemon=True)
    thread.start()
    try:
        run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            proxy_headers=False,
            **uvicorn_options(settings),
        )
    finally:
        stop.set()
        db.close()
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Fail before anything is printed when ``host:port`` cannot be bound (in use, not local)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as e:
            what = "is already in use" if e.errno == errno.EADDRINUSE else "cannot be listened on"
            raise ConfigError(
                f"{host}:{port} {what}",
                next_steps=[
                    "stop the other server on that port, or choose another: vega-server serve --port N",
                ],
            ) from None


def revocation_service(settings: ServerSettings, db: Database) -> CacheService:
    """The cache service ``revoke`` runs on: the same keys, log and promotion policy as ``serve``."""
    from vega.server.app import log_signer, promotion_policy
    from vega.server.blobs import LocalBlobStore
    from vega.server.log.log import TransparencyLog
    from vega.server.service import CacheService, ServerKeys
    from vega.server.store import Store

    shared, log_key, _ = ensure_keys(settings)
    keys = ServerKeys(shared=shared, log=log_key)
    origin = settings.resolved_log_origin
    return CacheService(
        store=Store(db),
        blobs=LocalBlobStore(settings.resolved_nar_dir),
        keys=keys,
        log=TransparencyLog(db, origin, log_signer(keys, origin), shared, _now_ms),
        policy=promotion_policy(settings),
        now=_now_ms,
        public_url=settings.resolved_public_url,
    )


def _revoke(settings: ServerSettings, hash_part: str, reason: str, out: TextIO, *, force: bool) -> int:
    from vega.server.db import open_database

    ensure_keys(settings)
    db = open_database(settings.resolved_database_url)
    try:
        service = revocation_service(settings, db)
        with service.store.read() as tx:
            known = bool(service.store.attestations(tx, hash_part))
        if not known and not force:
            raise ConfigError(
                f"this server has no attestation of {hash_part}; nothing was revoked",
                next_steps=[
                    "check the hash (the 32 characters after /nix/store/)",
                    f"vega-server revoke {hash_part} --reason ... --force  (revoke it before it arrives)",
                ],
            )
        added = service.revoke(hash_part, reason)
    finally:
        db.close()
    out.write(f"vega-server: {'revoked' if added else 'already revoked'} {hash_part}\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vega-server", description="The Vega reference control plane.")
    parser.add_argument("--version", action="version", version=f"vega-server {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the control plane",
        description=(
            "Run the control plane. The first run creates the data directory, the keys (mode 0600: "
            "back them up) and a commented server.toml. Every option can also be set in server.toml "
            "or as VEGA_SERVER_<NAME>."
        ),
        epilog=(
            "examples:\n"
            "  vega-server serve --dev                      # everything on this machine, no account\n"
            "  vega-server serve --host 0.0.0.0 --public-url https://cache.example.org\n"
            "see docs/deployment.md for TLS, PostgreSQL and systemd."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    revoke = sub.add_parser("revoke", help="revoke a store path (logged; withdrawn from the shared tier)")
    for p in (serve, revoke):
        p.add_argument("--data-dir", type=Path, help="data directory (default $XDG_DATA_HOME/vega-server)")
        p.add_argument("--config", type=Path, help="TOML config file (or VEGA_SERVER_CONFIG)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8080)")
    serve.add_argument(
        "--public-url", help="URL clients use; must be https unless loopback (default http://HOST:PORT)"
    )
    serve.add_argument("--dev", action="store_true", help="development identity mode (loopback only)")
    revoke.add_argument("hash", help="32-character store-path hash")
    revoke.add_argument("--reason", required=True, help="why, for the log")
    revoke.add_argument(
        "--force", action="store_true", help="revoke a hash this server has no attestation of yet"
    )
    sub.add_parser(
        "dev-ci-token", help="print a simulated CI job's environment (development mode)", add_help=False
    )
    return parser


def _dev_ci_token(argv: Sequence[str]) -> int:
    """``dev-ci-token``: ``--data-dir`` and ``--config`` as for ``serve``; the rest is the command's."""
    from vega.server.identity.dev import ci_token_command

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--data-dir", type=Path)
    pre.add_argument("--config", type=Path)
    known, rest = pre.parse_known_args(list(argv))
    settings = load_settings({"data_dir": known.data_dir}, known.config)
    return ci_token_command(
        rest,
        default_url=settings.resolved_public_url,
        default_state_dir=settings.data_dir / "dev-identity",
    )


def main(argv: Sequence[str], *, out: TextIO | None = None, run: Callable[..., None] | None = None) -> int:
    """Run ``vega-server`` with ``argv`` (without the program name); return the exit code."""
    stream = out or sys.stdout
    try:
        if argv[:1] == ["dev-ci-token"]:
            return _dev_ci_token(argv[1:])
        args = _parser().parse_args(list(argv))
        settings = load_settings(_overrides(args), args.config)
        if args.command == "revoke":
            return _revoke(settings, args.hash, args.reason, stream, force=args.force)
        if run is None:
            import uvicorn

            run = uvicorn.run
        return _serve(settings, stream, run)
    except VegaError as e:
        sys.stderr.write(f"error: {e.message}\n")
        if e.next_steps:
            sys.stderr.write("\nTry:\n" + "".join(f"  {s}\n" for s in e.next_steps))
        return 1


def entry() -> None:
    """Console-script entry point for ``vega-server``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main(sys.argv[1:]))


if __name__ == "__main__":
    entry()
