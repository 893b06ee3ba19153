"""Restore-point coverage: the chain rule on plain data and on catalogs of every engine."""

import time
from contextlib import closing
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exporter.catalog.builder import CatalogBuilder
from exporter.catalog.restore_points import BackupJob, Coverage, coverage
from exporter.exposition.sla import SlaConfig
from exporter.service.poller import CatalogPoller
from tests.integration.test_catalogs import ENGINES, poll
from tests.promtext import value

D = 86400.0


def job(job_id: int, day: float, level: str, usable: bool = True, size: int = 0) -> BackupJob:
    """A good backup on a given day."""
    return BackupJob(job_id, day * D, level, usable, size)


def test_full_and_incrementals_all_usable() -> None:
    """Every job of an intact chain is a restore point; the newest needs the whole chain."""
    assert coverage([job(1, 0, "F"), job(2, 1, "I"), job(3, 2, "I")]) == Coverage(0, 2 * D, 3, 3)


def test_purged_incremental_breaks_the_chain_until_the_next_differential() -> None:
    """Points after a purged incremental are lost; a differential restarts from the full."""
    jobs = [job(1, 0, "F"), job(2, 1, "I", usable=False), job(3, 2, "I"), job(4, 3, "D"),
            job(5, 4, "I")]
    assert coverage(jobs) == Coverage(0, 4 * D, 3, 3)  # points: F, D, I after D


def test_failed_full_in_the_middle_keeps_the_previous_chain() -> None:
    """A failed full never reaches this list, so incrementals keep building on the last good one."""
    assert coverage([job(1, 0, "F"), job(2, 1, "I"), job(4, 3, "I")]) == Coverage(0, 3 * D, 3, 3)


def test_only_full_recycled_leaves_nothing() -> None:
    """Without a readable full nothing can be restored, however good the incrementals are."""
    assert coverage([job(1, 0, "F", usable=False), job(2, 1, "I"), job(3, 2, "D")]) is None
    assert coverage([job(1, 0, "I"), job(2, 1, "D")]) is None  # no full at all


def test_restorable_bytes_are_those_some_point_needs() -> None:
    """Bytes of jobs in the chain of some restore point; a broken chain's jobs are left out."""
    jobs = [job(1, 0, "F", size=1000), job(2, 1, "I", size=10),
            job(3, 2, "I", usable=False, size=20), job(4, 3, "I", size=40),  # 4 needs 3
            job(5, 4, "D", size=300), job(6, 5, "I", size=50)]
    cover = coverage(jobs)
    assert cover is not None and cover.bytes == 1000 + 10 + 300 + 50
    assert cover.chain_jobs == 3 and cover.points == 4
    # The newest incremental is on a purged volume: the chain count is the newest point's.
    assert coverage([*jobs, job(7, 6, "I", usable=False, size=9)]) == cover


def test_virtual_full_starts_a_chain() -> None:
    """A Virtual Full (level f) is a full."""
    assert coverage([job(1, 0, "f"), job(2, 1, "I")]) == Coverage(0, D, 2, 2)


def build(now: float) -> CatalogBuilder:
    """Three clients: a purged incremental, a recycled only full, a failed full in the middle."""
    b = CatalogBuilder(ZoneInfo("Europe/Berlin"))
    vols = {s: b.volume(f"V-{s}", "Full", s, 1, now) for s in ("Full", "Purged", "Append",
                                                                 "Recycle", "Used", "Error")}
    t0 = now - 20 * D

    def good(client: str, day: int, level: str, vol: str) -> int:
        jid = b.job(f"B-{client}", client, t0 + day * D, t0 + day * D + 60, level=level,
                    bytes_=1000)
        b.job_media(jid, vols[vol])
        return jid

    good("a-fd", 0, "F", "Full")
    good("a-fd", 1, "I", "Purged")
    good("a-fd", 2, "I", "Append")
    good("b-fd", 0, "F", "Recycle")
    good("b-fd", 1, "I", "Used")
    good("c-fd", 0, "F", "Full")
    b.job("B-c-fd", "c-fd", t0 + D, t0 + D + 30, status="f")  # the failed full
    good("c-fd", 2, "I", "Used")
    good("c-fd", 3, "I", "Error")
    return b


@pytest.mark.integration
@pytest.mark.parametrize("engine", ENGINES)
def test_restore_points_on_every_engine(make_catalog: Any, engine: str) -> None:
    """The catalog's volumes and JobMedia rows give the same coverage on every engine."""
    now = float(int(time.time()))
    cat = make_catalog(engine, "Europe/Berlin")
    with closing(cat.cursor()) as cur:
        build(now).write(cur, engine, 1024)
    cat.conn.commit()
    poller = CatalogPoller(cat.config(restore_window="30d"))
    found = poll(poller)
    name = cat.config().name
    t0 = now - 20 * D

    def get(metric: str, client: str) -> float | None:
        return value(found, metric, catalog=name, client=client, job=f"B-{client}")

    assert get("bacula_job_restore_points", "a-fd") == 1  # only the full: the chain broke
    assert get("bacula_job_oldest_restore_point_timestamp_seconds", "a-fd") == t0 + 60
    assert get("bacula_job_newest_restore_point_timestamp_seconds", "a-fd") == t0 + 60
    assert get("bacula_job_restore_points", "b-fd") == 0
    assert get("bacula_job_newest_restore_point_timestamp_seconds", "b-fd") is None
    assert get("bacula_job_restore_points", "c-fd") == 2  # full and day 2; day 3 is on Error
    assert get("bacula_job_newest_restore_point_timestamp_seconds", "c-fd") == t0 + 2 * D + 60
    assert get("bacula_job_restore_chain_jobs", "c-fd") == 2
    # Every job wrote 1,000 bytes: a's full; none of b's; c's full and day 2.
    assert [get("bacula_job_restorable_bytes", c) for c in ("a-fd", "b-fd", "c-fd")] == [
        1000, 0, 2000]
    poller.close()


def test_window_follows_the_sla_retention(make_catalog: Any) -> None:
    """Without restore_window, a retention promise sets it: retention + a full cycle + a day."""
    now = float(int(time.time()))
    cat = make_catalog("sqlite", "Europe/Berlin")
    with closing(cat.cursor()) as cur:
        build(now).write(cur, "sqlite", 16)
    cat.conn.commit()
    sla = SlaConfig.model_validate({"defaults": {"retention": "14d"}})
    poller = CatalogPoller(cat.config(), sla=sla)
    found = poll(poller)
    assert poller.reader.restore_window == (14 + 7 + 1) * D
    assert value(found, "bacula_job_restore_points", catalog=cat.config().name, client="a-fd",
                 job="B-a-fd") == 1
    poller.close()


@pytest.mark.integration
@pytest.mark.parametrize("engine", ENGINES)
def test_migrated_backup_keeps_its_place(make_catalog: Any, engine: str) -> None:
    """A migrated full (Type M, its new B row on another volume) still starts the chain."""
    now = float(int(time.time()))
    cat = make_catalog(engine, "Europe/Berlin")
    b = CatalogBuilder(ZoneInfo("Europe/Berlin"))
    disk = b.volume("Disk-1", "Full", "Purged", 1, now)  # purged after the migration
    tape = b.volume("Tape-1", "Tape", "Full", 1, now)
    t0 = now - 20 * D
    full = b.job("B-m-fd", "m-fd", t0, t0 + 60, type_="M", bytes_=1000)
    b.job_media(full, disk)
    for day in (1, 2):
        b.job_media(b.job("B-m-fd", "m-fd", t0 + day * D, t0 + day * D + 60, level="I"), tape)
    # Days later the migration: a control job and the new row with the full's times.
    b.job("MigrateToTape", "m-fd", t0 + 3 * D, t0 + 3 * D + 60, type_="g")
    moved = b.job("B-m-fd", "m-fd", t0, t0 + 60, prior_job_id=full, pool="Tape", bytes_=1000)
    b.job_media(moved, tape)
    # Another client's copy, promoted to a backup when its original (JobId 99) was purged.
    b.job_media(b.job("B-p-fd", "p-fd", t0, t0 + 60, prior_job_id=99, pool="Tape"), tape)
    with closing(cat.cursor()) as cur:
        b.write(cur, engine, 1024)
    cat.conn.commit()
    sla = SlaConfig.model_validate({"defaults": {"max_migration_lag": "1d"}})
    poller = CatalogPoller(cat.config(restore_window="30d"), sla=sla, settle=0.0)
    found = poll(poller)
    name = cat.config().name

    def get(metric: str, **labels: str) -> float | None:
        return value(found, metric, catalog=name, client="m-fd", job="B-m-fd", **labels)

    assert get("bacula_job_restore_points") == 3  # the moved full and both incrementals
    assert get("bacula_job_oldest_restore_point_timestamp_seconds") == t0 + 60
    assert get("bacula_job_restore_chain_jobs") == 3
    assert get("bacula_job_restorable_bytes") == 1000  # the moved full; not the original too
    assert get("bacula_job_last_success_timestamp_seconds", level="full") == t0 + 60
    assert get("bacula_job_last_migration_timestamp_seconds", level="full") == t0 + 60
    assert get("bacula_job_runs_total", level="full") == 1  # the original run, once
    assert get("bacula_sla_max_migration_lag_seconds") == D
    promoted = {"catalog": name, "client": "p-fd", "job": "B-p-fd", "level": "full"}
    assert value(found, "bacula_job_last_success_timestamp_seconds", **promoted) == t0 + 60
    # The catalog cannot tell it from a migration cheaply: a cold start takes it for one.
    assert value(found, "bacula_job_last_migration_timestamp_seconds", **promoted) == t0 + 60
    control = {"catalog": name, "client": "m-fd", "job": "MigrateToTape"}
    assert value(found, "bacula_migration_last_run_status", **control, status="ok") == 1
    assert value(found, "bacula_migration_runs_total", **control) == 1
    # An incremental migrated later: no new run, and the last success does not go back.
    cat.execute("UPDATE Job SET Type = 'M' WHERE JobId = 2")
    cat.execute("INSERT INTO Job (JobId, Job, Name, Type, Level, ClientId, JobStatus, JobTDate, "
                "PriorJobId, PoolId) VALUES (9, 'B-m-fd.9', 'B-m-fd', 'B', 'I', 1, 'T', %s, 2, 2)",
                (int(t0 + D + 60),))
    found = poll(poller)
    assert get("bacula_job_last_success_timestamp_seconds", level="incremental") == t0 + 2 * D + 60
    assert get("bacula_job_last_migration_timestamp_seconds", level="incremental") == t0 + D + 60
    assert get("bacula_job_runs_total", level="incremental") == 2
    poller.close()
