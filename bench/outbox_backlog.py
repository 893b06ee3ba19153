"""Cost of claiming deliveries from a backlog, on both outbox stores.

A sink that was down for a day leaves thousands of pending rows; when it comes back, each row is
claimed (the first due row of the sink not behind an earlier pending row of its ticket key),
delivered and settled. This fills each store with --backlog pending rows over --keys ticket keys,
then times --claims claim+settle cycles and one next_due query.

    .venv/bin/python -m bench.outbox_backlog [--backlog 20000] [--keys 50]
        [--state-database postgresql://postgres@127.0.0.1:5432/bench_backlog]

The PostgreSQL database must be empty (or hold a previous run's tables, which are emptied).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import psycopg

from exporter.core.settings import StateDatabaseConfig
from exporter.tickets.events import Event
from exporter.tickets.store import PostgresStore, SqliteStore, Store


def fill(store: Store, backlog: int, keys: int) -> None:
    """Queue `backlog` events for sink "s", in batches as a busy night would."""
    events = [(Event(id=f"bench:{i}", kind="job_result", key=f"bench:{i % keys}", title="t",
                     severity="info", status="ok"), ["s"]) for i in range(backlog)]
    for i in range(0, backlog, 1000):
        store.add(events[i:i + 1000], None)


def measure(store: Store, claims: int) -> dict[str, float]:
    """Time claim+settle cycles and one next_due; milliseconds."""
    began = time.perf_counter()
    for _ in range(claims):
        with store.claim("s", time.time()) as due:
            assert due is not None, "the backlog ran dry"
            store.settle(due.seq, "done", 1, 0.0, "")
    cycle = (time.perf_counter() - began) / claims
    began = time.perf_counter()
    store.next_due("s")
    return {"claim_settle_ms": round(1000 * cycle, 3),
            "next_due_ms": round(1000 * (time.perf_counter() - began), 2)}


def main() -> None:
    """Fill each store, measure, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backlog", type=int, default=20000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--claims", type=int, default=500)
    parser.add_argument("--state-database", help="an empty PostgreSQL database (optional)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp:
        stores: dict[str, Store] = {"sqlite": SqliteStore(Path(tmp) / "outbox.sqlite3")}
        if args.state_database:
            stores["postgresql"] = PostgresStore(StateDatabaseConfig(url=args.state_database))
            stores["postgresql"].states()  # creates the tables
            with psycopg.connect(args.state_database, autocommit=True) as db:
                db.execute("TRUNCATE delivery, event, checkpoint")
        for name, store in stores.items():
            fill(store, args.backlog, args.keys)
            if name == "postgresql":
                with psycopg.connect(args.state_database, autocommit=True) as db:
                    db.execute("ANALYZE")  # as autovacuum would after such an insert
            print(json.dumps({"store": name, "backlog": args.backlog, "keys": args.keys,
                              **measure(store, args.claims)}))


if __name__ == "__main__":
    main()
