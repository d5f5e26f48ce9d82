"""Log fixtures: a TransparencyLog over each database backend, with fixed keys and a fake clock."""

from __future__ import annotations

import hashlib

import pytest

from vega.core.note import SignerKey
from vega.core.signing import generate_secret_key
from vega.server.db import Database
from vega.server.log.log import LogEntry, TransparencyLog

ORIGIN = "vega.test/log"
STH_KEY = generate_secret_key("vega-cache-1", b"\x01" * 32)
NOTE_KEY = SignerKey("vega.test/log", b"\x02" * 32)


class Clock:
    """A clock that advances one millisecond per reading."""

    def __init__(self, start: int = 1_767_225_600_000) -> None:
        self.ms = start

    def __call__(self) -> int:
        self.ms += 1
        return self.ms


def open_log(db: Database, clock: Clock | None = None) -> TransparencyLog:
    return TransparencyLog(db, ORIGIN, NOTE_KEY, STH_KEY, clock or Clock())


def store_hash(n: int) -> str:
    """A valid store-path hash (32 nix32 characters) derived from ``n``."""
    alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
    digest = hashlib.sha256(str(n).encode()).digest()
    return "".join(alphabet[b % 32] for b in digest[:32])


def entry(n: int, *, build: int | None = None, event: str = "promotion") -> LogEntry:
    sh = store_hash(n if build is None else build)
    data = f'{{"v":1,"event":"{event}","storePath":"/nix/store/{sh}-p{n}","at":{n}}}'.encode()
    return LogEntry(data=data, dedupe_key=f"{event}:{n}", store_hashes=(sh,))


@pytest.fixture
def log(database: Database) -> TransparencyLog:
    return open_log(database)


__all__ = ["NOTE_KEY", "ORIGIN", "STH_KEY", "Clock", "entry", "open_log", "store_hash"]
