"""Fixtures shared by the integration tests of the outbox."""

from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.core.settings import StateDatabaseConfig
from exporter.tickets.store import PostgresStore, SqliteStore, Store

OpenStore = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> OpenStore:
    """Open a store (anew on each call, as after a restart) on one SQLite file or PG database."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "o.db")
    cfg = StateDatabaseConfig(url=request.getfixturevalue("state_database"))
    return lambda: PostgresStore(cfg)
