"""The exporter against catalogs that real Bacula 9.6 and 15 Directors wrote, on three engines.

Every expected value is derived from the Job, Client, Pool and Media rows Bacula wrote (which are
first checked against Bacula's own `llist`), never hard-coded: the tests prove the exporter
agrees with Bacula, not with its authors.
"""

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.bacula import JobRow, wall_to_epoch
from tests.e2e.conftest import SINK, E2ERun, Scrape

pytestmark = pytest.mark.integration

LEVELS = {"F": "full", "I": "incremental", "D": "differential"}
SUCCESS = {"ok", "warning"}
FAILED = {"error", "canceled"}
ENGINE_NAMES = {"sqlite": {"sqlite"}, "postgresql": {"postgresql"}, "mysql": {"mysql", "mariadb"}}

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


CHECKS = {"V": "verify", "D": "admin"}
CHECK_LEVELS = {"O": "verify-volume-to-catalog", "d": "verify-disk-to-catalog",
                "C": "verify-catalog", "V": "verify-init", "A": "verify-data"}


def check_labels(run: E2ERun, row: JobRow) -> tuple[str, dict[str, str]]:
    """Return the kind (verify, admin) and the labels of a verify or admin job's series."""
    kind = CHECKS[row.type]
    found = {"catalog": run.catalog, "client": run.clients.get(row.client_id, ("", ""))[0],
             "job": row.name}
    if kind == "verify":
        found["level"] = CHECK_LEVELS[row.level]
    return kind, found


def keys(scrape: Scrape, name: str, catalog: str) -> set[Key]:
    """Return the (client, job, level) of every series of a per-job metric."""
    found = set()
    for label_set in scrape.series(name, catalog=catalog):
        d = dict(label_set)
        found.add((d["client"], d["job"], d["level"]))
    return found


def duration(run: E2ERun, row: JobRow) -> float:
    """Return how long the job ran as the Director wrote it, read in its zone.

    EndTime - StartTime; on Bacula 15 RealEndTime - RealStartTime, which for a Virtual Full is
    its own run rather than the consolidated jobs' times.
    """
    assert row.ran_from and row.ran_until
    return wall_to_epoch(row.ran_until, run.lab.tz) - wall_to_epoch(row.ran_from, run.lab.tz)


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
    assert warn.errors > 0  # Bacula never writes 'W': a warning is T with JobErrors > 0
    assert duration(e2e, warn) > 0  # so the duration check compares something
    assert (e2e.job("canceled").type, e2e.job("canceled").status) == ("B", "A")
    assert (e2e.job("restore").type, status_class(e2e.job("restore"))) == ("R", "ok")
    assert (e2e.job("long").type, status_class(e2e.job("long"))) == ("B", "ok")

    control = e2e.job("copy")
    assert (control.type, status_class(control)) == ("c", "ok")
    copies = [j for j in e2e.jobs if j.type == "C"]
    by_id = {j.job_id: j for j in e2e.jobs}
    # PoolUncopiedJobs selects every good backup in the pool that had no copy yet.
    originals = {full.job_id, inc.job_id, warn.job_id}
    if e2e.lab.release.modern:
        originals.add(e2e.job("crypt").job_id)
    assert {c.prior_job_id for c in copies} == originals
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
        # llist prints an admin job's blank level as nothing.
        mine = {"name": row.name, "type": row.type, "level": row.level.strip(),
                "jobstatus": row.status, "clientid": str(row.client_id),
                "jobtdate": str(row.job_tdate), "jobfiles": str(row.files),
                "jobbytes": str(row.bytes), "joberrors": str(row.errors),
                "priorjobid": str(row.prior_job_id), "starttime": row.start_time or "",
                "endtime": row.end_time or "", "realendtime": row.real_end_time or ""}
        if e2e.lab.release.modern:
            # llist does not print Encrypted: test_real_bacula15 checks it against the job report.
            mine |= {"realstarttime": row.real_start_time or "",
                     "statusinfo": row.status_info or "",
                     "isvirtualfull": str(int(row.virtual_full))}
        assert {k: bacula.get(k) for k in mine} == mine, f"JobId {row.job_id}"


def test_director_wrote_wall_clock_in_its_zone(e2e: E2ERun) -> None:
    """RealEndTime read in the Director's zone is JobTDate: the zone setting is the right one."""
    for row in e2e.jobs:
        assert row.real_end_time is not None
        # Copies and Virtual Fulls carry the source's JobTDate, not their own end.
        assert (wall_to_epoch(row.real_end_time, e2e.lab.tz) == row.job_tdate
                or row.type == "C" or row.virtual_full)
    if e2e.lab.tz != "UTC":
        # Read as UTC the same text is hours off: a zone mistake cannot pass unnoticed here.
        row = e2e.job("full")
        assert row.real_end_time is not None
        assert abs(wall_to_epoch(row.real_end_time, "UTC") - row.job_tdate) >= 3600


# ----- the exporter against it ---------------------------------------------------------------


def test_catalog_up_and_info(e2e: E2ERun, scrape: Scrape) -> None:
    """The catalog is up and identified as the lab's Bacula release on the right engine."""
    assert scrape.value("bacula_catalog_up", catalog=e2e.catalog) == 1
    infos = scrape.series("bacula_catalog_info", catalog=e2e.catalog)
    assert len(infos) == 1
    (info, value), = infos.items()
    info_d = dict(info)
    assert value == 1
    assert info_d["schema_version"] == str(e2e.lab.release.version)
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


def test_verify_and_admin_jobs(e2e: E2ERun, scrape: Scrape) -> None:
    """Verify and admin jobs: last run, status, success and counters as the Director wrote them."""
    assert (e2e.job("verify_ok").type, e2e.job("verify_ok").status) == ("V", "T")
    assert (e2e.job("verify_diff").type, e2e.job("verify_diff").status) == ("V", "D")
    assert (e2e.job("admin").type, e2e.job("admin").status) == ("D", "T")
    by_key: dict[tuple[str, frozenset[tuple[str, str]]], list[JobRow]] = defaultdict(list)
    for row in e2e.jobs:
        if row.type in CHECKS and status_class(row) is not None:
            kind, found = check_labels(e2e, row)
            by_key[(kind, frozenset(found.items()))].append(row)
    assert len(by_key) == 3
    for (kind, label_set), rows in by_key.items():
        found, last = dict(label_set), rows[-1]
        statuses = scrape.series(f"bacula_{kind}_last_run_status", **found)
        assert {dict(k)["status"]: v for k, v in statuses.items()} == {status_class(last): 1}
        assert scrape.value(f"bacula_{kind}_runs_total", **found) == len(rows)
        failures = sum(status_class(r) in FAILED | {"differences"} for r in rows)
        assert scrape.value(f"bacula_{kind}_failures_total", **found) == failures
        if kind == "verify":
            good = [r.job_tdate for r in rows if status_class(r) in SUCCESS]
            assert scrape.value("bacula_verify_last_success_timestamp_seconds",
                                **found) == (max(good) if good else None)
    # The tampered file is what the disk verify found.
    differ = [p for p in e2e.posts["watcher"] if p.accepted
              and p.key == f"{e2e.catalog}:{e2e.job('verify_diff').job_id}"]
    assert differ and differ[0].body["status"] == "differences"


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
    # StartTime (Bacula 15: RealStartTime) is wall-clock text in the Director's zone: this is
    # where a zone error shows.
    start = wall_to_epoch(row.ran_from or row.sched_time or "", e2e.lab.tz)
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
        elif row.type in CHECKS:
            kind, labels_ = check_labels(e2e, row)
            assert scrape.value(f"bacula_{kind}_last_run_timestamp_seconds",
                                **labels_) == row.job_tdate, role


def test_exported_times_are_true_unix_times(e2e: E2ERun) -> None:
    """Exported end times lie between our own clock readings around `run` and `wait`."""
    by_id = {j.job_id: j for j in e2e.jobs}
    checked = 0
    for job_id, (before, after) in e2e.bounds.items():
        row = by_id[job_id]
        if row.type != "B" or row.virtual_full:  # a Virtual Full is as old as its sources
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


# ----- the ticket bridge: every job the Director ran yields exactly one ticket ----------------


def event_ids(run: E2ERun, rows: list[JobRow] | None = None) -> set[str]:
    """Return the event ids (`<catalog>:<JobId>`) of the rows that reached a final status."""
    return {f"{run.catalog}:{r.job_id}" for r in (rows if rows is not None else run.jobs)
            if status_class(r) is not None}


def accepted(run: E2ERun, tag: str) -> Counter[str]:
    """Return how often each Idempotency-Key was accepted from one exporter."""
    return Counter(p.key for p in run.posts[tag] if p.accepted)


def delivered(scrape: Scrape, result: str = "success") -> float:
    """Return the exporter's own count of deliveries to the webhook sink with a result."""
    return scrape.value("bacula_exporter_deliveries_total", sink=SINK, result=result) or 0.0


def test_every_job_yields_exactly_one_ticket(e2e: E2ERun) -> None:
    """Each job of every Type the Director ran arrives once, keyed `<catalog>:<JobId>`."""
    expected = event_ids(e2e)
    assert len(expected) == len(e2e.jobs)  # the daemons stopped after every job had ended
    assert {r.type for r in e2e.jobs} >= {"B", "C", "c", "R"}
    assert accepted(e2e, "watcher") == Counter(expected)
    by_id = {f"{e2e.catalog}:{r.job_id}": r for r in e2e.jobs}
    for post in e2e.posts["watcher"]:
        assert post.key == post.body["id"] == post.body["key"], post
        if not post.accepted:
            continue
        row, body = by_id[post.key], post.body["body"]
        assert post.body["kind"] == body["kind"] == "job_result"
        assert post.body["job_type"] == body["type_code"] == row.type, post.key
        assert (body["catalog"], body["job_id"], body["job_name"], body["job"]) == (
            e2e.catalog, row.job_id, row.job, row.name)
        assert (body["status_code"], body["status"]) == (row.status, status_class(row))
        assert (body["files"], body["bytes"], body["errors"]) == (row.files, row.bytes,
                                                                  row.errors), post.key
        client = e2e.clients.get(row.client_id, ("", ""))[0]
        assert body["client"] in (client, ""), post.key  # copy control jobs name no client
    # The receiver refused the first delivery with 503: the outbox retried it, once.
    refused = [p for p in e2e.posts["watcher"] if not p.accepted]
    assert len(refused) == 1 and refused[0].key in expected
    settled = e2e.settled["watcher"]
    assert delivered(settled) == len(expected)
    assert delivered(settled, "retry") == 1
    assert not delivered(settled, "dead")
    assert e2e.outbox["watcher"].events == expected
    assert e2e.outbox["watcher"].deliveries == {"done": len(expected)}


def test_failed_job_ticket_carries_the_reason(e2e: E2ERun) -> None:
    """The unreachable client's ticket says why, from Bacula's Log table, and is critical."""
    row = e2e.job("unreachable")
    (post,) = [p for p in e2e.posts["watcher"] if p.accepted
               and p.key == f"{e2e.catalog}:{row.job_id}"]
    assert (post.body["status"], post.body["severity"]) == ("error", "critical")
    log = post.body["body"]["log"]
    assert any("Unable to connect to Client: bad-fd" in line for line in log), log
    assert "bad-fd" in post.body["title"] and "BackupBad" in post.body["title"]
    ok = e2e.job("full")
    (good,) = [p for p in e2e.posts["watcher"] if p.accepted
               and p.key == f"{e2e.catalog}:{ok.job_id}"]
    assert (good.body["status"], good.body["severity"]) == ("ok", "info")


def test_restore_yields_one_restore_ticket(e2e: E2ERun) -> None:
    """The Director's restore: one event, marked as a restore, with what the catalog knows."""
    row = e2e.job("restore")
    key = f"{e2e.catalog}:{row.job_id}"
    assert accepted(e2e, "watcher")[key] == 1
    (post,) = [p for p in e2e.posts["watcher"] if p.accepted and p.key == key]
    body = post.body["body"]
    assert post.body["title"].startswith(f"Restore: [{e2e.catalog}] good-fd RestoreFiles: ")
    assert (body["type"], body["client"], body["job"], body["job_name"]) == (
        "restore", "good-fd", "RestoreFiles", row.job)
    assert (body["status"], body["files"], body["bytes"]) == ("ok", row.files, row.bytes)
    assert row.files > 0 and row.bytes > 0
    assert row.start_time and row.end_time
    for name, stamp in (("start", row.start_time), ("end", row.end_time)):
        assert body[name] == datetime.fromtimestamp(wall_to_epoch(stamp, e2e.lab.tz),
                                                    UTC).isoformat(), name
    # Only restores carry the prefix.
    prefixed = {p.key for p in e2e.posts["watcher"] if p.body["title"].startswith("Restore:")}
    assert prefixed == {f"{e2e.catalog}:{r.job_id}" for r in e2e.jobs if r.type == "R"}


def test_restore_ticket_carries_its_log_lines(e2e: E2ERun) -> None:
    """The restore's own report (client, where, files) travels with its event."""
    row = e2e.job("restore")
    (post,) = [p for p in e2e.posts["watcher"] if p.accepted
               and p.key == f"{e2e.catalog}:{row.job_id}"]
    log = post.body["body"]["log"]
    assert any(f"JobId {row.job_id}:" in line for line in log), log
    assert any("Restore" in line for line in log), log


def test_restart_on_the_same_state_dir_sends_nothing_again(e2e: E2ERun) -> None:
    """The cold exporter resumes from the watcher's checkpoint: no job is re-sent."""
    assert e2e.posts["cold"] == []
    assert e2e.outbox["cold"].events == e2e.outbox["watcher"].events
    assert e2e.outbox["cold"].deliveries == e2e.outbox["watcher"].deliveries
    assert not delivered(e2e.settled["cold"])


def test_new_state_dir_without_backfill_sends_nothing(e2e: E2ERun) -> None:
    """Jobs that ended before an exporter first started are not replayed without backfill."""
    assert e2e.posts["fresh"] == []
    fresh = e2e.outbox["fresh"]
    assert fresh.events == frozenset()
    assert fresh.checkpoints[e2e.catalog] >= max(r.job_id for r in e2e.jobs)
    assert not delivered(e2e.settled["fresh"])


def test_backfill_replays_every_job_with_the_same_ids(e2e: E2ERun) -> None:
    """With `backfill`, a new exporter sends the window's jobs, with the watcher's event ids."""
    assert accepted(e2e, "backfill") == Counter(event_ids(e2e))
    assert delivered(e2e.settled["backfill"]) == len(e2e.jobs)
    unreachable = f"{e2e.catalog}:{e2e.job('unreachable').job_id}"
    (post,) = [p for p in e2e.posts["backfill"] if p.key == unreachable]
    assert any("Unable to connect" in line for line in post.body["body"]["log"])


def test_jobs_that_ended_during_downtime_arrive_after_restart(e2e: E2ERun) -> None:
    """An exporter down while BackupLong ran delivers it, and only it, when it comes back."""
    long_id = e2e.job("long").job_id
    assert e2e.snapshot_ids == event_ids(e2e, [r for r in e2e.jobs if r.job_id < long_id])
    assert accepted(e2e, "resumed") == Counter({f"{e2e.catalog}:{long_id}": 1})
    assert e2e.outbox["resumed"].events == e2e.outbox["watcher"].events


def test_delivery_figures(e2e_runs: dict[str, Any]) -> None:
    """Events sent, delivered and duplicated per engine and exporter (shown with -s or -rA)."""
    figures = {}
    for engine, run in e2e_runs.items():
        if not isinstance(run, E2ERun):
            continue
        got = {tag: accepted(run, tag) for tag in run.posts}
        figures[engine] = {
            "jobs": len(event_ids(run)), "stored": len(run.outbox["watcher"].events),
            "delivered": len(got["watcher"]),
            "duplicates": sum(n - 1 for n in got["watcher"].values()),
            "refused_then_retried": sum(not p.accepted for p in run.posts["watcher"]),
            **{f"{tag}_sent": sum(c.values()) for tag, c in got.items() if tag != "watcher"},
        }
    print(f"\nbacula e2e ticket deliveries: {figures}")
    for engine, f in figures.items():
        assert f["delivered"] == f["jobs"] == f["stored"], engine
        assert f["duplicates"] == 0, engine


# Families whose every sample the tests above derive from the Director's rows.
CHECKED_FAMILIES = (
    "bacula_job_last_success_timestamp_seconds", "bacula_job_last_success_bytes",
    "bacula_job_last_success_files", "bacula_job_last_success_duration_seconds",
    "bacula_job_last_success_encrypted", "bacula_job_last_run_timestamp_seconds",
    "bacula_job_last_run_status", "bacula_job_runs_total", "bacula_job_failures_total",
    "bacula_job_last_copy_timestamp_seconds", "bacula_restore_runs_total", "bacula_client_info",
    "bacula_pool_volumes", "bacula_pool_bytes", "bacula_verify_last_run_timestamp_seconds",
    "bacula_verify_last_run_status", "bacula_verify_last_success_timestamp_seconds",
    "bacula_verify_runs_total", "bacula_verify_failures_total",
    "bacula_admin_last_run_timestamp_seconds", "bacula_admin_last_run_status",
    "bacula_admin_runs_total", "bacula_admin_failures_total",
)


def test_comparison_figures(e2e_runs: dict[str, Any]) -> None:
    """How many values each lab compared (shown with -s or -rA), per release and engine."""
    figures = {}
    for lab, run in e2e_runs.items():
        if not isinstance(run, E2ERun) or run.final is None:
            continue
        llist_fields = 13 + (3 if run.lab.release.modern else 0)  # see the llist check above
        exported = sum(len(run.final.series(name, catalog=run.catalog))
                       for name in CHECKED_FAMILIES)
        figures[lab] = {"jobs": len(run.jobs), "llist_values": len(run.jobs) * llist_fields,
                        "exported_values": exported, "scrapes_compared": 2}
    print(f"\nbacula e2e values compared: {figures}")
    for lab, f in figures.items():
        assert f["jobs"] > 0 and f["exported_values"] > 0, lab
