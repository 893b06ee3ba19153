"""Outbox schema versioning on both stores: upgrade without loss, refusal, replicas at once."""

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from exporter.core.settings import StateDatabaseConfig
from exporter.demo import DEMO_ZONE, write_demo_catalog
from exporter.tickets.events import job_result_event
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.schema import VERSION, SchemaError
from exporter.tickets.store import PostgresStore, SqliteStore, Store
from tests.fake_sink import FakeSink
from tests.redmine.samples import finished
from tests.server import free_port

# The outbox as the release before versioning wrote it (store.py's SCHEMA strings, verbatim).
TODAY_SQLITE = """
CREATE TABLE IF NOT EXISTS event (
    id TEXT PRIMARY KEY, data TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS delivery (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL REFERENCES event(id),
    sink TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, created REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '', UNIQUE (event_id, sink));
CREATE INDEX IF NOT EXISTS delivery_pending ON delivery (sink, state, key, seq);
CREATE INDEX IF NOT EXISTS delivery_order ON delivery (sink, state, seq);
CREATE TABLE IF NOT EXISTS checkpoint (catalog TEXT PRIMARY KEY, job_id INTEGER NOT NULL);
"""
TODAY_POSTGRES = """
CREATE TABLE IF NOT EXISTS event (
    id text PRIMARY KEY, data text NOT NULL, created double precision NOT NULL);
CREATE TABLE IF NOT EXISTS delivery (
    seq bigserial PRIMARY KEY, event_id text NOT NULL REFERENCES event(id),
    sink text NOT NULL, key text NOT NULL, state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0, next_at double precision NOT NULL,
    created double precision NOT NULL, last_error text NOT NULL DEFAULT '',
    UNIQUE (event_id, sink));
CREATE INDEX IF NOT EXISTS delivery_pending ON delivery (sink, key, seq)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS delivery_order ON delivery (sink, seq) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS checkpoint (catalog text PRIMARY KEY, job_id bigint NOT NULL);
"""
QUEUED, DEAD, DONE = 40, 7, 13  # delivery rows of the old outbox, by state


class Old:
    """An outbox database as written by the release before versioning, reached with raw SQL."""

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        self.target = target  # a file, or a PostgreSQL url

    @contextmanager
    def conn(self) -> Iterator[Any]:
        """Yield a connection in a transaction, committed at the end."""
        if self.kind == "sqlite":
            with closing(sqlite3.connect(self.target)) as db, db:
                yield db
        else:
            with psycopg.connect(self.target) as db:
                yield db

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (placeholders as %s) and return its rows."""
        if self.kind == "sqlite":
            sql = sql.replace("%s", "?")
        with self.conn() as db:
            cur = db.execute(sql if self.kind == "sqlite" else sql.encode(), params)
            return list(cur.fetchall()) if cur.description else []

    def write_today(self) -> None:
        """Create today's tables and fill them: queued, dead and delivered rows, a checkpoint."""
        with self.conn() as db:
            if self.kind == "sqlite":
                db.execute("PRAGMA journal_mode=WAL")  # as that release left its file
                db.executescript(TODAY_SQLITE)
            else:
                db.execute(TODAY_POSTGRES.encode())
        for i in range(1, QUEUED + DEAD + DONE + 1):
            event = job_result_event(finished(i, catalog="old"))
            state = "pending" if i <= QUEUED else "dead" if i <= QUEUED + DEAD else "done"
            self.run("INSERT INTO event (id, data, created) VALUES (%s, %s, %s)",
                     (event.id, event.to_json(), time.time()))
            self.run("INSERT INTO delivery (event_id, sink, key, state, attempts, next_at, "
                     "created, last_error) VALUES (%s, 'a', %s, %s, %s, 0, %s, %s)",
                     (event.id, event.key, state, 0 if state == "pending" else 3, time.time(),
                      "HTTP 422 refused" if state == "dead" else ""))
        self.run("INSERT INTO checkpoint (catalog, job_id) VALUES ('old', %s)",
                 (QUEUED + DEAD + DONE,))

    def rows(self) -> dict[str, Any]:
        """Return what a support person would count: events, deliveries by state, checkpoints."""
        return {
            "events": self.run("SELECT count(*) FROM event")[0][0],
            "deliveries": Counter(dict(self.run(
                "SELECT state, count(*) FROM delivery GROUP BY state"))),
            "dead_errors": self.run("SELECT DISTINCT last_error FROM delivery "
                                    "WHERE state = 'dead'"),
            "checkpoint": self.run("SELECT catalog, job_id FROM checkpoint"),
        }

    def version(self) -> list[tuple[Any, ...]]:
        """Return the rows of schema_version."""
        return self.run("SELECT version FROM schema_version")


@pytest.fixture(params=["sqlite", "postgresql"])
def old(request: pytest.FixtureRequest, tmp_path: Path) -> Old:
    """An empty outbox database of either store."""
    if request.param == "sqlite":
        return Old("sqlite", str(tmp_path / "outbox.sqlite3"))
    return Old("postgresql", request.getfixturevalue("state_database"))


def open_store(old: Old) -> Store:
    """Open the real store on the old database, as a new release starting would."""
    if old.kind == "sqlite":
        return SqliteStore(Path(old.target))
    store = PostgresStore(StateDatabaseConfig(url=old.target))
    store.resume("old")  # the first connection migrates
    return store


def test_todays_outbox_upgrades_with_nothing_lost(old: Old) -> None:
    old.write_today()
    before = old.rows()
    assert before["deliveries"] == {"pending": QUEUED, "dead": DEAD, "done": DONE}

    store = open_store(old)
    after = old.rows()
    lost = before["events"] - after["events"] + sum((before["deliveries"]
                                                     - after["deliveries"]).values())
    print(f"migration on {old.kind}: {before['events']} events, {dict(before['deliveries'])} "
          f"deliveries before; rows lost: {lost}")
    assert lost == 0
    assert after == before
    assert old.version() == [(VERSION,)]
    assert store.resume("old") == QUEUED + DEAD + DONE

    # The queued rows are still delivered, in order; the dead letters stay for people.
    sink = FakeSink("a")
    outbox = Outbox(store, [Route(sink)])
    while outbox.deliver_due("a"):
        pass
    assert [e.id for e in sink.delivered] == [f"old:{i}" for i in range(1, QUEUED + 1)]
    assert Counter(store.states().values()) == {"done": QUEUED + DONE, "dead": DEAD}
    outbox.stop()

    # A second start finds nothing to do.
    open_store(old).close()
    assert old.version() == [(VERSION,)]


def test_a_new_outbox_starts_at_the_newest_version(old: Old) -> None:
    open_store(old).close()
    assert old.version() == [(VERSION,)]
    assert old.rows()["events"] == 0


def test_an_outbox_from_a_newer_release_is_refused(old: Old) -> None:
    old.write_today()
    old.run("CREATE TABLE schema_version (version integer NOT NULL)")
    old.run("INSERT INTO schema_version (version) VALUES (%s)", (VERSION + 1,))
    before = old.rows()
    with pytest.raises(SchemaError) as refused:
        open_store(old)
    message = str(refused.value)
    assert f"schema version {VERSION + 1}, newer than this exporter knows ({VERSION})" in message
    assert "later release" in message
    assert old.rows() == before
    assert old.version() == [(VERSION + 1,)]


def test_two_replicas_starting_at_once_migrate_once(old: Old) -> None:
    """The test holds the migration lock; both replicas wait for it, then one migrates."""
    old.write_today()
    results: list[object] = []

    def start() -> None:
        try:
            open_store(old).close()
            results.append("ok")
        except Exception as exc:  # the test reports whatever a replica hit
            results.append(exc)

    with hold_migration_lock(old) as waiting:
        threads = [threading.Thread(target=start) for _ in range(2)]
        for thread in threads:
            thread.start()
        waiting(2)
        assert results == []  # neither got past the lock
    for thread in threads:
        thread.join(timeout=60)
    assert results == ["ok", "ok"]
    assert old.version() == [(VERSION,)]
    assert old.rows()["deliveries"] == {"pending": QUEUED, "dead": DEAD, "done": DONE}


@contextmanager
def hold_migration_lock(old: Old) -> Iterator[Callable[[int], None]]:
    """Hold the lock a starting store takes; yield a wait for that many replicas blocked on it."""
    if old.kind == "sqlite":
        with closing(sqlite3.connect(old.target, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")

            def blocked(_count: int) -> None:
                # SQLite cannot tell who waits; a replica that did not wait would finish here.
                time.sleep(1.0)

            yield blocked
            db.execute("COMMIT")
        return
    with psycopg.connect(old.target, autocommit=True) as db, \
            psycopg.connect(old.target, autocommit=True) as watch:
        db.execute("SELECT pg_advisory_lock(%s)", (PostgresStore.SCHEMA_LOCK,))

        def waiting(count: int) -> None:
            deadline = time.monotonic() + 30
            while watch.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND NOT granted").fetchone() != (count,):
                assert time.monotonic() < deadline, "the replicas never waited on the lock"
                time.sleep(0.05)

        yield waiting
        db.execute("SELECT pg_advisory_unlock(%s)", (PostgresStore.SCHEMA_LOCK,))


def test_the_exporter_refuses_to_start_on_a_newer_outbox(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    old = Old("sqlite", str(state / "outbox.sqlite3"))
    old.write_today()
    old.run("CREATE TABLE schema_version (version integer NOT NULL)")
    old.run("INSERT INTO schema_version (version) VALUES (%s)", (VERSION + 1,))
    write_demo_catalog(tmp_path / "bacula.db")
    config = tmp_path / "config.yml"
    config.write_text(json.dumps({
        "listen": f"127.0.0.1:{free_port()}", "state_dir": str(state),
        "catalogs": [{"name": "demo", "url": f"sqlite:///{tmp_path / 'bacula.db'}",
                      "timezone": DEMO_ZONE}],
        "sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/"}]}))
    run = subprocess.run([sys.executable, "-m", "exporter", "--config", str(config)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert f"has schema version {VERSION + 1}, newer than this exporter knows" in run.stderr
    assert "Traceback" not in run.stderr
    assert old.version() == [(VERSION + 1,)]
