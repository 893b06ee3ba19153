"""Where the outbox keeps events: a local SQLite file, or a PostgreSQL database replicas share.

Both hold the same three tables: `event` (id = the stable event id, so storing an event twice
is a no-op), `delivery` (one row per event and sink: pending, done or dead, attempts, next
attempt time) and `checkpoint` (per catalog, written in the same transaction as the events it
covers). A worker claims one due row at a time, never one behind an earlier pending row of the
same ticket key. On PostgreSQL the claim is a row lock taken with SKIP LOCKED and held until the
outcome is recorded, so two replicas never deliver the same row at once; if a replica dies
mid-delivery its lock goes with its connection and the other one delivers the row again.
"""

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import psycopg

from exporter.core.db import StoreError, connect_state
from exporter.core.settings import StateDatabaseConfig
from exporter.tickets.events import Event
from exporter.tickets.resolution import Executes, Routes, follow, lineage
from exporter.tickets.schema import POSTGRES, SQLITE, migrate

STORE_ERRORS = (sqlite3.Error, psycopg.Error, OSError)


@dataclass(frozen=True)
class Due:
    """A delivery row that a worker holds: the event's data and the attempts so far."""

    seq: int
    event_id: str
    data: str
    attempts: int


class Store(Protocol):
    """What the outbox needs of its storage."""

    def add(self, events: Sequence[tuple[Event, Sequence[str]]],
            checkpoint: tuple[str, int] | None, seen: Sequence[str] = (),
            routes: Routes | None = None) -> tuple[int, set[str]]:
        """Store events with their sinks (and a checkpoint); return the new count, sinks touched.

        `routes` names the sinks that take an event the store makes (a resolution); None: all.
        """

    def resume(self, catalog: str) -> int | None:
        """Return the checkpoint stored for a catalog, None before its first one."""

    def claim(self, sink: str, now: float) -> AbstractContextManager[Due | None]:
        """Hold the first due row of a sink (a context manager); settle() records its outcome."""

    def settle(self, seq: int, state: str, attempts: int, next_at: float, error: str) -> None:
        """Record the outcome of a claimed row: done, pending (retry at next_at) or dead."""

    def next_due(self, sink: str) -> float | None:
        """Return when the next deliverable row of a sink is due."""

    def pending(self) -> dict[str, tuple[int, float]]:
        """Return, per sink, the number of pending rows and when the oldest was stored."""

    def prune(self, cutoff: float) -> None:
        """Forget delivered events stored before the cutoff (dead letters stay for people)."""

    def states(self) -> dict[tuple[str, str], str]:
        """Return (event id, sink) -> state of every delivery row (for tests and support)."""

    def close(self) -> None:
        """Close every connection the store opened (after the workers have stopped)."""


# A row waits while an earlier row of its ticket key is pending, so a "resolved" never overtakes
# its "firing". Written with %s; SQLite gets ?.
HEAD_OF_KEY = ("d.sink = %s AND d.state = 'pending' AND NOT EXISTS (SELECT 1 FROM delivery p "
               "WHERE p.sink = d.sink AND p.state = 'pending' AND p.key = d.key AND p.seq < d.seq)")
CLAIM = ("SELECT d.seq, d.event_id, e.data, d.attempts FROM delivery d JOIN event e "
         f"ON e.id = d.event_id WHERE {HEAD_OF_KEY} AND d.next_at <= %s ORDER BY d.seq LIMIT 1")
# The head of each key is its pending row with the lowest seq: one pass, not a join per row.
NEXT_DUE = ("SELECT min(d.next_at) FROM delivery d JOIN (SELECT min(seq) AS seq FROM delivery "
            "WHERE sink = %s AND state = 'pending' GROUP BY key) h ON h.seq = d.seq")
COUNT_PENDING = ("SELECT sink, count(*), min(created) FROM delivery WHERE state = 'pending' "
           "GROUP BY sink")
RECORD_OUTCOME = ("UPDATE delivery SET state = %s, attempts = %s, next_at = %s, last_error = %s "
          "WHERE seq = %s")
FIRST_OF_KEY = "SELECT event_id FROM delivery WHERE key = %s ORDER BY seq LIMIT 1"
INSERT_EVENT = ("INSERT INTO event (id, data, created) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING")
INSERT_DELIVERY = ("INSERT INTO delivery (event_id, sink, key, next_at, created) "
                   "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id, sink) DO NOTHING")
PRUNE = ("DELETE FROM delivery WHERE state = 'done' AND created < %s",
         "DELETE FROM event WHERE created < %s AND NOT EXISTS "
         "(SELECT 1 FROM delivery d WHERE d.event_id = event.id)",
         # A resolved failure is kept as long as its event, for the reopen window.
         "DELETE FROM failure WHERE resolved_by <> '' AND NOT EXISTS "
         "(SELECT 1 FROM event e WHERE e.id = failure.event_id)")


def _lite(sql: str) -> str:
    """Return a statement with SQLite's placeholders."""
    return sql.replace("%s", "?")


class SqliteStore:
    """One SQLite file (WAL, synchronous=FULL): for a single exporter."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []  # every thread's, for close()
        self._opened_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        # BEGIN IMMEDIATE takes the write lock: a second process starting now waits, then
        # finds the schema current.
        with self._write() as db:
            migrate(db.execute, SQLITE, str(path))

    def _db(self) -> sqlite3.Connection:
        """Return this thread's connection (sqlite3 connections stay on their thread)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # check_same_thread off only so close() may close it; one thread uses it.
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._opened_lock:
                self._opened.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Run a write transaction; it is durable when the block exits without an exception."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def add(self, events: Sequence[tuple[Event, Sequence[str]]],
            checkpoint: tuple[str, int] | None, seen: Sequence[str] = (),
            routes: Routes | None = None) -> tuple[int, set[str]]:
        """Store events with their sinks (and a checkpoint); return the new count, sinks touched."""
        with self._write() as db:
            return _add(db, _lite, events, checkpoint, seen, "max(job_id, excluded.job_id)",
                        routes)

    def resume(self, catalog: str) -> int | None:
        """Return the checkpoint stored for a catalog, None before its first one."""
        row = self._db().execute(
            "SELECT job_id FROM checkpoint WHERE catalog = ?", (catalog,)).fetchone()
        return None if row is None else int(row[0])

    @contextmanager
    def claim(self, sink: str, now: float) -> Iterator[Due | None]:
        """Yield the first due row of a sink; one worker per sink, so no lock is needed."""
        row = self._db().execute(_lite(CLAIM), (sink, now)).fetchone()
        yield None if row is None else Due(*row)

    def settle(self, seq: int, state: str, attempts: int, next_at: float, error: str) -> None:
        """Record the outcome of a claimed row: done, pending (retry at next_at) or dead."""
        with self._write() as db:
            db.execute(_lite(RECORD_OUTCOME), (state, attempts, next_at, error, seq))

    def next_due(self, sink: str) -> float | None:
        """Return when the next deliverable row of a sink is due."""
        row = self._db().execute(_lite(NEXT_DUE), (sink,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def pending(self) -> dict[str, tuple[int, float]]:
        """Return, per sink, the number of pending rows and when the oldest was stored."""
        return {s: (int(n), float(t)) for s, n, t in self._db().execute(COUNT_PENDING).fetchall()}

    def prune(self, cutoff: float) -> None:
        """Forget delivered events stored before the cutoff (dead letters stay for people)."""
        with self._write() as db:
            for sql in PRUNE:
                db.execute(_lite(sql), (cutoff,) if "%s" in sql else ())

    def states(self) -> dict[tuple[str, str], str]:
        """Return (event id, sink) -> state of every delivery row (for tests and support)."""
        rows = self._db().execute("SELECT event_id, sink, state FROM delivery").fetchall()
        return {(event_id, sink): state for event_id, sink, state in rows}

    def close(self) -> None:
        """Close every thread's connection (after the workers have stopped)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for db in opened:
            db.close()
        self._local = threading.local()


def _add(db: Executes, fix: Callable[[str], str], events: Sequence[tuple[Event, Sequence[str]]],
         checkpoint: tuple[str, int] | None, seen: Sequence[str], upsert: str,
         routes: Routes | None) -> tuple[int, set[str]]:
    """Insert new events, their delivery rows and the checkpoint in the caller's transaction."""
    now = time.time()
    for event_id in seen:
        # An event row without data or deliveries: if the event comes again, it is no news.
        db.execute(fix(INSERT_EVENT), (event_id, "", now))
    new = 0
    touched: set[str] = set()
    queue = [(event, sinks, True) for event, sinks in events]
    while queue:
        event, sinks, given = queue.pop(0)
        event = lineage(db, fix, event)
        if event.key != event.id and not event.thread:
            first = db.execute(fix(FIRST_OF_KEY), (event.key,)).fetchone()
            event = replace(event, thread=first[0]) if first else event
        if db.execute(fix(INSERT_EVENT), (event.id, event.to_json(), now)).rowcount == 0:
            continue  # the same event again (a retry, a replay, the other replica): queued once
        new += given  # what the caller gave: a resolution the store made is not counted
        for sink in sinks:
            db.execute(fix(INSERT_DELIVERY), (event.id, sink, event.key, now, now))
            touched.add(sink)
        # Right after the success that brings them.
        queue[0:0] = [(found, takers, False) for found, takers in follow(db, fix, event, routes)]
    if checkpoint is not None:
        # Never backwards: two replicas that both polled for a moment may store out of order.
        db.execute(fix("INSERT INTO checkpoint (catalog, job_id) VALUES (%s, %s) ON CONFLICT "
                       f"(catalog) DO UPDATE SET job_id = {upsert}"), checkpoint)
    return new, touched


class PostgresStore:
    """The outbox in a PostgreSQL database, shared by every replica of one deployment."""

    SCHEMA_LOCK = 0x62786F75  # one replica migrates; one starting at the same time waits
    POOL = 4  # connections for storing and reading, shared by all threads (webhooks, poller)

    def __init__(self, cfg: StateDatabaseConfig) -> None:
        self.cfg = cfg
        self._local = threading.local()  # each delivery worker's own connection, for its claims
        self._idle: list[psycopg.Connection[Any]] = []
        self._slots = threading.BoundedSemaphore(self.POOL)
        self._lock = threading.Lock()
        self._opened: list[psycopg.Connection[Any]] = []  # pooled and claiming, for close()
        self._schema = False  # created lazily: the database may be down when we start

    def _connect(self) -> psycopg.Connection[Any]:
        """Open a connection; the first one of the process creates the tables if needed."""
        db = connect_state(self.cfg, "outbox")
        with self._lock:
            self._opened = [c for c in self._opened if not c.closed] + [db]
        if not self._schema:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (self.SCHEMA_LOCK,))
                migrate(lambda sql: db.execute(sql.encode()), POSTGRES, "the state database")
            self._schema = True
        return db

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection[Any]]:
        """Run a transaction on a pooled connection; committed when the block exits cleanly."""
        # Bounded, so a burst of webhooks cannot take every connection the server allows.
        if not self._slots.acquire(timeout=self.cfg.connect_timeout + self.cfg.statement_timeout):
            raise StoreError("every state database connection stayed busy")
        try:
            with self._lock:
                db = self._idle.pop() if self._idle else None
            if db is None or db.closed or db.broken:
                db = self._connect()
            try:
                with db.transaction():
                    yield db
            finally:
                if not (db.closed or db.broken):
                    with self._lock:
                        self._idle.append(db)
        finally:
            self._slots.release()

    def add(self, events: Sequence[tuple[Event, Sequence[str]]],
            checkpoint: tuple[str, int] | None, seen: Sequence[str] = (),
            routes: Routes | None = None) -> tuple[int, set[str]]:
        """Store events with their sinks (and a checkpoint); return the new count, sinks touched."""
        with self._pooled() as db:
            return _add(db, str, events, checkpoint, seen,
                        "GREATEST(checkpoint.job_id, excluded.job_id)", routes)

    def resume(self, catalog: str) -> int | None:
        """Return the checkpoint stored for a catalog, None before its first one."""
        with self._pooled() as db:
            row = db.execute("SELECT job_id FROM checkpoint WHERE catalog = %s",
                             (catalog,)).fetchone()
        return None if row is None else int(row[0])

    @contextmanager
    def claim(self, sink: str, now: float) -> Iterator[Due | None]:
        """Lock the first due row no other replica holds; the lock ends with the block."""
        db: psycopg.Connection[Any] | None = getattr(self._local, "db", None)
        if db is None or db.closed or db.broken:
            db = self._local.db = self._connect()
        with db.transaction():
            row = db.execute(f"{CLAIM} FOR UPDATE OF d SKIP LOCKED", (sink, now)).fetchone()
            yield None if row is None else Due(*row)

    def settle(self, seq: int, state: str, attempts: int, next_at: float, error: str) -> None:
        """Record the outcome inside the claim's transaction (committed when the claim ends)."""
        # The claim's own connection, never a new one: a row updated outside the claim's
        # transaction would stay locked in a transaction nobody commits.
        self._local.db.execute(RECORD_OUTCOME, (state, attempts, next_at, error, seq))

    def next_due(self, sink: str) -> float | None:
        """Return when the next deliverable row of a sink is due."""
        with self._pooled() as db:
            row = db.execute(NEXT_DUE, (sink,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def pending(self) -> dict[str, tuple[int, float]]:
        """Return, per sink, the number of pending rows and when the oldest was stored."""
        with self._pooled() as db:
            rows = db.execute(COUNT_PENDING).fetchall()
        return {s: (int(n), float(t)) for s, n, t in rows}

    def prune(self, cutoff: float) -> None:
        """Forget delivered events stored before the cutoff (dead letters stay for people)."""
        with self._pooled() as db:
            for sql in PRUNE:
                db.execute(sql, (cutoff,) if "%s" in sql else ())

    def states(self) -> dict[tuple[str, str], str]:
        """Return (event id, sink) -> state of every delivery row (for tests and support)."""
        with self._pooled() as db:
            rows = db.execute("SELECT event_id, sink, state FROM delivery").fetchall()
        return {(event_id, sink): state for event_id, sink, state in rows}

    def close(self) -> None:
        """Close the pool and every worker's claim connection (after the workers stopped)."""
        with self._lock:
            opened, self._opened, self._idle = self._opened, [], []
        for db in opened:
            try:
                db.close()
            except psycopg.Error:  # already broken: closing is best effort
                continue
        self._local = threading.local()
