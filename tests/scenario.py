"""One catalog scenario, written to every engine and version, with what the exporter must say."""

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from exporter.catalog.builder import CatalogBuilder

ZONE = "America/New_York"  # not UTC, and with DST, so conversions are really exercised
T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
H, D = 3600, 86400
# A differential that runs across the spring-forward gap: 01:30 EST -> 03:30 EDT is one hour.
DST_START = datetime(2026, 3, 8, 6, 30, tzinfo=UTC).timestamp()


def build() -> CatalogBuilder:
    """Write the scenario: see the comments for what each row tests."""
    b = CatalogBuilder(ZoneInfo(ZONE))
    b.pool("Full", max_vols=10)
    b.pool("Offsite", "Copy")
    b.pool("Empty")
    for name in ("alpha-fd", "beta-fd", "gamma-fd", "delta-fd", "eps-fd", "zeta-fd"):
        b.client(name, uname=f"9.6.7 {name}")
    b.job("BackupAlpha", "alpha-fd", T0 + H, T0 + H + 600, bytes_=1000, files=10, job_id=1)
    b.job("BackupAlpha", "alpha-fd", T0 + D + H, T0 + D + H + 60, level="I", bytes_=100,
          files=2, job_id=2)
    # T with JobErrors > 0: "OK -- with warnings", still the last success.
    b.job("BackupAlpha", "alpha-fd", T0 + 2 * D + H, T0 + 2 * D + H + 120, level="I", errors=2,
          bytes_=150, files=3, job_id=3)
    b.job("BackupAlpha", "alpha-fd", DST_START, DST_START + H, level="D", bytes_=500, files=5,
          job_id=4)
    b.job("BackupBeta", "beta-fd", T0 + 3 * H, T0 + 3 * H + 300, bytes_=2000, files=20, job_id=5)
    # A failure and a cancel after the success: neither hides it.
    b.job("BackupBeta", "beta-fd", T0 + D + 3 * H, T0 + D + 3 * H + 30, status="E", job_id=6)
    b.job("BackupBeta", "beta-fd", T0 + 2 * D + 3 * H, T0 + 2 * D + 3 * H + 5, status="A",
          job_id=7)
    b.job("BackupGamma", "gamma-fd", T0 + 3 * H, T0 + 3 * H + 10, status="f", job_id=8)
    b.log(8, T0 + 3 * H + 10, "gamma-fd JobId 8: Fatal error: Unable to connect to Client")
    b.job("CopyOffsite", "", T0 + 4 * H, T0 + 4 * H + 60, type_="c", pool="Offsite", job_id=9)
    # The copy of job 1 carries job 1's times and JobTDate; it is no backup success itself.
    b.job("BackupAlpha", "alpha-fd", T0 + H, T0 + H + 600, type_="C", bytes_=1000, files=10,
          pool="Offsite", prior_job_id=1, job_id=10)
    b.job("RestoreFiles", "alpha-fd", T0 + 5 * H, T0 + 5 * H + 60, type_="R", files=3, job_id=11)
    b.job("RestoreFiles", "beta-fd", T0 + 6 * H, T0 + 6 * H + 60, type_="R", status="f",
          job_id=12)
    b.job("VerifyAlpha", "alpha-fd", T0 + 7 * H, T0 + 7 * H + 60, type_="V", level="C",
          status="D", job_id=13)
    b.job("BackupDelta", "delta-fd", T0 + 5 * D, None, status="R", job_id=14)  # running
    b.job("BackupDelta", "delta-fd", T0 + 5 * D + 60, None, level="I", status="C", job_id=15)
    b.rows["Job"][-1].update(StartTime=None)  # created, waiting: only SchedTime is set
    b.job("CatalogBackup", "", T0 + 8 * H, T0 + 8 * H + 5, type_="D", level=" ", job_id=16)
    b.job("BackupAlpha", "alpha-fd", T0 + 9 * H, T0 + 9 * H + 5, status="X", job_id=17)
    b.job("BackupEps", "eps-fd", T0 + 3 * D, T0 + 3 * D + 30, level="I", status="W", job_id=18)
    b.job("BackupEps", "eps-fd", T0 + 4 * D, T0 + 4 * D + 40, level="f", job_id=19)
    b.volume("Full-0001", "Full", "Full", 5000, T0)
    b.volume("Full-0002", "Full", "Full", 3000, T0)
    b.volume("Full-0003", "Full", "Append", 1000, T0)
    b.volume("Offsite-0001", "Offsite", "Append", 700, T0)
    return b


def stream_catalog(path: Path) -> None:
    """Write the scenario to a SQLite file, with a client stream-fd for write_stream_job."""
    builder = build()
    builder.client("stream-fd")
    with closing(sqlite3.connect(path)) as conn:
        builder.write(conn.cursor(), "sqlite", 16)
        conn.commit()


def write_stream_job(conn: sqlite3.Connection, job_id: int) -> None:
    """Add one finished backup of stream-fd (every seventh failed) and commit."""
    batch = build()
    batch.client("stream-fd")
    batch.rows = {t: [] for t in batch.rows}
    start = T0 + 30 * D + job_id * 60
    batch.job("BackupStream", "stream-fd", start, start + 30,
              status="f" if job_id % 7 == 0 else "T", job_id=job_id)
    batch.write(conn.cursor(), "sqlite")
    conn.commit()


def key(client: str, job: str, level: str, catalog: str) -> dict[str, str]:
    """Return a label set."""
    return {"catalog": catalog, "client": client, "job": job, "level": level}


def expected(catalog: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples the exporter must serve for the scenario (name, labels) -> value."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def put(name: str, value: float, **labels: str) -> None:
        out[(name, frozenset({"catalog": catalog, **labels}.items()))] = value

    def success(client: str, job: str, level: str, end: float, nbytes: int, files: int,
                duration: float) -> None:
        labels = {"client": client, "job": job, "level": level}
        put("bacula_job_last_success_timestamp_seconds", int(end), **labels)
        put("bacula_job_last_success_bytes", nbytes, **labels)
        put("bacula_job_last_success_files", files, **labels)
        put("bacula_job_last_success_duration_seconds", duration, **labels)

    def last(client: str, job: str, level: str, end: float, status: str, runs: int,
             failures: int, nbytes: int = 0) -> None:
        labels = {"client": client, "job": job, "level": level}
        put("bacula_job_last_run_timestamp_seconds", int(end), **labels)
        put("bacula_job_last_run_status", 1, status=status, **labels)
        put("bacula_job_runs_total", runs, **labels)
        put("bacula_job_failures_total", failures, **labels)
        put("bacula_job_bytes_total", nbytes, **labels)

    a, b_ = ("alpha-fd", "BackupAlpha"), ("beta-fd", "BackupBeta")
    success(*a, "full", T0 + H + 600, 1000, 10, 600)
    last(*a, "full", T0 + H + 600, "ok", 1, 0, 1000)
    put("bacula_job_last_copy_timestamp_seconds", int(T0 + H + 600), client=a[0], job=a[1],
        level="full")
    success(*a, "incremental", T0 + 2 * D + H + 120, 150, 3, 120)
    last(*a, "incremental", T0 + 2 * D + H + 120, "warning", 2, 0, 250)
    success(*a, "differential", DST_START + H, 500, 5, 3600)
    last(*a, "differential", DST_START + H, "ok", 1, 0, 500)
    success(*b_, "full", T0 + 3 * H + 300, 2000, 20, 300)
    last(*b_, "full", T0 + 2 * D + 3 * H + 5, "canceled", 3, 2, 2000)
    put("bacula_job_last_failure_timestamp_seconds", int(T0 + 2 * D + 3 * H + 5), client=b_[0],
        job=b_[1], level="full")
    last("gamma-fd", "BackupGamma", "full", T0 + 3 * H + 10, "error", 1, 1)
    put("bacula_job_last_failure_timestamp_seconds", int(T0 + 3 * H + 10), client="gamma-fd",
        job="BackupGamma", level="full")
    success("eps-fd", "BackupEps", "incremental", T0 + 3 * D + 30, 0, 0, 30)
    last("eps-fd", "BackupEps", "incremental", T0 + 3 * D + 30, "warning", 1, 0)
    success("eps-fd", "BackupEps", "full", T0 + 4 * D + 40, 0, 0, 40)
    last("eps-fd", "BackupEps", "full", T0 + 4 * D + 40, "ok", 1, 0)
    put("bacula_job_running", 1, client="delta-fd", job="BackupDelta", level="full")
    put("bacula_job_running_start_timestamp_seconds", T0 + 5 * D, client="delta-fd",
        job="BackupDelta", level="full")
    put("bacula_job_running", 1, client="delta-fd", job="BackupDelta", level="incremental")
    put("bacula_job_running_start_timestamp_seconds", T0 + 5 * D + 60, client="delta-fd",
        job="BackupDelta", level="incremental")
    for name in ("alpha-fd", "beta-fd", "gamma-fd", "delta-fd", "eps-fd", "zeta-fd"):
        put("bacula_client_info", 1, client=name, uname=f"9.6.7 {name}")
    put("bacula_restore_runs_total", 1, client="alpha-fd", status="ok")
    put("bacula_restore_runs_total", 1, client="beta-fd", status="error")
    put("bacula_pool_volumes", 2, pool="Full", status="full")
    put("bacula_pool_volumes", 1, pool="Full", status="append")
    put("bacula_pool_volumes", 1, pool="Offsite", status="append")
    put("bacula_pool_bytes", 9000, pool="Full")
    put("bacula_pool_bytes", 700, pool="Offsite")
    put("bacula_pool_bytes", 0, pool="Empty")
    put("bacula_pool_max_volumes", 10, pool="Full")
    put("bacula_pool_max_volumes", 0, pool="Offsite")
    put("bacula_pool_max_volumes", 0, pool="Empty")
    put("bacula_catalog_skipped_rows_total", 1, reason="unknown_status")
    # Job 13: a verify that found differences; job 16: an admin job that ran fine.
    verify = {"client": "alpha-fd", "job": "VerifyAlpha", "level": "verify-catalog"}
    put("bacula_verify_last_run_timestamp_seconds", int(T0 + 7 * H + 60), **verify)
    put("bacula_verify_last_run_status", 1, status="differences", **verify)
    put("bacula_verify_runs_total", 1, **verify)
    put("bacula_verify_failures_total", 1, **verify)
    admin = {"client": "", "job": "CatalogBackup"}
    put("bacula_admin_last_run_timestamp_seconds", int(T0 + 8 * H + 5), **admin)
    put("bacula_admin_last_run_status", 1, status="ok", **admin)
    put("bacula_admin_runs_total", 1, **admin)
    put("bacula_admin_failures_total", 0, **admin)
    return out


STATE_METRICS = {name for name, _ in expected("x")}
