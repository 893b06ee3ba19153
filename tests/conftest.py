"""Fixtures: catalog databases on the machine's real PostgreSQL and MariaDB, and on SQLite."""

import os
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from exporter.catalog.config import CatalogConfig
from tests.server import served  # noqa: F401 - a fixture for every test module

ROOT = Path(__file__).resolve().parent.parent
UNIT = Path(__file__).resolve().parent / "unit"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
MY = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
IN_CI = bool(os.environ.get("CI"))


def _require(what: str, exc: Exception) -> None:
    """Skip locally when a server is missing; fail in CI, where it must be there."""
    if IN_CI:
        raise RuntimeError(f"{what} is not reachable in CI: {exc}") from exc
    pytest.skip(f"{what} not reachable: {exc}")


class Catalog:
    """A scratch catalog database: a config pointing at it and a writable connection."""

    def __init__(self, engine: str, url: str, conn: Any, zone: str) -> None:
        self.engine = engine
        self.url = url
        self.conn = conn
        self.zone = zone

    def config(self, **extra: Any) -> CatalogConfig:
        """Return a CatalogConfig for this database."""
        return CatalogConfig(name=f"t_{self.engine}", url=self.url, timezone=self.zone, **extra)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run one writing statement (placeholders as %s) and commit."""
        if self.engine == "sqlite":
            sql = sql.replace("%s", "?")
        with closing(self.conn.cursor()) as cur:
            cur.execute(sql, params)
        self.conn.commit()

    def cursor(self) -> Any:
        """Return a cursor of the writable connection."""
        return self.conn.cursor()


@pytest.fixture
def make_catalog(tmp_path: Path) -> Iterator[Callable[..., Catalog]]:
    """Create empty databases on demand (one per call) and drop them after the test."""
    cleanups: list[Callable[[], None]] = []

    def make(engine: str, zone: str = "UTC") -> Catalog:
        name = f"bx_{uuid.uuid4().hex[:12]}"
        if engine == "sqlite":
            path = tmp_path / f"{name}.db"
            conn = sqlite3.connect(path)
            cleanups.append(conn.close)
            return Catalog(engine, f"sqlite:///{path}", conn, zone)
        if engine == "postgresql":
            try:
                admin = psycopg.connect(**PG, autocommit=True)
            except psycopg.OperationalError as exc:
                _require("PostgreSQL", exc)
            # Bacula creates its PostgreSQL catalogs as SQL_ASCII with the C locale.
            admin.execute(
                f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
                "TEMPLATE template0".encode()
            )
            conn = psycopg.connect(**{**PG, "dbname": name})

            def drop_pg() -> None:
                conn.close()
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
                admin.close()

            cleanups.append(drop_pg)
            return Catalog(engine, f"postgresql://postgres@127.0.0.1:5432/{name}", conn, zone)
        try:
            admin_my = pymysql.connect(**MY, autocommit=True)
        except pymysql.Error as exc:
            _require("MariaDB", exc)
        with admin_my.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        conn = pymysql.connect(**MY, database=name)

        def drop_my() -> None:
            conn.close()
            with admin_my.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name}")
            admin_my.close()

        cleanups.append(drop_my)
        return Catalog(engine, f"mysql://root@127.0.0.1:3306/{name}", conn, zone)

    yield make
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture(scope="session")
def debian_schema() -> Path:
    """Unpack Debian's Bacula 9.6.7 catalog packages once; return the dbconfig-common data dir."""
    try:
        out = subprocess.run(
            [str(ROOT / "scripts" / "fetch-bacula-schema")], check=True, capture_output=True,
            text=True, timeout=600,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        if IN_CI:
            raise
        pytest.skip(f"cannot fetch Debian's Bacula packages: {exc}")
    return Path(out.stdout.strip())


@pytest.fixture
def state_database() -> Iterator[str]:
    """An empty UTF-8 PostgreSQL database for the shared state store; its url."""
    name = f"bx_state_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(**PG, autocommit=True)
    except psycopg.OperationalError as exc:
        _require("PostgreSQL", exc)
    admin.execute(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0".encode())
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
    admin.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by folder: tests/unit is `unit`, everything else `integration` (`-m unit` is fast)."""
    for item in items:
        unit = UNIT in Path(str(item.fspath)).parents
        item.add_marker(pytest.mark.unit if unit else pytest.mark.integration)
