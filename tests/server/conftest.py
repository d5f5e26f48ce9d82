"""Server fixtures: a fresh database for every backend (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.attestload import ServerProcess
from vega.server.db import Database, open_database

POSTGRES_URL = os.environ.get("VEGA_TEST_POSTGRES_URL", "")


def _backends() -> list[object]:
    return [
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="VEGA_TEST_POSTGRES_URL is not set"),
            ],
        ),
    ]


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """A (url, schema) pair naming an empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/vega.db", None
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield POSTGRES_URL, schema
    db = open_database(POSTGRES_URL)
    with db.transaction() as tx:
        tx.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    db.close()


@pytest.fixture
def database(database_url: tuple[str, str | None]) -> Iterator[Database]:
    """An open, empty database of each backend."""
    url, schema = database_url
    db = open_database(url, schema=schema)
    yield db
    db.close()


@pytest.fixture
def server_process(tmp_path: Path, database_url: tuple[str, str | None]) -> Iterator[ServerProcess]:
    """A real vega-server over each backend (SQLite in its data directory; PostgreSQL when configured)."""
    url, schema = database_url
    s = ServerProcess(tmp_path / "data", postgres=None if schema is None else (url, schema))
    s.start()
    try:
        yield s
    finally:
        s.stop()
