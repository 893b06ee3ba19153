"""Where the scheduled slots are kept, so a restart forgets none: a SQLite file or PostgreSQL.

Its own table (`director_slot`), apart from the outbox's: a Director's slots are rewritten whole
whenever they change (a few rows per job and day), in one transaction.
"""

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol

import psycopg

from exporter.core.db import connect_state
from exporter.core.settings import StateDatabaseConfig
from exporter.director.schedule import Slot

SLOT_FILE = "director.db"
STORE_ERRORS = (sqlite3.Error, psycopg.Error, OSError)
SCHEMA = ("CREATE TABLE IF NOT EXISTS director_slot (director TEXT NOT NULL, job TEXT NOT NULL, "
          "level TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, missed INTEGER NOT NULL, "
          "PRIMARY KEY (director, job, level, at, missed))")
SELECT = "SELECT job, level, at, missed FROM director_slot WHERE director = %s"
DELETE = "DELETE FROM director_slot WHERE director = %s"
INSERT = "INSERT INTO director_slot (director, job, level, at, missed) VALUES (%s, %s, %s, %s, %s)"

Rows = list[tuple[Slot, bool]]


class SlotStore(Protocol):
    """What the Director poller needs of its storage."""

    def load(self, director: str) -> Rows:
        """Return the slots kept for a Director."""

    def save(self, director: str, rows: Rows) -> None:
        """Replace the slots kept for a Director."""


class MemorySlotStore:
    """No state store configured: slots live as long as the process."""

    def __init__(self) -> None:
        self._rows: dict[str, Rows] = {}

    def load(self, director: str) -> Rows:
        """Return the slots kept for a Director."""
        return list(self._rows.get(director, []))

    def save(self, director: str, rows: Rows) -> None:
        """Replace the slots kept for a Director."""
        self._rows[director] = list(rows)


class ReadOnlySlotStore:
    """Reads another store's slots, never writes them: for a one-shot `status`."""

    def __init__(self, store: SlotStore) -> None:
        self.store = store

    def load(self, director: str) -> Rows:
        """Return the slots kept for a Director."""
        return self.store.load(director)

    def save(self, director: str, rows: Rows) -> None:
        """Keep nothing: the running exporter owns the slots."""


def _decode(found: list[Any]) -> Rows:
    """Turn table rows into (slot, missed) pairs."""
    return [(Slot(job, level, float(at)), bool(missed)) for job, level, at, missed in found]


class SqliteSlotStore:
    """A SQLite file beside the outbox in state_dir."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        """Open the file (each call its own connection: polls are a minute apart)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute(SCHEMA)
        return db

    def load(self, director: str) -> Rows:
        """Return the slots kept for a Director."""
        with self._lock, closing(self._connect()) as db:
            return _decode(db.execute(SELECT.replace("%s", "?"), (director,)).fetchall())

    def save(self, director: str, rows: Rows) -> None:
        """Replace the slots kept for a Director in one transaction."""
        with self._lock, closing(self._connect()) as db, db:  # `db` commits or rolls back
            db.execute(DELETE.replace("%s", "?"), (director,))
            db.executemany(INSERT.replace("%s", "?"), [
                (director, s.job, s.level, s.at, int(m)) for s, m in rows])


class PostgresSlotStore:
    """The state database that replicas share: the leader's slots survive a failover."""

    def __init__(self, cfg: StateDatabaseConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()

    def load(self, director: str) -> Rows:
        """Return the slots kept for a Director (making the table on first use)."""
        with self._lock, connect_state(self.cfg, "director slots") as conn:
            with conn.transaction():
                # Serialised, so two replicas starting at once do not both create the table.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('director_slot'))")
                conn.execute(SCHEMA)
            return _decode(conn.execute(SELECT, (director,)).fetchall())

    def save(self, director: str, rows: Rows) -> None:
        """Replace the slots kept for a Director in one transaction."""
        with self._lock, connect_state(self.cfg, "director slots") as conn, conn.transaction():
            conn.execute(DELETE, (director,))
            with conn.cursor() as cur:
                cur.executemany(INSERT, [(director, s.job, s.level, s.at, int(m))
                                         for s, m in rows])


def slot_store(state_dir: Path | None, state_database: StateDatabaseConfig | None,
               read_only: bool = False) -> SlotStore:
    """Return where the slots are kept: the state database, else state_dir, else memory.

    `read_only` (a one-shot `status`) reads what the server kept and writes nothing, not even a
    new file in state_dir.
    """
    store: SlotStore = MemorySlotStore()
    if state_database is not None:
        store = PostgresSlotStore(state_database)
    elif state_dir is not None and (not read_only or (state_dir / SLOT_FILE).exists()):
        store = SqliteSlotStore(state_dir / SLOT_FILE)
    return ReadOnlySlotStore(store) if read_only else store
