"""The durable outbox: events in SQLite before anything is acknowledged, delivered by workers.

Design: one SQLite file (WAL, synchronous=FULL) holds `event` (id = the stable event id, so a
second insert of the same event is a no-op), `delivery` (one row per event and sink that takes
it: pending, done or dead, attempts, next attempt time) and `checkpoint` (per catalog, written in
the same transaction as the events it covers). One worker thread per sink delivers due rows in
insertion order, never overtaking an earlier pending row of the same ticket key, with exponential
backoff and jitter; a permanent failure, or too many attempts, moves the row to `dead` (logged and
counted). A crash between delivering and marking `done` redelivers at restart: sinks are
idempotent by event id (Idempotency-Key, or the ticket key looked up before creating).
"""

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter, Gauge

from exporter.bridge_config import RetryConfig
from exporter.events import Event, job_result_event
from exporter.sinks.base import DeliveryError, Sink
from exporter.state import FinishedJob

log = logging.getLogger(__name__)

PENDING = Gauge("bacula_exporter_outbox_pending", "Events waiting for delivery to a sink.",
                ["sink"])
OLDEST = Gauge("bacula_exporter_outbox_oldest_pending_timestamp_seconds",
               "When the oldest event still waiting for a sink was stored.", ["sink"])
DELIVERIES = Counter(
    "bacula_exporter_deliveries", "Delivery attempts by result: success, retry (will be tried "
    "again), failure (refused for good), dead (given up: moved to the dead letters).",
    ["sink", "result"],
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS event (
    id TEXT PRIMARY KEY, data TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS delivery (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL REFERENCES event(id),
    sink TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, created REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '', UNIQUE (event_id, sink));
CREATE INDEX IF NOT EXISTS delivery_pending ON delivery (sink, state, key, seq);
CREATE TABLE IF NOT EXISTS checkpoint (catalog TEXT PRIMARY KEY, job_id INTEGER NOT NULL);
"""
BATCH = 20
IDLE_WAIT = 5.0  # longest a worker sleeps without being woken, so a missed wake-up costs little
RETENTION = 30 * 86400.0  # delivered events are kept this long to recognise redeliveries


@dataclass
class Route:
    """A sink, the filter of events it takes and its retry policy."""

    sink: Sink
    accepts: Callable[[Event], bool] = lambda _event: True
    retry: RetryConfig = field(default_factory=RetryConfig)


def backoff(retry: RetryConfig, attempts: int) -> float:
    """Return the wait before the next attempt: exponential, capped, with jitter."""
    delay = min(retry.max, retry.initial * 2 ** min(attempts - 1, 40))
    # Jitter in the upper half: sinks that failed together do not retry in lockstep.
    return random.uniform(delay / 2, delay)  # noqa: S311 - not for security


class Outbox:
    """Stores events durably and delivers them to the sinks."""

    def __init__(self, path: Path, routes: Sequence[Route]) -> None:
        self.path = path
        self.routes = {r.sink.name: r for r in routes}
        self._local = threading.local()
        self._stop = threading.Event()
        self._wake = {name: threading.Event() for name in self.routes}
        self._threads: list[threading.Thread] = []
        self._failures = dict.fromkeys(self.routes, 0)  # retryable failures in a row, per sink
        self._pause = dict.fromkeys(self.routes, 0.0)  # no attempts before this time, per sink
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db().executescript(SCHEMA)  # commits by itself: no explicit transaction
        self._gauges()

    def _db(self) -> sqlite3.Connection:
        """Return this thread's connection (sqlite3 connections stay on their thread)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
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

    def add(self, events: Sequence[Event], checkpoint: tuple[str, int] | None = None) -> int:
        """Store events (and a catalog checkpoint) durably; return how many were new."""
        now = time.time()
        new = 0
        touched: set[str] = set()
        with self._write() as db:
            for event in events:
                cur = db.execute("INSERT OR IGNORE INTO event (id, data, created) VALUES (?,?,?)",
                                 (event.id, event.to_json(), now))
                if cur.rowcount == 0:
                    continue  # the same event again (a retry, a replay): already queued once
                new += 1
                for name, route in self.routes.items():
                    if route.accepts(event):
                        db.execute(
                            "INSERT OR IGNORE INTO delivery (event_id, sink, key, next_at, "
                            "created) VALUES (?,?,?,?,?)", (event.id, name, event.key, now, now),
                        )
                        touched.add(name)
            if checkpoint is not None:
                db.execute("INSERT INTO checkpoint (catalog, job_id) VALUES (?,?) ON CONFLICT "
                           "(catalog) DO UPDATE SET job_id = excluded.job_id", checkpoint)
        for name in touched:
            self._wake[name].set()
        if touched:
            self._gauges()
        return new

    def listener(self, catalog: str, finished: list[FinishedJob], checkpoint: int) -> None:
        """The poller's listener: job results and the checkpoint in one durable transaction."""
        self.add([job_result_event(job) for job in finished], (catalog, checkpoint))

    def resume(self, catalog: str) -> int | None:
        """Return the checkpoint stored for a catalog, None before its first one."""
        row = self._db().execute(
            "SELECT job_id FROM checkpoint WHERE catalog = ?", (catalog,)).fetchone()
        return None if row is None else int(row[0])

    def start(self) -> None:
        """Start one delivery worker per sink."""
        self._prune()
        for name in self.routes:
            thread = threading.Thread(target=self._work, args=(name,), name=f"sink-{name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers (an attempt under way finishes) and close the sinks."""
        self._stop.set()
        for wake in self._wake.values():
            wake.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        for route in self.routes.values():
            route.sink.close()

    def _due(self, sink: str) -> list[tuple[int, str, str, int]]:
        """Return due rows of a sink in order, none behind an earlier pending row of its key."""
        return self._db().execute(
            "SELECT d.seq, d.event_id, e.data, d.attempts FROM delivery d JOIN event e "
            "ON e.id = d.event_id WHERE d.sink = ? AND d.state = 'pending' AND d.next_at <= ? "
            "AND NOT EXISTS (SELECT 1 FROM delivery p WHERE p.sink = d.sink AND "
            "p.state = 'pending' AND p.key = d.key AND p.seq < d.seq) ORDER BY d.seq LIMIT ?",
            (sink, time.time(), BATCH),
        ).fetchall()

    def _next_due(self, sink: str) -> float | None:
        """Return when the next pending row of a sink is due."""
        row = self._db().execute(
            "SELECT min(next_at) FROM delivery WHERE sink = ? AND state = 'pending'", (sink,)
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def deliver_due(self, name: str) -> int:
        """Attempt the due rows of a sink in order; stop at the first that should be retried."""
        rows = self._due(name)
        attempted = 0
        for seq, event_id, data, attempts in rows:
            if self._stop.is_set():
                break
            attempted += 1
            try:
                event = Event.from_json(data)
            except (ValueError, TypeError) as exc:
                self._give_up(name, seq, event_id, attempts + 1, f"unreadable: {exc}", False)
                continue
            if not self._attempt(name, seq, event_id, event, attempts + 1):
                # The backend is likely down: probe it with one row per pause, not all of them.
                self._failures[name] += 1
                self._pause[name] = time.time() + backoff(
                    self.routes[name].retry, self._failures[name])
                break
            self._failures[name] = 0
        if rows:
            self._gauges()
        return attempted

    def _work(self, name: str) -> None:
        """Deliver a sink's due rows until stopped."""
        while not self._stop.is_set():
            try:
                paused = self._pause[name] - time.time()
                if paused <= 0 and self.deliver_due(name) and self._pause[name] <= time.time():
                    continue
                due = max(self._next_due(name) or 0, self._pause[name]) or None
            except Exception:
                # The worker must outlive a locked or full disk: say so and try again later.
                log.exception("outbox: sink %s cannot use the outbox", name)
                due = None
            wait = IDLE_WAIT if due is None else min(IDLE_WAIT, max(0.0, due - time.time()))
            self._wake[name].wait(wait)
            self._wake[name].clear()

    def _attempt(self, name: str, seq: int, event_id: str, event: Event, attempt: int) -> bool:
        """Deliver one event once and record the outcome; False when it should be retried."""
        route = self.routes[name]
        try:
            route.sink.deliver(event)
        except DeliveryError as exc:
            error, retry = str(exc), exc.retry
        except Exception as exc:
            # A bug or a surprise from a backend: keep the event and try again later.
            log.exception("outbox: sink %s failed on %s unexpectedly", name, event_id)
            error, retry = f"internal error: {type(exc).__name__}", True
        else:
            with self._write() as db:
                db.execute("UPDATE delivery SET state = 'done', attempts = ?, last_error = '' "
                           "WHERE seq = ?", (attempt, seq))
            DELIVERIES.labels(name, "success").inc()
            return True
        if retry and attempt < route.retry.max_attempts:
            wait = backoff(route.retry, attempt)
            with self._write() as db:
                db.execute("UPDATE delivery SET attempts = ?, next_at = ?, last_error = ? "
                           "WHERE seq = ?", (attempt, time.time() + wait, error, seq))
            DELIVERIES.labels(name, "retry").inc()
            log.warning("outbox: %s to %s failed (attempt %d), retry in %.0fs: %s",
                        event_id, name, attempt, wait, error)
            return False
        self._give_up(name, seq, event_id, attempt, error, retry)
        return True

    def _give_up(self, name: str, seq: int, event_id: str, attempt: int, error: str,
                 retry: bool) -> None:
        """Move a delivery to the dead letters, where people can look at it."""
        with self._write() as db:
            db.execute("UPDATE delivery SET state = 'dead', attempts = ?, last_error = ? "
                       "WHERE seq = ?", (attempt, error, seq))
        if not retry:
            DELIVERIES.labels(name, "failure").inc()
        DELIVERIES.labels(name, "dead").inc()
        log.error("outbox: %s to %s is dead after %d attempt(s): %s",
                  event_id, name, attempt, error)

    def _gauges(self) -> None:
        """Refresh the pending and oldest-pending gauges of every sink."""
        rows = self._db().execute(
            "SELECT sink, count(*), min(created) FROM delivery WHERE state = 'pending' "
            "GROUP BY sink").fetchall()
        found = {sink: (count, oldest) for sink, count, oldest in rows}
        for name in self.routes:
            count, oldest = found.get(name, (0, None))
            PENDING.labels(name).set(count)
            OLDEST.labels(name).set(oldest or 0)

    def _prune(self) -> None:
        """Forget delivered events older than the retention (dead letters stay for people)."""
        cutoff = time.time() - RETENTION
        with self._write() as db:
            db.execute("DELETE FROM delivery WHERE state = 'done' AND created < ?", (cutoff,))
            db.execute("DELETE FROM event WHERE created < ? AND id NOT IN "
                       "(SELECT event_id FROM delivery)", (cutoff,))

    def states(self) -> dict[tuple[str, str], str]:
        """Return (event id, sink) -> state of every delivery row (for tests and support)."""
        rows = self._db().execute("SELECT event_id, sink, state FROM delivery").fetchall()
        return {(event_id, sink): state for event_id, sink, state in rows}
