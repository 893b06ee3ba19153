"""The outbox's schema version and its ordered migrations, run at start in one transaction.

`schema_version` holds one row: the number of migrations applied. Migration N upgrades version
N-1 to N; a released migration is never edited, a change is a new one appended. Version 1 is the
schema of the releases before versioning, written with IF NOT EXISTS, so an outbox they made
reaches version 1 without a change. The caller holds the store's write lock (SQLite's BEGIN
IMMEDIATE, PostgreSQL's advisory lock) so a replica starting at the same time waits, then finds
nothing left to do.
"""

from collections.abc import Callable, Sequence
from typing import Any

Migrations = Sequence[Sequence[str]]

# A failure of a job (catalog, client, job name as JSON) at a level, until a success resolves it.
_FAILURE = ("CREATE TABLE failure (event_id {text} PRIMARY KEY, key {text} NOT NULL, "
            "job {text} NOT NULL, level {text} NOT NULL, job_id {big} NOT NULL, "
            "resolved_by {text} NOT NULL DEFAULT '')")
_FAILURE_INDEX = "CREATE INDEX failure_job ON failure (job, level, job_id)"
# The first event of a ticket key, for e-mail threading.
_KEY_INDEX = "CREATE INDEX delivery_key ON delivery (key, seq)"

SQLITE: Migrations = (
    (
        "CREATE TABLE IF NOT EXISTS event (id TEXT PRIMARY KEY, data TEXT NOT NULL, "
        "created REAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS delivery (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "event_id TEXT NOT NULL REFERENCES event(id), sink TEXT NOT NULL, key TEXT NOT NULL, "
        "state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, "
        "next_at REAL NOT NULL, created REAL NOT NULL, last_error TEXT NOT NULL DEFAULT '', "
        "UNIQUE (event_id, sink))",
        "CREATE INDEX IF NOT EXISTS delivery_pending ON delivery (sink, state, key, seq)",
        "CREATE INDEX IF NOT EXISTS delivery_order ON delivery (sink, state, seq)",
        "CREATE TABLE IF NOT EXISTS checkpoint (catalog TEXT PRIMARY KEY, "
        "job_id INTEGER NOT NULL)",
    ),
    (_FAILURE.format(text="TEXT", big="INTEGER"), _FAILURE_INDEX, _KEY_INDEX),
)

POSTGRES: Migrations = (
    (
        "CREATE TABLE IF NOT EXISTS event (id text PRIMARY KEY, data text NOT NULL, "
        "created double precision NOT NULL)",
        "CREATE TABLE IF NOT EXISTS delivery (seq bigserial PRIMARY KEY, "
        "event_id text NOT NULL REFERENCES event(id), sink text NOT NULL, key text NOT NULL, "
        "state text NOT NULL DEFAULT 'pending', attempts integer NOT NULL DEFAULT 0, "
        "next_at double precision NOT NULL, created double precision NOT NULL, "
        "last_error text NOT NULL DEFAULT '', UNIQUE (event_id, sink))",
        "CREATE INDEX IF NOT EXISTS delivery_pending ON delivery (sink, key, seq) "
        "WHERE state = 'pending'",
        "CREATE INDEX IF NOT EXISTS delivery_order ON delivery (sink, seq) "
        "WHERE state = 'pending'",
        "CREATE TABLE IF NOT EXISTS checkpoint (catalog text PRIMARY KEY, job_id bigint NOT NULL)",
    ),
    (_FAILURE.format(text="text", big="bigint"), _FAILURE_INDEX, _KEY_INDEX),
)

VERSION = len(SQLITE)
assert len(POSTGRES) == VERSION, "every migration exists for both stores"


class SchemaError(RuntimeError):
    """The outbox was written by a newer exporter: this one must not touch it."""


def migrate(run: Callable[[str], Any], migrations: Migrations, where: str) -> tuple[int, int]:
    """Bring the schema to the newest version inside the caller's transaction; (from, to)."""
    run("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
    row = run("SELECT max(version) FROM schema_version").fetchone()
    found = int(row[0]) if row and row[0] is not None else 0
    newest = len(migrations)
    if found > newest:
        raise SchemaError(
            f"the outbox in {where} has schema version {found}, newer than this exporter knows "
            f"({newest}): it was written by a later release. Run that release (or a later one), "
            "or give this one a new state_dir / state_database.")
    for statements in migrations[found:]:
        for statement in statements:
            run(statement)
    if found < newest:
        run("DELETE FROM schema_version")
        run(f"INSERT INTO schema_version (version) VALUES ({newest})")
    return found, newest
