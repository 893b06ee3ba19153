"""The same scenario on every engine and catalog version, read by the real reader."""

import math
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from pymysql.constants import CLIENT

from exporter.catalog.ddl import column_names
from exporter.catalog.engines import connect
from exporter.catalog.model import FinishedJob
from exporter.exposition.block import Exposition
from exporter.exposition.sla import SlaConfig
from exporter.service.overview import Standing, level_of_trouble, overview, sla_max_age
from exporter.service.poller import CatalogPoller
from exporter.tickets.events.jobs import job_result_event
from tests import scenario
from tests.conftest import MY, PG, Catalog
from tests.promtext import samples, value

pytestmark = pytest.mark.integration

ENGINES = ("sqlite", "postgresql", "mysql")
CASES = [(e, v) for e in ENGINES for v in (16, 1022, 1024, 1026)] + [
    ("postgresql", 2210), ("postgresql", 2250),
]
TABLES = ("Version", "Status", "Client", "Pool", "Media", "Job", "JobMedia", "Log")


class Recorder:
    """Collects the finished jobs and checkpoints a poller reports."""

    def __init__(self) -> None:
        self.jobs: list[int] = []
        self.finished: dict[int, FinishedJob] = {}
        self.checkpoints: list[int] = []
        self.history: list[int] = []

    def __call__(self, catalog: str, jobs: list[FinishedJob], checkpoint: int,
                 history: list[int]) -> None:
        self.jobs += [f.record.job_id for f in jobs]
        self.history += history
        self.finished.update({f.record.job_id: f for f in jobs})
        self.checkpoints.append(checkpoint)


def poll(poller: CatalogPoller) -> dict[Any, float]:
    """Poll once (now) and return the state samples of the exposition."""
    poller.maybe_poll(0, wait=30)
    assert poller.up, poller.error
    return scrape(poller)


def scrape(poller: CatalogPoller) -> dict[Any, float]:
    """Render the poller's state and parse it back."""
    body = b"".join(Exposition().render([poller.rendered], [poller.health()]))
    return samples(body)


def state_only(found: dict[Any, float]) -> dict[Any, float]:
    """Keep the samples the scenario speaks about."""
    return {k: v for k, v in found.items() if k[0] in scenario.STATE_METRICS}


def write_scenario(cat: Catalog, version: int | None) -> None:
    """Write the scenario (and the tables, when a version is given)."""
    with closing(cat.cursor()) as cur:
        scenario.build().write(cur, cat.engine, version)
    cat.conn.commit()


@pytest.mark.parametrize(("engine", "version"), CASES)
def test_scenario_cold_start_then_incremental(make_catalog: Any, engine: str, version: int) -> None:
    """Cold start gives the expected series; later rows and status changes arrive by polling."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, version)
    recorder = Recorder()
    poller = CatalogPoller(cat.config(), recorder)
    found = poll(poller)
    assert state_only(found) == scenario.expected(cat.config().name)
    product = "bareos" if version > 2000 else "bacula"
    assert value(found, "bacula_catalog_info", catalog=cat.config().name, engine=engine,
                 schema_version=str(version), product=product) == 1
    assert value(found, "bacula_catalog_up", catalog=cat.config().name) == 1
    assert recorder.jobs == []  # jobs finished before the first poll are not news
    assert recorder.checkpoints == [13]  # job 14 still runs: its outcome is not known yet
    # Finished above the checkpoint before the first start: seen, so a restart sends none.
    assert recorder.history == [16, 18, 19]
    reason = poller.model.series[("gamma-fd", "BackupGamma", "full")].failure_reason
    assert reason == "gamma-fd JobId 8: Fatal error: Unable to connect to Client"

    end14 = int(scenario.T0 + 5 * scenario.D + 3600)
    wall = scenario.build().rows["Job"][0]["EndTime"]  # any well-formed wall-clock value
    cat.execute(
        "UPDATE Job SET JobStatus = 'T', EndTime = %s, RealEndTime = %s, JobTDate = %s, "
        "JobBytes = 42 WHERE JobId = 14", (wall, wall, end14),
    )
    more = scenario.build()
    more.rows = {t: [] for t in more.rows}
    more.job("BackupGamma", "gamma-fd", scenario.T0 + 6 * scenario.D,
             scenario.T0 + 6 * scenario.D + 100, bytes_=10, job_id=20)
    more.job("BackupAlpha", "alpha-fd", scenario.T0 + 7 * scenario.D,
             scenario.T0 + 7 * scenario.D + 50, level="I", job_id=22)
    with closing(cat.cursor()) as cur:
        more.write(cur, engine)
    cat.conn.commit()

    found = poll(poller)
    name = cat.config().name
    gamma = {"catalog": name, "client": "gamma-fd", "job": "BackupGamma", "level": "full"}
    assert value(found, "bacula_job_last_success_timestamp_seconds", **gamma) == int(
        scenario.T0 + 6 * scenario.D + 100
    )
    assert value(found, "bacula_job_runs_total", **gamma) == 2
    assert value(found, "bacula_job_failures_total", **gamma) == 1
    assert value(found, "bacula_job_bytes_total", **gamma) == 10
    delta = {"catalog": name, "client": "delta-fd", "job": "BackupDelta", "level": "full"}
    assert value(found, "bacula_job_running", **delta) is None
    assert value(found, "bacula_job_last_success_timestamp_seconds", **delta) == end14
    assert value(found, "bacula_job_last_success_bytes", **delta) == 42
    assert value(found, "bacula_job_running", **{**delta, "level": "incremental"}) == 1
    assert sorted(recorder.jobs) == [14, 20, 22]
    assert recorder.checkpoints[-1] == 14  # 15 waits on; 21 is a gap that may still commit

    # JobId 21 commits after 22 (jobs finish and commit out of order): the gap is re-checked.
    late = scenario.build()
    late.rows = {t: [] for t in late.rows}
    late.job("BackupBeta", "beta-fd", scenario.T0 + 8 * scenario.D,
             scenario.T0 + 8 * scenario.D + 9, bytes_=7, job_id=21)
    with closing(cat.cursor()) as cur:
        late.write(cur, engine)
    cat.conn.commit()
    found = poll(poller)
    beta = {"catalog": name, "client": "beta-fd", "job": "BackupBeta", "level": "full"}
    assert value(found, "bacula_job_last_success_timestamp_seconds", **beta) == int(
        scenario.T0 + 8 * scenario.D + 9
    )
    assert value(found, "bacula_job_last_run_status", **beta, status="ok") == 1
    assert value(found, "bacula_job_runs_total", **beta) == 4
    assert sorted(recorder.jobs) == [14, 20, 21, 22]
    assert recorder.checkpoints[-1] == 14
    poller.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_resume_backfill_and_job_details(make_catalog: Any, engine: str) -> None:
    """After a restart the jobs past the checkpoint come again; failures carry their log."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, 16)
    recorder = Recorder()
    poller = CatalogPoller(cat.config(), recorder, resume=lambda catalog: 5)
    poller.maybe_poll(0, wait=30)
    assert poller.up, poller.error
    # 6-13 and 16-19 finished after JobId 5; 17 has a status Bacula does not define.
    assert recorder.jobs == [6, 7, 8, 9, 10, 11, 12, 13, 16, 18, 19]
    assert recorder.history == []  # not a first start
    failed = recorder.finished[8]
    assert (failed.client, failed.level, failed.status.value) == ("gamma-fd", "full", "error")
    assert failed.status_text == "Fatal error"
    assert failed.log == ("gamma-fd JobId 8: Fatal error: Unable to connect to Client",)
    assert recorder.finished[6].status_text == "Terminated with errors"
    assert recorder.finished[9].client == ""  # the copy control job has no client
    assert recorder.finished[11].log == ()  # results that are ok carry no log
    poller.close()

    recorder = Recorder()
    window_start = scenario.T0 + 3 * scenario.D  # backfill reaches back to here
    poller = CatalogPoller(cat.config(), recorder, backfill=time.time() - window_start)
    poller.maybe_poll(0, wait=30)
    assert recorder.jobs == [4, 18, 19]  # JobTDate on or after March 4th (job 4: March 8th)
    assert recorder.history == [16]  # above the checkpoint, before the window: seen, not sent
    poller.close()


def load_debian_schema(cat: Catalog, sql_dir: Path) -> None:
    """Create the tables with the SQL script of Debian's bacula-director-<engine> package."""
    if cat.engine == "sqlite":
        cat.conn.executescript((sql_dir / "sqlite3").read_text())
    elif cat.engine == "postgresql":
        cat.conn.execute((sql_dir / "pgsql").read_text().encode())
        cat.conn.commit()
    else:
        database = cat.url.rsplit("/", 1)[1]
        conn = pymysql.connect(**MY, database=database, client_flag=CLIENT.MULTI_STATEMENTS)
        with conn.cursor() as cur:
            cur.execute((sql_dir / "mysql").read_text())
            while cur.nextset():
                pass
        conn.commit()
        conn.close()


def columns(cat: Catalog, table: str) -> set[str]:
    """Return the lowercase column names of a table."""
    with closing(cat.cursor()) as cur:
        if cat.engine == "sqlite":
            cur.execute(f"PRAGMA table_info({table})")
            return {row[1].lower() for row in cur.fetchall()}
        schema = "public" if cat.engine == "postgresql" else cat.url.rsplit("/", 1)[1]
        name = table.lower() if cat.engine == "postgresql" else table
        cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s", (schema, name),
        )
        rows = cur.fetchall()
        # SQL_ASCII databases hand text back as bytes.
        return {(r[0].decode() if isinstance(r[0], bytes) else str(r[0])).lower() for r in rows}


@pytest.mark.parametrize("engine", ENGINES)
def test_debian_schema_matches_and_reads(
    make_catalog: Any, debian_schema: Path, engine: str
) -> None:
    """Debian's real 9.6.7 tables have our columns, and the scenario reads the same on them."""
    cat = make_catalog(engine, scenario.ZONE)
    load_debian_schema(cat, debian_schema)
    for table, names in column_names(16).items():
        assert columns(cat, table) == {n.lower() for n in names}, table
    write_scenario(cat, None)
    poller = CatalogPoller(cat.config())
    assert state_only(poll(poller)) == scenario.expected(cat.config().name)
    poller.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_sessions_refuse_writes(make_catalog: Any, engine: str) -> None:
    """Even as a privileged user, the exporter's session cannot write to the catalog."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, 16)
    session = connect(cat.config())
    session.begin()
    with pytest.raises(Exception, match=r"(?i)read.?only"):
        session.query("INSERT INTO Version (VersionId) VALUES (99)")
    session.end()
    session.close()
    with closing(cat.cursor()) as cur:
        cur.execute("SELECT COUNT(*) FROM Version")
        assert cur.fetchone()[0] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_rows_are_skipped_and_counted(make_catalog: Any, engine: str) -> None:
    """NULLs, unknown codes and invalid UTF-8 never fail the scrape."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, 16)
    bad_name = "E'caf\\351'" if engine == "postgresql" else "%s"
    params: tuple[Any, ...] = () if engine == "postgresql" else (b"caf\xe9",)
    cat.execute(
        "INSERT INTO Job (JobId, Job, Name, Type, Level, ClientId, JobStatus, SchedTime, "
        f"JobTDate, JobErrors) VALUES (30, 'x', {bad_name}, 'B', 'F', 1, 'T', NULL, 1772400000, 0)",
        params,
    )
    cat.execute("INSERT INTO Job (JobId, Job, Name, Type, Level, ClientId, JobStatus) "
                "VALUES (31, 'y', 'NoLevel', 'B', NULL, 1, 'T')")
    cat.execute("INSERT INTO Job (JobId, Job, Name, Type, Level, ClientId, JobStatus) "
                "VALUES (32, 'z', 'Weird', 'B', 'F', 1, '?')")
    poller = CatalogPoller(cat.config())
    found = poll(poller)
    name = cat.config().name
    assert value(found, "bacula_job_last_success_timestamp_seconds", catalog=name,
                 client="alpha-fd", job="caf\\xe9", level="full") == 1772400000
    assert value(found, "bacula_catalog_skipped_rows_total", catalog=name,
                 reason="unknown_status") == 2
    assert value(found, "bacula_catalog_skipped_rows_total", catalog=name,
                 reason="null_or_invalid") == 1
    assert (value(found, "bacula_catalog_skipped_rows_total", catalog=name,
                  reason="invalid_utf8_repaired") or 0) >= 1
    poller.close()


def test_unknown_version_is_an_error_not_a_crash(make_catalog: Any) -> None:
    """A catalog version we do not know gives up=0 and a message naming it."""
    cat = make_catalog("sqlite")
    write_scenario(cat, 16)
    cat.execute("UPDATE Version SET VersionId = 1099")
    poller = CatalogPoller(cat.config())
    poller.maybe_poll(0, wait=10)
    assert not poller.up
    assert "unsupported catalog version 1099" in poller.error
    found = scrape(poller)
    assert value(found, "bacula_catalog_up", catalog=cat.config().name) == 0


def _wait_until_up(poller: CatalogPoller, timeout: float = 30) -> None:
    """Poll (respecting the backoff) until the catalog is up again."""
    deadline = time.monotonic() + timeout
    while not poller.up and time.monotonic() < deadline:
        poller.maybe_poll(0, wait=10)
        time.sleep(0.2)
    assert poller.up, poller.error


@pytest.mark.parametrize("engine", ("postgresql", "mysql"))
def test_catalog_goes_away_and_comes_back(
    make_catalog: Any, engine: str, tmp_path: Path
) -> None:
    """Connections refused: up=0, last series kept; access restored: back without restart."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, 16)
    db = cat.url.rsplit("/", 1)[1]
    if engine == "postgresql":
        poller = CatalogPoller(cat.config())
        before = poll(poller)
        with psycopg.connect(**PG, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false".encode())
            conn.execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
                .encode()
            )
            poller.maybe_poll(0, wait=10)
            assert not poller.up
            during = scrape(poller)
            conn.execute(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true".encode())
    else:
        user = f"ro_{db[-8:]}"
        with closing(pymysql.connect(**MY, autocommit=True)) as root, root.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY 'pw-{db}'")
            cur.execute(f"GRANT SELECT ON {db}.* TO '{user}'@'%%'")
        secret = tmp_path / "catalog.secret"
        secret.write_text(f"pw-{db}\n")
        cfg = cat.config().model_copy(
            update={"url": f"mysql://{user}@127.0.0.1:3306/{db}", "password_file": secret}
        )
        poller = CatalogPoller(cfg)
        before = poll(poller)
        with closing(pymysql.connect(**MY, autocommit=True)) as root, root.cursor() as cur:
            cur.execute(f"ALTER USER '{user}'@'%%' ACCOUNT LOCK")
            cur.execute(f"SELECT id FROM information_schema.processlist WHERE user = '{user}'")
            for (pid,) in cur.fetchall():
                cur.execute(f"KILL {int(pid)}")
            poller.maybe_poll(0, wait=10)
            assert not poller.up
            assert f"pw-{db}" not in poller.error
            during = scrape(poller)
            cur.execute(f"ALTER USER '{user}'@'%%' ACCOUNT UNLOCK")
    name = poller.cfg.name
    assert value(during, "bacula_catalog_up", catalog=name) == 0
    assert state_only(during) == state_only(before)  # the last known series stay
    assert value(during, "bacula_catalog_polls_total", catalog=name, result="failure") == 1
    _wait_until_up(poller)
    after = scrape(poller)
    assert value(after, "bacula_catalog_up", catalog=name) == 1
    assert state_only(after) == state_only(before)
    poller.close()
    if engine == "mysql":
        with closing(pymysql.connect(**MY, autocommit=True)) as root, root.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%%'")


@pytest.mark.parametrize("engine", ENGINES)
def test_statement_timeout_fails_the_poll_and_the_next_succeeds(
    make_catalog: Any, engine: str, tmp_path: Path
) -> None:
    """A catalog locked by a writer: the poll gives up after the timeout, then recovers."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, 16)
    cfg = cat.config(statement_timeout=1, connect_timeout=1)
    poller = CatalogPoller(cfg)
    poll(poller)
    with closing(cat.cursor()) as cur:
        if engine == "postgresql":
            cur.execute("LOCK TABLE Job IN ACCESS EXCLUSIVE MODE")
        elif engine == "mysql":
            cur.execute("LOCK TABLES Job WRITE")
        else:
            cat.conn.isolation_level = None
            cur.execute("BEGIN EXCLUSIVE")
        # Without the statement timeout this poll would wait for the lock forever.
        poller.maybe_poll(0, wait=30)
        assert not poller.up
        if engine == "mysql":
            cur.execute("UNLOCK TABLES")
        else:
            cur.execute("ROLLBACK" if engine == "sqlite" else "COMMIT")
    if engine == "postgresql":
        cat.conn.commit()
    _wait_until_up(poller)
    assert poller.polls["failure"] == 1
    poller.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_encryption_where_the_catalog_records_it(make_catalog: Any, engine: str) -> None:
    """Bacula 15 records encryption (FD: Job.Encrypted; SD: every volume); older can't tell."""
    new, old = make_catalog(engine, scenario.ZONE), make_catalog(engine, scenario.ZONE)
    write_scenario(new, 1026)
    write_scenario(old, 16)
    # A real 15.0.3 Director writes 1 for an FD-encrypted job on every engine (the MySQL
    # script's comment says 2); any non-zero value means encrypted.
    new.execute("UPDATE Job SET Encrypted = 1 WHERE JobId = 1")
    # SD-side volume encryption: the incremental (job 3) wrote only to encrypted volumes,
    # the differential (job 4) to one encrypted and one clear volume.
    new.execute("UPDATE Media SET VolEncrypted = 1 WHERE VolumeName IN ('Full-0001', 'Full-0002')")
    for job_id, volume in ((3, 1), (3, 2), (4, 2), (4, 3)):
        new.execute("INSERT INTO JobMedia (JobId, MediaId) VALUES (%s, %s)", (job_id, volume))
    alpha = {"client": "alpha-fd", "job": "BackupAlpha"}
    for cat, verifiable in ((new, 1), (old, 0)):
        poller = CatalogPoller(cat.config())
        found = poll(poller)
        name = cat.config().name
        assert value(found, "bacula_catalog_encryption_verifiable", catalog=name) == verifiable
        got = tuple(value(found, "bacula_job_last_success_encrypted", catalog=name, level=level,
                          **alpha) for level in ("full", "incremental", "differential"))
        assert got == ((1, 1, 0) if verifiable else (None, None, None))
        poller.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_bacula15_status_info_and_virtual_full(make_catalog: Any, engine: str) -> None:
    """StatusInfo joins the failure's reason; a Virtual Full stays a full and says what it was."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, 1026)
    cat.execute("UPDATE Job SET StatusInfo = '[DE0029]' WHERE JobId = 8")  # gamma's failure
    cat.execute("UPDATE Job SET isVirtualFull = 1 WHERE JobId = 19")  # eps's full
    recorder = Recorder()
    poller = CatalogPoller(cat.config(), recorder)
    poll(poller)
    gamma = poller.model.series[("gamma-fd", "BackupGamma", "full")]
    assert gamma.reason == "[DE0029] gamma-fd JobId 8: Fatal error: Unable to connect to Client"
    eps = poller.model.series[("eps-fd", "BackupEps", "full")]
    assert eps.last_success is not None and eps.last_success.virtual_full
    alpha = poller.model.series[("alpha-fd", "BackupAlpha", "full")]
    assert alpha.last_success is not None and not alpha.last_success.virtual_full
    # A log line that already carries the code does not get it twice.
    cat.execute("INSERT INTO Log (LogId, JobId, Time, LogText) VALUES (100, 20, "
                "'2026-03-20 00:00:00', "
                "'gamma-fd JobId 20: Fatal error: [DE0029] Unable to connect to Client')")
    cat.execute("INSERT INTO Job (JobId, Job, Name, Type, Level, ClientId, JobStatus, JobErrors, "
                "SchedTime, JobTDate, StatusInfo) VALUES (20, 'g20', 'BackupGamma', 'B', 'F', "
                "3, 'f', 1, '2026-03-20 00:00:00', 1773964800, '[DE0029]')")
    poll(poller)
    gamma = poller.model.series[("gamma-fd", "BackupGamma", "full")]
    assert gamma.reason == "gamma-fd JobId 20: Fatal error: [DE0029] Unable to connect to Client"
    assert recorder.jobs == [20]
    event = job_result_event(recorder.finished[20])
    assert event.body["status_info"] == "[DE0029]" and "Fatal error [DE0029]" in event.title
    poller.close()


def test_copy_rows_settle_before_they_count(
    make_catalog: Any,
) -> None:
    """A copy's row is Type B for a moment; only its final Type C counts. Migrations stay B."""
    cat = make_catalog("sqlite", scenario.ZONE)
    write_scenario(cat, 16)
    recorder = Recorder()
    poller = CatalogPoller(cat.config(), recorder, settle=1.0)
    poll(poller)
    key = ("alpha-fd", "BackupAlpha", "incremental")
    runs = poller.model.series[key].runs
    # The Director's copy row of job 3, before it rewrites the row to Type C.
    cat.execute("INSERT INTO Job (JobId, Job, Name, Type, Level, ClientId, JobStatus, SchedTime, "
                "JobTDate, PriorJobId) VALUES (40, 'c40', 'BackupAlpha', 'B', 'I', 1, 'T', "
                "'2026-03-10 00:00:00', 1999999999, 3)")
    poll(poller)
    assert poller.model.series[key].runs == runs and recorder.jobs == []
    assert recorder.checkpoints[-1] == 13  # 40 is not handed over while it may still change
    cat.execute("UPDATE Job SET Type = 'C', JobTDate = 1772557320 WHERE JobId = 40")
    poll(poller)
    series = poller.model.series[key]
    assert series.runs == runs and series.last_copy == 1772557320 and recorder.jobs == [40]
    # A migration's new row stays Type B: after the settling time it is the migrated data
    # (handed on, but no new run: the original was counted when it ran).
    cat.execute("INSERT INTO Job (JobId, Job, Name, Type, Level, ClientId, JobStatus, SchedTime, "
                "JobTDate, PriorJobId) VALUES (41, 'm41', 'BackupAlpha', 'B', 'I', 1, 'T', "
                "'2026-03-10 00:00:00', 1772557400, 2)")
    poll(poller)
    assert poller.model.series[key].last_migration is None
    time.sleep(1.1)
    poll(poller)
    series = poller.model.series[key]
    assert series.runs == runs and series.last_migration == 1772557400
    assert recorder.jobs == [40, 41]
    poller.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_virtual_full_settles_on_its_sources_time(make_catalog: Any, engine: str) -> None:
    """Bacula 15 ends a Virtual Full with its own JobTDate, then writes its source's: wait."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, 1026)
    recorder = Recorder()
    poller = CatalogPoller(cat.config(), recorder)
    poll(poller)
    key = ("alpha-fd", "BackupAlpha", "full")
    before = poller.model.series[key].last_success
    # As update_job_end leaves it: T, its own end in RealEndTime and JobTDate (2026-03-10
    # 00:00:10 in New York is 1773115210).
    cat.execute("INSERT INTO Job (JobId, Job, Name, Type, Level, ClientId, JobStatus, SchedTime, "
                "StartTime, EndTime, RealStartTime, RealEndTime, JobTDate, isVirtualFull) "
                "VALUES (40, 'v40', 'BackupAlpha', 'B', 'F', 1, 'T', '2026-03-10 00:00:00', "
                "'2026-03-10 00:00:00', '2026-03-10 00:00:10', '2026-03-10 00:00:00', "
                "'2026-03-10 00:00:10', 1773115210, 1)")
    poll(poller)
    assert poller.model.series[key].last_success == before and recorder.jobs == []
    # The next statement gives it the newest consolidated job's times (job 4's JobTDate).
    cat.execute("UPDATE Job SET StartTime = '2026-03-08 01:30:00', "
                "EndTime = '2026-03-08 03:30:00', JobTDate = 1772955000 WHERE JobId = 40")
    poll(poller)
    last = poller.model.series[key].last_success
    assert last is not None and (last.job_id, last.time, last.virtual_full) == (40, 1772955000,
                                                                                True)
    assert last.duration == 10  # its own run, not its sources'
    assert recorder.jobs == [40]
    poller.close()


def test_sqlite_catalog_replaced_removed_and_back(make_catalog: Any, tmp_path: Path) -> None:
    """A SQLite catalog restored over the old file is read anew; a removed one is down."""
    cat = make_catalog("sqlite", scenario.ZONE)
    write_scenario(cat, 16)
    path = Path(cat.url.removeprefix("sqlite:///"))
    poller = CatalogPoller(cat.config())
    poll(poller)
    beta = ("beta-fd", "BackupBeta", "full")
    assert beta in poller.model.series
    # A restore from a dump: a new file, written aside, moved over the old one. It lacks
    # BackupBeta's rows and has a newer full of BackupAlpha, JobIds below the watermark.
    dump = tmp_path / "restored.db"
    with closing(sqlite3.connect(dump)) as conn:
        scenario.build().write(conn.cursor(), "sqlite", 16)
        conn.execute("DELETE FROM Job WHERE Name = 'BackupBeta'")
        conn.execute("UPDATE Job SET JobTDate = 1780000000 WHERE JobId = 1")
        conn.commit()
    os.replace(dump, path)
    found = poll(poller)
    assert poller.up and beta not in poller.model.series
    assert value(found, "bacula_job_last_success_timestamp_seconds", catalog=cat.config().name,
                 client="alpha-fd", job="BackupAlpha", level="full") == 1780000000
    # Moved away: down at the next poll, with the path in the error; the series stay.
    moved = tmp_path / "moved.db"
    os.rename(path, moved)
    poller.maybe_poll(0, wait=10)
    assert not poller.up and str(path) in poller.error and "gone" in poller.error
    assert ("alpha-fd", "BackupAlpha", "full") in poller.model.series
    # Still gone when it reconnects: the error still names the path.
    time.sleep(1.1)  # the backoff after the first failure
    poller.maybe_poll(0, wait=10)
    assert not poller.up and str(path) in poller.error
    os.rename(moved, path)
    _wait_until_up(poller)
    assert value(poll(poller), "bacula_job_last_success_timestamp_seconds",
                 catalog=cat.config().name, client="alpha-fd", job="BackupAlpha",
                 level="full") == 1780000000
    poller.close()


def test_failed_verify_is_a_failing_row_and_a_nagios_warning(make_catalog: Any) -> None:
    """The scenario's verify found differences: a failing overview row, a WARNING check."""
    cat = make_catalog("sqlite", scenario.ZONE)
    write_scenario(cat, 16)
    poller = CatalogPoller(cat.config())
    poll(poller)
    rows, health = overview([poller], lambda *_: None, time.time())
    (verify,) = [r for r in rows if r.job == "VerifyAlpha"]
    assert (verify.standing, verify.level, verify.last_status, verify.reason) == (
        Standing.FAILING, "verify-catalog", "differences", "verify job ended differences")
    (admin,) = [r for r in rows if r.job == "CatalogBackup"]
    assert (admin.standing, admin.level) == (Standing.OK, "admin")
    code, line = level_of_trouble([verify], health)
    assert code == 1 and "alpha-fd/VerifyAlpha/verify-catalog last run differences" in line
    poller.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_verify_too_old_for_its_policy(make_catalog: Any, engine: str) -> None:
    """max_verify_age reaches the verify job's series and makes its status row late."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, 16)
    sla = SlaConfig.model_validate({"policies": [
        {"match": {"client": "alpha-fd", "job": "Verify*"}, "max_verify_age": "7d"}]})
    poller = CatalogPoller(cat.config(), sla=sla)
    found = poll(poller)
    name = cat.config().name
    assert value(found, "bacula_sla_max_verify_age_seconds", catalog=name, client="alpha-fd",
                 job="VerifyAlpha") == 7 * 86400
    assert not [k for k in found if k[0] == "bacula_sla_max_verify_age_seconds"
                and dict(k[1])["job"] != "VerifyAlpha"]  # backups and admin jobs get none
    rows, health = overview([poller], sla_max_age(sla), time.time())
    (verify,) = [r for r in rows if r.job == "VerifyAlpha"]
    assert (verify.standing, verify.max_age) == (Standing.LATE, 7 * 86400)
    assert level_of_trouble([verify], health)[0] == 2
    poller.close()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("version", [16, 1026])
def test_media_lifecycle_and_capacity(make_catalog: Any, engine: str, version: int) -> None:
    """Retention, RecyclePool, errors, the changer and capacity, read from the catalog."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, version)
    soon = int(time.time() - scenario.T0 + 3 * 86400)  # Full-0001 expires in three days
    cat.execute("INSERT INTO Storage (StorageId, Name, AutoChanger) VALUES (1, 'Changer1', 1)")
    for sql, params in (
        ("UPDATE Media SET Recycle = 1, VolRetention = %s, VolErrors = 2, InChanger = 1, "
         "StorageId = 1 WHERE VolumeName = 'Full-0001'", (soon,)),
        # Expired, and recycled into the Offsite pool.
        ("UPDATE Media SET Recycle = 1, VolRetention = 2592000, RecyclePoolId = "
         "(SELECT PoolId FROM Pool WHERE Name = 'Offsite') WHERE VolumeName = 'Full-0002'", ()),
        ("UPDATE Media SET InChanger = 1, StorageId = 1 WHERE VolumeName = 'Full-0003'", ()),
        ("UPDATE Pool SET MaxVolBytes = 1000000 WHERE Name = 'Full'", ()),
    ):
        if engine == "mysql" and "SELECT PoolId" in sql:  # MySQL cannot read the table it updates
            sql = sql.replace("(SELECT PoolId FROM Pool WHERE Name = 'Offsite')", "2")
        cat.execute(sql, params)
    if version >= 1022:
        cat.execute("UPDATE Pool SET MaxPoolBytes = 5000000000 WHERE Name = 'Offsite'")
    poller = CatalogPoller(cat.config())
    found = poll(poller)
    name = cat.config().name

    def got(metric: str, **labels: str) -> float | None:
        return value(found, metric, catalog=name, **labels)

    assert [got("bacula_pool_volumes_recyclable", pool="Full", within=w)
            for w in ("now", "1d", "7d")] == [0, 0, 1]
    assert [got("bacula_pool_volumes_recyclable", pool="Offsite", within=w)
            for w in ("now", "1d", "7d")] == [1, 1, 1]
    assert got("bacula_pool_volumes_errors", pool="Full") == 1
    assert got("bacula_pool_volumes_errors", pool="Offsite") == 0
    assert got("bacula_pool_volumes_in_changer", pool="Full", storage="Changer1") == 2
    assert got("bacula_pool_volumes_in_changer_appendable", pool="Full", storage="Changer1") == 1
    assert got("bacula_pool_capacity_bytes", pool="Full") == 10 * 1_000_000
    assert got("bacula_pool_capacity_bytes", pool="Offsite") == (
        5_000_000_000 if version >= 1022 else None)
    assert got("bacula_pool_capacity_bytes", pool="Empty") is None
    poller.close()


@pytest.mark.parametrize(("engine", "version"), [
    *((e, v) for e in ENGINES for v in (16, 1026)), ("postgresql", 2250)])
def test_pool_headroom_scratch_and_recycle_pool(
    make_catalog: Any, engine: str, version: int
) -> None:
    """Writable headroom per pool: retention edges, the Scratch pool, RecyclePool, MaxVols."""
    cat = make_catalog(engine, scenario.ZONE)
    b = scenario.build()
    now = time.time()
    for pool, kind, max_vols in (("Scratch", "Scratch", 0), ("Tape", "Backup", 3),
                                 ("Locked", "Backup", 1), ("Spare", "Scratch", 0)):
        b.pool(pool, kind, max_vols)
    vols = {
        # name: pool, status, LastWritten, VolRetention, Recycle, RecyclePool
        "Scratch-0001": ("Scratch", "Append", None, 0, 0, None),
        "Scratch-0002": ("Scratch", "Purged", now - 90 * 86400, 0, 1, None),
        "Tape-0001": ("Tape", "Full", now - 7200, 3600, 1, None),  # expired an hour ago
        "Tape-0002": ("Tape", "Used", now - 7200, 3 * 3600, 1, None),  # expires in an hour
        "Tape-0003": ("Tape", "Full", now - 7200, 3600, 1, "Scratch"),  # expired, to Scratch
        "Locked-0001": ("Locked", "Full", now - 7200, 3 * 3600, 1, None),
    }
    for name, (pool, status, written, retention, recycle, recycle_pool) in vols.items():
        media_id = b.volume(name, pool, status, 100, written or 0)
        b.rows["Media"][-1].update(
            LastWritten=b.rows["Media"][-1]["LastWritten"] if written else None,
            VolRetention=retention, Recycle=recycle,
            RecyclePoolId=b.pool(recycle_pool) if recycle_pool else 0)
        assert media_id
    for row in b.rows["Pool"]:
        row["LabelFormat"] = {"Full": "Full-", "Offsite": "Offsite-"}.get(row["Name"], "*")
        row["NextPoolId"] = b.pool("Offsite") if row["Name"] == "Full" else 0
        row["ScratchPoolId"] = b.pool("Spare") if row["Name"] == "Locked" else 0
    [beta] = [j for j in b.rows["Job"] if j["JobId"] == 7]  # BackupBeta's last full run
    beta["PoolId"] = b.pool("Locked")
    with closing(cat.cursor()) as cur:
        b.write(cur, cat.engine, version)
    cat.conn.commit()
    poller = CatalogPoller(cat.config())
    found = poll(poller)
    name = cat.config().name

    def room(pool: str) -> list[float | None]:
        return [value(found, "bacula_pool_headroom_volumes", catalog=name, pool=pool, source=s)
                for s in ("append", "recyclable", "scratch", "new")]

    assert room("Full") == [1, 0, 3, 4]  # MaxVols 10, 3 held: 3 from Scratch, then 4 labeled
    assert room("Tape") == [0, 1, 0, 0]  # at MaxVols: nothing from Scratch
    assert room("Scratch") == [1, 2, 0, 0]  # the purged volume, and Tape-0003 recycled into it
    assert room("Empty") == [0, 0, 3, 0]  # takes from the pool named Scratch
    assert room("Offsite") == [1, 0, 3, math.inf]  # labels its own, no MaxVols
    assert room("Locked") == [0, 0, 0, 0]  # its ScratchPoolId (Spare) is empty
    assert [value(found, "bacula_pool_volumes_recyclable", catalog=name, pool="Tape", within=w)
            for w in ("now", "1d")] == [1, 2]

    def jobs(pool: str) -> float | None:
        return value(found, "bacula_pool_jobs", catalog=name, pool=pool)

    # The scenario's backup keys write to Full, whose copies go to Offsite: six finished ones
    # and BackupDelta's two that never finished; BackupBeta's last full run used Locked.
    assert (jobs("Locked"), jobs("Tape"), jobs("Scratch")) == (1, 0, 0)
    assert (jobs("Full"), jobs("Offsite")) == (8, 8)
    rows, _ = overview([poller], lambda *_: None, now)
    pools = [(r.job, r.standing, r.reason) for r in rows if r.level == "pool"]
    assert pools == [("Locked", Standing.FAILING,
                      "no volume left to write; 1 job(s) use this pool")]
    poller.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_volumes_exposed_only_when_asked(make_catalog: Any, engine: str) -> None:
    """expose_volumes: true adds series per volume; without it there are none."""
    cat = make_catalog(engine, scenario.ZONE)
    write_scenario(cat, 1026)
    cat.execute("UPDATE Media SET Recycle = 1, VolRetention = 86400 WHERE VolumeName = 'Full-0001'")
    off = CatalogPoller(cat.config())
    assert not [k for k in poll(off) if k[0].startswith("bacula_volume_")]
    off.close()
    on = CatalogPoller(cat.config(expose_volumes=True))
    found = poll(on)
    name = cat.config().name

    def got(metric: str, volume: str, **labels: str) -> float | None:
        pool = volume.split("-")[0]
        return value(found, metric, catalog=name, pool=pool, volume=volume, **labels)

    assert got("bacula_volume_status", "Full-0001", status="full") == 1
    assert got("bacula_volume_status", "Offsite-0001", status="append") == 1
    assert [got("bacula_volume_bytes", v) for v in ("Full-0001", "Full-0002", "Full-0003")] == [
        5000, 3000, 1000]
    assert got("bacula_volume_last_written_timestamp_seconds", "Full-0002") == scenario.T0
    assert got("bacula_volume_expires_timestamp_seconds", "Full-0001") == scenario.T0 + 86400
    assert got("bacula_volume_expires_timestamp_seconds", "Full-0002") is None  # Recycle = no
    assert len([k for k in found if k[0] == "bacula_volume_status"]) == 4
    on.close()


@pytest.mark.parametrize("version", [2210, 2250])
def test_bareos_consolidate_and_volume_encryption(make_catalog: Any, version: int) -> None:
    """Bareos: consolidate jobs (Type O) have their own series and rows; EncryptionKey counts."""
    cat = make_catalog("postgresql", scenario.ZONE)
    b = scenario.build()
    now = time.time()
    b.job("Consolidate", "alpha-fd", now - 2 * 86400, now - 2 * 86400 + 60, type_="O",
          level="F", job_id=30)
    b.job("Consolidate", "alpha-fd", now - 3600, now - 3000, type_="O", level="F", status="f",
          job_id=31)
    b.job("ConsolidateLab", "beta-fd", now - 3600, now - 3000, type_="O", level="F", job_id=32)
    keyed = b.volume("Tape-0001", "Full", "Append", 100, now)
    b.rows["Media"][-1]["EncryptionKey"] = "k3y"
    b.job_media(1, keyed)  # the scenario's first full wrote only to the keyed tape
    b.job_media(5, keyed)  # BackupBeta's full wrote to it and to a volume without a key
    b.job_media(5, 1)
    with closing(cat.cursor()) as cur:
        b.write(cur, cat.engine, version)
    cat.conn.commit()
    sla = SlaConfig.model_validate({"policies": [
        {"match": {"job": "ConsolidateLab"}, "max_consolidate_age": "off"}]})
    recorder = Recorder()
    poller = CatalogPoller(cat.config(), recorder, sla=sla)
    found = poll(poller)
    name = cat.config().name

    def got(metric: str, **labels: str) -> float | None:
        return value(found, metric, catalog=name, **labels)

    job = {"client": "alpha-fd", "job": "Consolidate"}
    assert got("bacula_consolidate_last_run_status", **job, status="error") == 1
    assert got("bacula_consolidate_last_success_timestamp_seconds", **job) == int(
        now - 2 * 86400 + 60)
    assert (got("bacula_consolidate_runs_total", **job),
            got("bacula_consolidate_failures_total", **job)) == (2, 1)
    assert got("bacula_sla_max_consolidate_age_seconds", **job) == 26 * 3600
    assert got("bacula_sla_max_consolidate_age_seconds", client="beta-fd",
               job="ConsolidateLab") is None
    assert got("bacula_job_last_success_encrypted", client="alpha-fd", job="BackupAlpha",
               level="full") == 1
    assert got("bacula_job_last_success_encrypted", client="beta-fd", job="BackupBeta",
               level="full") is None  # one volume without a key: unknown, not "no"
    rows, _ = overview([poller], sla_max_age(sla), now)
    (row,) = [r for r in rows if r.job == "Consolidate"]
    assert (row.level, row.standing) == ("consolidate", Standing.LATE)
    (lab,) = [r for r in rows if r.job == "ConsolidateLab"]
    assert lab.standing is Standing.OK
    # A consolidation that ends now: its ticket names the type, the row is ok again.
    cat.execute("INSERT INTO Job (JobId, Job, Name, Type, Level, ClientId, JobStatus, JobTDate) "
                "VALUES (33, 'Consolidate.33', 'Consolidate', 'O', 'F', 1, 'T', %s)",
                (int(now),))
    found = poll(poller)
    assert got("bacula_consolidate_last_run_status", **job, status="ok") == 1
    assert job_result_event(recorder.finished[33]).body["type"] == "consolidate"
    rows, _ = overview([poller], sla_max_age(sla), now)
    assert [r.standing for r in rows if r.job == "Consolidate"] == [Standing.OK]
    poller.close()
