"""Deterministic, set-based generator of large Bacula catalogs for the benchmark.

Every Job row is a pure function of its position g (JobId = g + 1), so the same arguments always
give the same catalog and the runner can append "tomorrow's" rows with the same SQL. Rows are made
inside the database (generate_series, MariaDB's SEQUENCE engine, a recursive CTE in SQLite);
Python only writes the statements.

Layout of one day (`Layout.block` rows, in JobId order): one backup per client (nightly
incremental, a full every 7th day, shifted per client), one copy (Type C) of each backup of the
even-numbered clients, copy control jobs (Type c) for every second copy, and a few restores.
About 2% of backups fail (f, E, A; each failure gets two Log lines), ~1% end with warnings (T with
JobErrors > 0). A copy whose source failed becomes a control job that found nothing to copy. On
the last day a few backups are still running. Times are written in UTC.
"""

import argparse
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql

from exporter.catalog.ddl import column_names, create_statements

DAY = 86400
GIB = 1 << 30
# Midnight UTC after the last generated day: fixed, so the catalog is deterministic.
END = 1_793_491_200  # 2026-11-01 00:00:00 UTC
RUNNING_EVERY = 500  # on the last day, every 500th client's backup is still running
PG_DSN = "host=127.0.0.1 port=5432 user=postgres"
MY_ARGS: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
DATA_DIR = Path("/tmp/bacula-bench")
CHUNK = 1_000_000  # Job rows per INSERT statement


@dataclass(frozen=True)
class Layout:
    """How many clients and days, and so which row sits at which position."""

    clients: int
    days: int
    version: int = 1026

    @property
    def copies(self) -> int:
        """Copies per day: one for every even-numbered client."""
        return (self.clients + 1) // 2

    @property
    def controls(self) -> int:
        """Copy control jobs per day: one per two copies."""
        return (self.copies + 1) // 2

    @property
    def restores(self) -> int:
        """Restores per day."""
        return max(1, self.clients // 200)

    @property
    def block(self) -> int:
        """Job rows per day."""
        return self.clients + self.copies + self.controls + self.restores

    @property
    def rows(self) -> int:
        """Job rows generated."""
        return self.days * self.block

    @property
    def start(self) -> int:
        """Midnight UTC of the first day."""
        return END - self.days * DAY

    @classmethod
    def for_jobs(cls, jobs: int, clients: int | None = None, version: int = 1026) -> "Layout":
        """Pick the number of days that gives about `jobs` rows (clients default to jobs/100)."""
        n = clients or min(10_000, max(2, jobs // 100))
        probe = cls(n, 1, version)
        return cls(n, max(1, round(jobs / probe.block)), version)


class Dialect:
    """The few expressions that differ between engines; the rest is one SQL text."""

    name = ""

    def div(self, a: str, b: int | str) -> str:
        """Integer division."""
        return f"(({a}) / {b})"

    def cat(self, *parts: str) -> str:
        """String concatenation."""
        return "(" + " || ".join(parts) + ")"

    def pad(self, expr: str, width: int) -> str:
        """Zero-padded decimal text."""
        return f"lpad(CAST({expr} AS TEXT), {width}, '0')"

    def ts(self, epoch: str) -> str:
        """Wall-clock timestamp (UTC) of an epoch expression."""
        raise NotImplementedError

    def stamp(self, epoch: str) -> str:
        """The time part of Bacula's unique Job name: 2026-11-01_20.00.00."""
        raise NotImplementedError

    def null_time(self) -> str:
        """What Bacula writes for a time not reached yet."""
        return "NULL"

    def fence(self) -> str:
        """A clause that keeps the planner from inlining a derived table's expressions."""
        return ""

    def series(self, lo: int, hi: int) -> str:
        """A FROM item yielding column g for lo <= g < hi."""
        raise NotImplementedError


class Postgres(Dialect):
    """PostgreSQL: generate_series and to_timestamp."""

    name = "postgresql"

    def ts(self, epoch: str) -> str:
        """Wall-clock timestamp (UTC) of an epoch expression."""
        return f"(to_timestamp({epoch}) AT TIME ZONE 'UTC')"

    def stamp(self, epoch: str) -> str:
        """The time part of Bacula's unique Job name."""
        return f"to_char(to_timestamp({epoch}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"_\"HH24.MI.SS')"

    def series(self, lo: int, hi: int) -> str:
        """A FROM item yielding column g."""
        return f"generate_series({lo}::bigint, {hi - 1}::bigint) AS s(g)"

    def fence(self) -> str:
        """OFFSET 0: otherwise each reference to a column re-evaluates its whole expression."""
        return " OFFSET 0"


class MariaDB(Dialect):
    """MariaDB: the SEQUENCE engine, DIV, CONCAT; the session runs in UTC."""

    name = "mysql"

    def div(self, a: str, b: int | str) -> str:
        """Integer division."""
        return f"(({a}) DIV {b})"

    def cat(self, *parts: str) -> str:
        """String concatenation."""
        return "CONCAT(" + ", ".join(parts) + ")"

    def pad(self, expr: str, width: int) -> str:
        """Zero-padded decimal text."""
        return f"LPAD({expr}, {width}, '0')"

    def ts(self, epoch: str) -> str:
        """Wall-clock timestamp (UTC) of an epoch expression."""
        return f"FROM_UNIXTIME({epoch})"

    def stamp(self, epoch: str) -> str:
        """The time part of Bacula's unique Job name."""
        return f"DATE_FORMAT(FROM_UNIXTIME({epoch}), '%Y-%m-%d_%H.%i.%s')"

    def series(self, lo: int, hi: int) -> str:
        """A FROM item yielding column g."""
        return f"(SELECT CAST(seq AS SIGNED) AS g FROM seq_{lo}_to_{hi - 1}) AS s"

    def fence(self) -> str:
        """A LIMIT keeps MariaDB from merging the derived table into the outer query."""
        return " LIMIT 18446744073709551615"


class SQLite(Dialect):
    """SQLite: a recursive CTE, strftime, and 0 for unset times as Bacula writes them."""

    name = "sqlite"

    def pad(self, expr: str, width: int) -> str:
        """Zero-padded decimal text."""
        return f"substr('{'0' * width}' || ({expr}), -{width})"

    def ts(self, epoch: str) -> str:
        """Wall-clock timestamp (UTC) of an epoch expression."""
        return f"datetime({epoch}, 'unixepoch')"

    def stamp(self, epoch: str) -> str:
        """The time part of Bacula's unique Job name."""
        return f"strftime('%Y-%m-%d_%H.%M.%S', {epoch}, 'unixepoch')"

    def null_time(self) -> str:
        """Bacula's SQLite catalog stores 0 for an unset time."""
        return "0"

    def series(self, lo: int, hi: int) -> str:
        """A FROM item yielding column g."""
        return (
            f"(WITH RECURSIVE r(g) AS (SELECT {lo} UNION ALL SELECT g + 1 FROM r "
            f"WHERE g < {hi - 1}) SELECT g FROM r) AS s"
        )


DIALECTS: dict[str, Callable[[], Dialect]] = {
    "postgresql": Postgres, "mysql": MariaDB, "sqlite": SQLite,
}


def _hash(sql: Dialect, expr: str) -> str:
    """A deterministic pseudo-random 0..9999 from an integer expression (Knuth's multiplier)."""
    return sql.div(f"(({expr}) * 2654435761) % 4294967296", 429497)


def job_columns(layout: Layout) -> list[str]:
    """The Job columns the generator fills, in the order of job_select()."""
    cols = [
        "JobId", "Job", "Name", "Type", "Level", "ClientId", "JobStatus", "SchedTime",
        "StartTime", "EndTime", "RealEndTime", "JobTDate", "JobFiles", "JobBytes", "ReadBytes",
        "JobErrors", "PoolId", "FileSetId", "PriorJobId",
    ]
    if layout.version >= 1026:
        cols.append("RealStartTime")
    return cols


def job_select(sql: Dialect, layout: Layout, lo: int, hi: int) -> str:
    """A SELECT producing the Job rows at positions lo <= g < hi."""
    n, c, k_ = layout.clients, layout.copies, layout.controls
    b = layout.block
    # 1: day and position in the day.
    l1 = f"SELECT g, {sql.div('g', b)} AS d, g % {b} AS p FROM {sql.series(lo, hi)}"
    # 2: kind (0 backup, 1 copy, 2 copy control, 3 restore) and client index k.
    l2 = (
        "SELECT g, d, p, "
        f"CASE WHEN p < {n} THEN 0 WHEN p < {n + c} THEN 1 WHEN p < {n + c + k_} THEN 2 "
        "ELSE 3 END AS kind, "
        f"CASE WHEN p < {n} THEN p WHEN p < {n + c} THEN 2 * (p - {n}) "
        f"WHEN p < {n + c + k_} THEN 0 ELSE ((p - {n + c + k_}) * 7919 + d * 131) % {n} END AS k "
        f"FROM ({l1}{sql.fence()}) a1"
    )
    # 3: h decides the source backup's fate (same for a backup and its copy), hg the row's own.
    l3 = (
        f"SELECT g, d, p, kind, k, {_hash(sql, f'd * {b} + k')} AS h, {_hash(sql, 'g')} AS hg "
        f"FROM ({l2}{sql.fence()}) a2"
    )
    # 4: a copy whose source failed is a control job that found nothing; the source's times.
    src_start = f"{layout.start} + d * {DAY} + 72000 + (k * 7) % 14400"
    full = "(d + k) % 7 = 0"
    last = f"(d = {layout.days - 1} AND k % {RUNNING_EVERY} = 0)"  # still running at the end
    src_dur = (
        f"CASE WHEN h < 210 THEN 20 + h % 60 WHEN {full} THEN 600 + (k % 50) * 120 + h % 600 "
        "ELSE 60 + h % 900 END"
    )
    l4 = (
        "SELECT g, d, p, k, h, hg, "
        f"CASE WHEN kind = 1 AND (h < 210 OR {last}) THEN 2 ELSE kind END AS kind, "
        f"CASE WHEN kind = 0 AND {last} THEN 1 ELSE 0 END AS running, "
        f"CASE WHEN kind <= 1 AND NOT ({full}) THEN 'I' ELSE 'F' END AS lvl, "
        f"{src_start} AS sstart, {src_dur} AS sdur, "
        f"{layout.start} + (d + 1) * {DAY} + 7200 + (p - {n}) AS late "
        f"FROM ({l3}{sql.fence()}) a3"
    )
    name = (
        f"CASE WHEN kind <= 1 THEN {sql.cat(repr('Backup-client-'), sql.pad('k + 1', 5))} "
        "WHEN kind = 2 THEN 'CopyToOffsite' ELSE 'RestoreFiles' END"
    )
    status = (
        "CASE WHEN running = 1 THEN 'R' WHEN kind >= 2 THEN "
        "(CASE WHEN kind = 3 AND hg < 300 THEN 'f' ELSE 'T' END) "
        "WHEN h < 150 THEN 'f' WHEN h < 200 THEN 'E' WHEN h < 210 THEN 'A' ELSE 'T' END"
    )
    nbytes = (
        f"CASE WHEN kind >= 2 THEN (CASE WHEN kind = 3 THEN (1 + hg % 20) * 1048576 ELSE 0 END) "
        f"WHEN running = 1 OR h < 210 THEN 0 WHEN lvl = 'F' THEN (1 + k % 50) * {GIB} "
        f"ELSE {sql.div(f'(1 + k % 50) * {GIB} * (1 + h % 5)', 100)} END"
    )
    # 5: start, end, JobTDate, bytes per kind.
    l5 = (
        f"SELECT g, d, k, kind, running, lvl, h, {name} AS nm, {status} AS st, "
        "CASE WHEN kind <= 1 THEN sstart ELSE late END AS t0, "
        "CASE WHEN running = 1 THEN NULL WHEN kind <= 1 THEN sstart + sdur "
        "ELSE late + 60 + hg % 600 END AS t1, "
        "CASE WHEN kind = 1 THEN late - 600 ELSE NULL END AS cstart, "
        f"{nbytes} AS nb "
        f"FROM ({l4}{sql.fence()}) a4"
    )
    unset = sql.null_time()
    typ = "CASE kind WHEN 0 THEN 'B' WHEN 1 THEN 'C' WHEN 2 THEN 'c' ELSE 'R' END"
    pool = "CASE WHEN kind >= 1 AND kind <= 2 THEN 3 WHEN lvl = 'I' THEN 2 ELSE 1 END"
    real_end = f"CASE WHEN t1 IS NULL THEN {unset} WHEN kind = 1 THEN {sql.ts('cstart + 300')} " \
        f"ELSE {sql.ts('t1')} END"
    cols = [
        "g + 1", sql.cat("nm", "'.'", sql.stamp("t0"), "'_'", sql.pad("(g + 1) % 100", 2)),
        "nm", typ, "lvl", "CASE WHEN kind = 2 THEN 1 ELSE k + 1 END", "st",
        sql.ts("t0"), sql.ts("t0"), f"CASE WHEN t1 IS NULL THEN {unset} ELSE {sql.ts('t1')} END",
        real_end, "CASE WHEN t1 IS NULL THEN t0 ELSE t1 END",
        sql.div("nb", 100000), "nb", "nb",
        "CASE WHEN kind = 0 AND h >= 210 AND h < 310 THEN 1 ELSE 0 END",
        pool, "1", f"CASE WHEN kind = 1 THEN d * {layout.block} + k + 1 ELSE 0 END",
    ]
    if layout.version >= 1026:
        cols.append(
            f"CASE WHEN t1 IS NULL THEN {unset} WHEN kind = 1 THEN {sql.ts('cstart')} "
            f"ELSE {sql.ts('t0')} END"
        )
    return f"SELECT {', '.join(cols)} FROM ({l5}{sql.fence()}) a5"


def insert_jobs(sql: Dialect, layout: Layout, lo: int, hi: int) -> list[str]:
    """Statements that insert Job rows lo <= g < hi and the Log lines of their failures."""
    cols = ", ".join(job_columns(layout))
    # Two lines per failed backup; the first is the one the exporter picks as the reason.
    logs = [
        "': Fatal error: Network error with FD during Backup: ERR=Connection refused'",
        "': Error: Bacula bench 15.0.2: Termination: *** Backup Error ***'",
    ]
    out = [f"INSERT INTO Job ({cols}) {job_select(sql, layout, lo, hi)}"]
    for text in logs:
        line = sql.cat("'client-'", sql.pad("ClientId", 5), "'-dir JobId '",
                       "CAST(JobId AS CHAR(12))", text)
        out.append(
            "INSERT INTO Log (JobId, Time, LogText) "
            f"SELECT JobId, EndTime, {line} FROM Job "
            f"WHERE JobId > {lo} AND JobId <= {hi} AND Type = 'B' "
            f"AND JobStatus IN ('f', 'E', 'A') ORDER BY JobId"
        )
    return out


def static_statements(sql: Dialect, layout: Layout) -> list[str]:
    """Schema, clients, pools and volumes."""
    out = list(create_statements(sql.name, layout.version))
    n = layout.clients
    uname = "'15.0.2 (21Mar24) x86_64-pc-linux-gnu,debian,12'"
    out.append(
        "INSERT INTO Client (ClientId, Name, Uname, AutoPrune, FileRetention, JobRetention) "
        f"SELECT g + 1, {sql.cat(repr('client-'), sql.pad('g + 1', 5), repr('-fd'))}, {uname}, "
        f"1, 5184000, 15552000 FROM {sql.series(0, n)}"
    )
    out.append(
        "INSERT INTO Pool (PoolId, Name, PoolType, MaxVols, LabelFormat) VALUES "
        "(1, 'Full', 'Backup', 0, 'Full-'), (2, 'Incremental', 'Backup', 0, 'Inc-'), "
        "(3, 'Offsite', 'Copy', 0, 'Off-')"
    )
    volumes = max(30, n // 10)
    status = (
        "CASE g % 10 WHEN 0 THEN 'Append' WHEN 1 THEN 'Recycle' WHEN 2 THEN 'Used' "
        "WHEN 3 THEN 'Error' ELSE 'Full' END"
    )
    out.append(
        "INSERT INTO Media (MediaId, VolumeName, PoolId, MediaType, VolStatus, VolBytes, "
        "LastWritten) "
        f"SELECT g + 1, {sql.cat(repr('Vol-'), sql.pad('g + 1', 6))}, 1 + g % 3, 'File', "
        f"{status}, (g % 50) * {GIB}, {sql.ts(f'{END} - g * 3600')} FROM {sql.series(0, volumes)}"
    )
    out.append(
        "UPDATE Pool SET NumVols = (SELECT COUNT(*) FROM Media WHERE Media.PoolId = Pool.PoolId)"
    )
    return out


# Indexes of Bacula's own create scripts that matter here: Job(Name) and Log(JobId).
INDEXES = {
    "postgresql": ["CREATE INDEX job_name_idx ON Job (Name)",
                   "CREATE INDEX log_name_idx ON Log (JobId)"],
    "mysql": ["CREATE INDEX job_name_idx ON Job (Name(128))",
              "CREATE INDEX log_name_idx ON Log (JobId)"],
    "sqlite": ["CREATE INDEX job_name_idx ON Job (Name)",
               "CREATE INDEX log_name_idx ON Log (JobId)"],
}


def meta_statements(layout: Layout) -> list[str]:
    """A small table that lets the runner append rows with the same layout."""
    return [
        "CREATE TABLE BenchMeta (Clients INTEGER, Days INTEGER, Version INTEGER)",
        f"INSERT INTO BenchMeta VALUES ({layout.clients}, {layout.days}, {layout.version})",
    ]


def db_name(jobs: int) -> str:
    """bench_100k, bench_1m, bench_10m..."""
    if jobs % 1_000_000 == 0:
        return f"bench_{jobs // 1_000_000}m"
    if jobs % 1000 == 0:
        return f"bench_{jobs // 1000}k"
    return f"bench_{jobs}"


def sqlite_path(name: str) -> Path:
    """Where a SQLite bench catalog lives."""
    return DATA_DIR / f"{name}.db"


def url(engine: str, name: str) -> str:
    """The exporter's catalog url of a bench database."""
    if engine == "postgresql":
        return f"postgresql://postgres@127.0.0.1:5432/{name}"
    if engine == "mysql":
        return f"mysql://root@127.0.0.1:3306/{name}"
    return f"sqlite:///{sqlite_path(name)}"


def connect_rw(engine: str, name: str) -> Any:
    """A writable DB-API connection to a bench database (autocommit)."""
    if engine == "postgresql":
        return psycopg.connect(f"{PG_DSN} dbname={name}", autocommit=True)
    if engine == "mysql":
        my = pymysql.connect(**MY_ARGS, database=name, autocommit=True)
        with my.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
        return my
    return sqlite3.connect(sqlite_path(name), isolation_level=None)


def schema_current(conn: Any, version: int) -> bool:
    """Tell whether the database has every table and column the exporter's DDL now has."""
    cur = conn.cursor()
    for table, columns in column_names(version).items():
        try:
            cur.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE 1 = 0")
            cur.fetchall()
        except Exception:
            if hasattr(conn, "rollback"):
                conn.rollback()
            return False
    return True


def read_layout(conn: Any) -> Layout:
    """Read the layout a bench database was generated with."""
    cur = conn.cursor()
    cur.execute("SELECT Clients, Days, Version FROM BenchMeta")
    clients, days, version = cur.fetchone()
    return Layout(int(clients), int(days), int(version))


def recreate(engine: str, name: str) -> None:
    """Drop and create an empty bench database."""
    if not name.startswith("bench_"):
        raise ValueError("bench databases are named bench_*")
    if engine == "postgresql":
        with psycopg.connect(f"{PG_DSN} dbname=postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}".encode())
            conn.execute(f"CREATE DATABASE {name}".encode())
    elif engine == "mysql":
        my = pymysql.connect(**MY_ARGS, autocommit=True)
        with my.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
            cur.execute(f"CREATE DATABASE {name}")
        my.close()
    else:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{sqlite_path(name)}{suffix}").unlink(missing_ok=True)


def drop(engine: str, name: str) -> None:
    """Drop a bench database."""
    if engine == "postgresql":
        with psycopg.connect(f"{PG_DSN} dbname=postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}".encode())
    elif engine == "mysql":
        my = pymysql.connect(**MY_ARGS, autocommit=True)
        with my.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        my.close()
    else:
        sqlite_path(name).unlink(missing_ok=True)


def run(conn: Any, statements: list[str]) -> None:
    """Execute statements one by one."""
    cur = conn.cursor()
    for stmt in statements:
        cur.execute(stmt)


def generate(engine: str, layout: Layout, name: str, quiet: bool = False) -> float:
    """Create a bench catalog and return how many seconds it took."""
    sql = DIALECTS[engine]()
    started = time.monotonic()
    recreate(engine, name)
    conn = connect_rw(engine, name)
    if engine == "sqlite":
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
    elif engine == "postgresql":
        conn.execute("SET synchronous_commit = off")
    run(conn, static_statements(sql, layout) + meta_statements(layout))
    for lo in range(0, layout.rows, CHUNK):
        hi = min(layout.rows, lo + CHUNK)
        if engine == "sqlite":
            conn.execute("BEGIN")
        run(conn, insert_jobs(sql, layout, lo, hi))
        if engine == "sqlite":
            conn.execute("COMMIT")
        if not quiet:
            print(f"  {hi:>10,} Job rows  {time.monotonic() - started:7.1f} s", flush=True)
    run(conn, INDEXES[engine])
    if engine == "postgresql":
        run(conn, ["SELECT setval(pg_get_serial_sequence('job', 'jobid'), "
                   "(SELECT MAX(JobId) FROM Job))", "SELECT setval(pg_get_serial_sequence("
                   "'log', 'logid'), (SELECT MAX(LogId) FROM Log))", "VACUUM ANALYZE"])
    elif engine == "mysql":
        run(conn, ["ANALYZE TABLE Job, Log, Client, Media, Pool"])
    else:
        run(conn, ["ANALYZE"])
    conn.close()
    return time.monotonic() - started


def main() -> None:
    """Command line: generate one bench catalog."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=sorted(DIALECTS), default="postgresql")
    parser.add_argument("--jobs", type=int, default=100_000, help="about this many Job rows")
    parser.add_argument("--clients", type=int, help="default: jobs/100, at most 10,000")
    parser.add_argument("--version", type=int, default=1026, help="catalog VersionId")
    parser.add_argument("--name", help="database name (default bench_<jobs>)")
    args = parser.parse_args()
    layout = Layout.for_jobs(args.jobs, args.clients, args.version)
    name = args.name or db_name(args.jobs)
    print(f"{args.engine} {name}: {layout.clients:,} clients x {layout.days} days "
          f"= {layout.rows:,} Job rows")
    took = generate(args.engine, layout, name)
    print(f"generated {name} on {args.engine} in {took:.1f} s")


if __name__ == "__main__":
    main()
