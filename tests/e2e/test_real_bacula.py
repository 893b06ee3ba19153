"""The exporter against catalogs a real Bacula 9.6 Director wrote, on SQLite, PostgreSQL, MariaDB.

Every expected value is derived from the Job, Client, Pool and Media rows Bacula wrote (which are
first checked against Bacula's own `llist`), never hard-coded: the tests prove the exporter
agrees with Bacula, not with its authors.
"""

from collections import Counter, defaultdict
from typing import Any

import pytest

from tests.e2e.bacula import JobRow, wall_to_epoch
from tests.e2e.conftest import E2ERun, Scrape

pytestmark = pytest.mark.integration

LEVELS = {"F": "full", "I": "incremental", "D": "differential"}
SUCCESS = {"ok", "warning"}
FAILED = {"error", "canceled"}
ENGINE_NAMES = {"sqlite": {"sqlite"}, "postgresql": {"postgresql"}, "mysql": {"mysql", "mariadb"}}
STAGE_BUDGET = 240.0  # seconds for the scenario on all engines; the CI stage allows 300

Key = tuple[str, str, str]  # client, job, level


def status_class(row: JobRow) -> str | None:
    """Return the status class of a row as DESIGN.md defines it; None while it runs."""
    if row.status == "T":
        return "warning" if row.errors > 0 else "ok"
    return {"W": "warning", "E": "error", "e": "error", "f": "error", "I": "error",
            "A": "canceled", "D": "differences"}.get(row.status)


def key_of(run: E2ERun, row: JobRow) -> Key:
    """Return the (client, job, level) labels of a row."""
    return run.clients[row.client_id][0], row.name, LEVELS[row.level]


def labels(run: E2ERun, key: Key, **extra: str) -> dict[str, str]:
    """Return the full label set of a per-job series."""
    client, job, level = key
    return {"catalog": run.catalog, "client": client, "job": job, "level": level, **extra}


def finished(run: E2ERun, type_: str) -> dict[Key, list[JobRow]]:
    """Return the finished rows of one Type by (client, job, level), oldest first."""
    out: dict[Key, list[JobRow]] = defaultdict(list)
    for row in run.jobs:
        if row.type == type_ and status_class(row) is not None:
            out[key_of(run, row)].append(row)
    return out


def keys(scrape: Scrape, name: str, catalog: str) -> set[Key]:
    """Return the (client, job, level) of every series of a per-job metric."""
    found = set()
    for label_set in scrape.series(name, catalog=catalog):
        d = dict(label_set)
        found.add((d["client"], d["job"], d["level"]))
    return found


def duration(run: E2ERun, row: JobRow) -> float:
    """Return EndTime - StartTime as the Director wrote them, read in its zone."""
    assert row.start_time and row.end_time
    return wall_to_epoch(row.end_time, run.lab.tz) - wall_to_epoch(row.start_time, run.lab.tz)


@pytest.fixture(params=["watcher", "cold"])
def scrape(request: pytest.FixtureRequest, e2e: E2ERun) -> Scrape:
    """The final exposition of the exporter that watched the jobs happen, or of a fresh one."""
    result = e2e.final if request.param == "watcher" else e2e.cold
    assert result is not None
    return result


# ----- what Bacula wrote ---------------------------------------------------------------------


def test_bacula_wrote_every_kind_of_job(e2e: E2ERun) -> None:
    """The scenario produced the rows the other tests rely on, and Bacula's llist agrees."""
    full, inc = e2e.job("full"), e2e.job("incremental")
    assert (full.type, full.level, status_class(full)) == ("B", "F", "ok")
    assert full.files > 0 and full.bytes > 0
    assert (inc.type, inc.level, status_class(inc)) == ("B", "I", "ok")
    assert 0 < inc.files < full.files
    bad = e2e.job("unreachable")
    assert (bad.type, bad.status, e2e.clients[bad.client_id][0]) == ("B", "f", "bad-fd")
    warn = e2e.job("warning")
    assert (warn.type, warn.status, status_class(warn)) == ("B", "T", "warning")
    assert warn.errors > 0  # Bacula 9.6 never writes 'W': a warning is T with JobErrors > 0
    assert duration(e2e, warn) > 0  # so the duration check compares something
    assert (e2e.job("canceled").type, e2e.job("canceled").status) == ("B", "A")
    assert (e2e.job("restore").type, status_class(e2e.job("restore"))) == ("R", "ok")
    assert (e2e.job("long").type, status_class(e2e.job("long"))) == ("B", "ok")

    control = e2e.job("copy")
    assert (control.type, status_class(control)) == ("c", "ok")
    copies = [j for j in e2e.jobs if j.type == "C"]
    by_id = {j.job_id: j for j in e2e.jobs}
    # PoolUncopiedJobs selects every good backup in the pool that had no copy yet.
    assert {c.prior_job_id for c in copies} == {full.job_id, inc.job_id, warn.job_id}
    for copy in copies:
        source = by_id[copy.prior_job_id]
        # A copy keeps the source's name, level, client and times; RealEndTime is its own.
        assert (copy.name, copy.level, copy.client_id, copy.job_tdate, copy.start_time) == (
            source.name, source.level, source.client_id, source.job_tdate, source.start_time)
        assert copy.pool_id != source.pool_id
        assert status_class(copy) == "ok"

    assert set(e2e.llist) == {j.job_id for j in e2e.jobs}
    for row in e2e.jobs:
        bacula = e2e.llist[row.job_id]
        mine = {"name": row.name, "type": row.type, "level": row.level,
                "jobstatus": row.status, "clientid": str(row.client_id),
                "jobtdate": str(row.job_tdate), "jobfiles": str(row.files),
                "jobbytes": str(row.bytes), "joberrors": str(row.errors),
                "priorjobid": str(row.prior_job_id), "starttime": row.start_time or "",
                "endtime": row.end_time or "", "realendtime": row.real_end_time or ""}
        assert {k: bacula.get(k) for k in mine} == mine, f"JobId {row.job_id}"


def test_director_wrote_wall_clock_in_its_zone(e2e: E2ERun) -> None:
    """RealEndTime read in the Director's zone is JobTDate: the zone setting is the right one."""
    for row in e2e.jobs:
        assert row.real_end_time is not None
        assert wall_to_epoch(row.real_end_time, e2e.lab.tz) == row.job_tdate or row.type == "C"
    if e2e.lab.tz != "UTC":
        # Read as UTC the same text is hours off: a zone mistake cannot pass unnoticed here.
        row = e2e.job("full")
        assert row.real_end_time is not None
        assert abs(wall_to_epoch(row.real_end_time, "UTC") - row.job_tdate) >= 3600


# ----- the exporter against it ---------------------------------------------------------------


def test_catalog_up_and_info(e2e: E2ERun, scrape: Scrape) -> None:
    """The catalog is up and identified as Bacula 9.6 (schema 16) on the right engine."""
    assert scrape.value("bacula_catalog_up", catalog=e2e.catalog) == 1
    infos = scrape.series("bacula_catalog_info", catalog=e2e.catalog)
    assert len(infos) == 1
    (info, value), = infos.items()
    info_d = dict(info)
    assert value == 1
    assert info_d["schema_version"] == "16"
    assert info_d["engine"] in ENGINE_NAMES[e2e.lab.engine]
    assert "bacula" in info_d["product"].lower()


def test_last_success(e2e: E2ERun, scrape: Scrape) -> None:
    """Per client/job/level: JobTDate, bytes, files and duration of the newest good backup."""
    expected: set[Key] = set()
    for key, rows in finished(e2e, "B").items():
        good = [r for r in rows if status_class(r) in SUCCESS]
        if not good:
            continue
        expected.add(key)
        last = good[-1]
        got = {m: scrape.value(f"bacula_job_last_success_{m}", **labels(e2e, key))
               for m in ("timestamp_seconds", "bytes", "files", "duration_seconds")}
        assert got == {"timestamp_seconds": last.job_tdate, "bytes": last.bytes,
                       "files": last.files, "duration_seconds": duration(e2e, last)}, key
    # No series for a job that never succeeded (the unreachable client, the canceled job).
    assert keys(scrape, "bacula_job_last_success_timestamp_seconds", e2e.catalog) == expected


def test_last_run_and_status(e2e: E2ERun, scrape: Scrape) -> None:
    """Per client/job/level: the newest finished backup's time and exactly one status class."""
    runs = finished(e2e, "B")
    for key, rows in runs.items():
        last = rows[-1]
        assert scrape.value("bacula_job_last_run_timestamp_seconds",
                            **labels(e2e, key)) == last.job_tdate, key
        statuses = scrape.series("bacula_job_last_run_status", **labels(e2e, key))
        assert {dict(k)["status"]: v for k, v in statuses.items() if v} == {
            status_class(last): 1}, key
    assert keys(scrape, "bacula_job_last_run_timestamp_seconds", e2e.catalog) == set(runs)


def test_run_and_failure_counters(e2e: E2ERun, scrape: Scrape) -> None:
    """Per client/job/level: every finished backup counted, error and canceled as failures."""
    runs = finished(e2e, "B")
    for key, rows in runs.items():
        assert scrape.value("bacula_job_runs_total", **labels(e2e, key)) == len(rows), key
        failures = sum(status_class(r) in FAILED for r in rows)
        assert scrape.value("bacula_job_failures_total", **labels(e2e, key)) == failures, key
    assert keys(scrape, "bacula_job_runs_total", e2e.catalog) == set(runs)


def test_last_copy(e2e: E2ERun, scrape: Scrape) -> None:
    """Per client/job/level: the source time (JobTDate) of the newest successful copy."""
    copies = {k: [r for r in rows if status_class(r) in SUCCESS]
              for k, rows in finished(e2e, "C").items()}
    expected = {k: max(r.job_tdate for r in rows) for k, rows in copies.items() if rows}
    assert expected  # the scenario copied something
    got = {k: scrape.value("bacula_job_last_copy_timestamp_seconds", **labels(e2e, k))
           for k in keys(scrape, "bacula_job_last_copy_timestamp_seconds", e2e.catalog)}
    assert got == expected


def test_restore_counter(e2e: E2ERun, scrape: Scrape) -> None:
    """Restores are counted per client and status class, apart from backups."""
    expected = Counter(
        (e2e.clients[r.client_id][0], status_class(r)) for r in e2e.jobs
        if r.type == "R" and status_class(r) is not None
    )
    got = {(dict(k)["client"], dict(k)["status"]): v
           for k, v in scrape.series("bacula_restore_runs_total", catalog=e2e.catalog).items()}
    assert {k: v for k, v in got.items() if v} == dict(expected)
    assert all(job != "RestoreFiles"
               for _, job, _ in keys(scrape, "bacula_job_runs_total", e2e.catalog))


def test_client_info(e2e: E2ERun, scrape: Scrape) -> None:
    """Every Client row is visible, the one that never had a good backup included."""
    got = {(dict(k)["client"], dict(k)["uname"]): v
           for k, v in scrape.series("bacula_client_info", catalog=e2e.catalog).items()}
    assert got == {(name, uname): 1 for name, uname in e2e.clients.values()}
    # The unreachable client: known, failed, never succeeded.
    bad_key = key_of(e2e, e2e.job("unreachable"))
    assert bad_key[0] in {name for name, _ in e2e.clients.values()}
    assert scrape.value("bacula_job_last_run_status", **labels(e2e, bad_key, status="error")) == 1
    assert scrape.value("bacula_job_last_success_timestamp_seconds", **labels(e2e, bad_key)) is None


def test_pool_volumes_and_bytes(e2e: E2ERun, scrape: Scrape) -> None:
    """Volumes per pool and status, and bytes per pool, as the Media rows have them."""
    volumes: Counter[tuple[str, str]] = Counter((m.pool, m.status.lower()) for m in e2e.media)
    pool_bytes: Counter[str] = Counter()
    for m in e2e.media:
        pool_bytes[m.pool] += m.bytes
    got = {(dict(k)["pool"], dict(k)["status"]): v
           for k, v in scrape.series("bacula_pool_volumes", catalog=e2e.catalog).items()}
    assert {k: v for k, v in got.items() if v} == dict(volumes)
    for pool in e2e.pools.values():
        value = scrape.value("bacula_pool_bytes", catalog=e2e.catalog, pool=pool)
        assert value == pool_bytes[pool] or (value is None and pool not in pool_bytes), pool


# ----- while the exporter runs ---------------------------------------------------------------


def test_running_job_then_last_success(e2e: E2ERun) -> None:
    """A job shows as running with its true start time, then as the last success after one poll."""
    assert e2e.during is not None and e2e.after_long is not None and e2e.running_row is not None
    row, done = e2e.running_row, e2e.job("long")
    key = key_of(e2e, done)
    assert row.status == "R"
    assert e2e.during.value("bacula_job_running", **labels(e2e, key)) == 1
    # StartTime is wall-clock text in the Director's zone: this is where a zone error shows.
    start = wall_to_epoch(row.start_time or row.sched_time or "", e2e.lab.tz)
    before, _ = e2e.bounds[done.job_id]
    assert int(before) <= start <= e2e.during.at
    assert e2e.during.value("bacula_job_running_start_timestamp_seconds",
                            **labels(e2e, key)) == start
    assert e2e.during.value("bacula_job_last_success_timestamp_seconds", **labels(e2e, key)) is None

    after = e2e.after_long
    assert not after.value("bacula_job_running", **labels(e2e, key))
    assert after.value("bacula_job_last_success_timestamp_seconds",
                       **labels(e2e, key)) == done.job_tdate
    assert after.value("bacula_job_last_run_status", **labels(e2e, key, status="ok")) == 1


def test_every_job_shows_after_one_poll(e2e: E2ERun) -> None:
    """The first scrape after each job ended (one poll, no restart) already reflects it."""
    assert e2e.empty is not None
    assert e2e.empty.value("bacula_catalog_up", catalog=e2e.catalog) == 1
    assert not e2e.empty.series("bacula_job_last_run_timestamp_seconds", catalog=e2e.catalog)
    by_id = {j.job_id: j for j in e2e.jobs}
    for role, job_id in e2e.ids.items():
        row, scrape = by_id[job_id], e2e.after_job[job_id]
        if row.type == "B":
            key = key_of(e2e, row)
            assert scrape.value("bacula_job_last_run_timestamp_seconds",
                                **labels(e2e, key)) == row.job_tdate, role
            assert scrape.value("bacula_job_last_run_status",
                                **labels(e2e, key, status=status_class(row) or "")) == 1, role
        elif row.type == "c":  # the copy control job ends after every copy it made
            newest: dict[Key, int] = {}
            for copy in (j for j in e2e.jobs if j.type == "C"):
                key = key_of(e2e, copy)
                newest[key] = max(newest.get(key, 0), copy.job_tdate)
            for key, tdate in newest.items():
                assert scrape.value("bacula_job_last_copy_timestamp_seconds",
                                    **labels(e2e, key)) == tdate, role
        elif row.type == "R":
            client = e2e.clients[row.client_id][0]
            assert scrape.value("bacula_restore_runs_total", catalog=e2e.catalog, client=client,
                                status=status_class(row) or "") == 1, role


def test_exported_times_are_true_unix_times(e2e: E2ERun) -> None:
    """Exported end times lie between our own clock readings around `run` and `wait`."""
    by_id = {j.job_id: j for j in e2e.jobs}
    checked = 0
    for job_id, (before, after) in e2e.bounds.items():
        row = by_id[job_id]
        if row.type != "B":
            continue
        scrape = e2e.after_job[job_id]
        key = key_of(e2e, row)
        value = scrape.value("bacula_job_last_run_timestamp_seconds", **labels(e2e, key))
        assert value is not None
        # JobTDate has whole seconds, so the lower bound is rounded down.
        assert int(before) <= value <= after, (row.name, before, value, after)
        checked += 1
    assert checked >= 5


def test_cold_start_agrees_with_incremental_polls(e2e: E2ERun) -> None:
    """A fresh exporter on the finished catalog says what the watching one ended up with."""
    assert e2e.final is not None and e2e.cold is not None

    def job_families(scrape: Scrape) -> dict[str, Any]:
        return {name: {k: v for k, v in by_labels.items() if v}
                for name, by_labels in scrape.samples.items()
                if name.startswith(("bacula_job_", "bacula_client_", "bacula_restore_",
                                    "bacula_catalog_info"))}

    assert job_families(e2e.final) == job_families(e2e.cold)


def test_stage_time(e2e_runs: dict[str, Any]) -> None:
    """The scenario on every engine fits the CI budget (measured, reported with -s or -rA)."""
    seconds = e2e_runs["_seconds"]
    timings = {e: getattr(r, "timings", None) for e, r in e2e_runs.items() if e != "_seconds"}
    print(f"\nbacula e2e: {seconds:.1f} s for all engines in parallel; per engine {timings}")
    assert seconds < STAGE_BUDGET
