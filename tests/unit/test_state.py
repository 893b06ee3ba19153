"""Semantics on plain data: status classes, levels, types, ordering, counting."""

import pytest

from exporter.catalog.codes import StatusClass, classify, level_name
from exporter.catalog.model import Aggregate, CatalogModel, Client, JobRecord
from exporter.catalog.rows import latest_ids


def rec(job_id: int, status: str = "T", *, level: str = "F", type_: str = "B", errors: int = 0,
        tdate: int | None = None, name: str = "J", client: int = 1) -> JobRecord:
    """A finished (or not) job row of client 1."""
    return JobRecord(job_id=job_id, job=f"{name}.{job_id}", name=name, type=type_, level=level,
                     client_id=client, status=status, errors=errors,
                     job_tdate=1000 + job_id if tdate is None else tdate,
                     start_time=float(job_id), end_time=float(job_id + 10))


def state() -> CatalogModel:
    """A state that knows client 1."""
    s = CatalogModel()
    s.set_clients({1: Client("c1", "u")})
    return s


@pytest.mark.parametrize(("code", "errors", "cls"), [
    ("T", 0, StatusClass.OK), ("T", 3, StatusClass.WARNING), ("W", 0, StatusClass.WARNING),
    ("E", 0, StatusClass.ERROR), ("e", 0, StatusClass.ERROR), ("f", 0, StatusClass.ERROR),
    ("I", 0, StatusClass.ERROR), ("A", 0, StatusClass.CANCELED),
    ("D", 0, StatusClass.DIFFERENCES), ("R", 0, StatusClass.RUNNING),
    ("l", 0, StatusClass.RUNNING), ("C", 0, StatusClass.WAITING), ("m", 0, StatusClass.WAITING),
    ("X", 0, None),
])
def test_status_classes(code: str, errors: int, cls: StatusClass | None) -> None:
    """Every JobStatus letter maps to the class DESIGN.md gives it."""
    assert classify(code, errors) == cls


def test_levels() -> None:
    """Virtual Full counts as full; labels are spelled out in lowercase."""
    assert [level_name(c) for c in "FfIDB"] == [
        "full", "full", "incremental", "differential", "base"
    ]
    assert level_name("?") is None


def test_failure_never_hides_success() -> None:
    """A later failure becomes the last run; the last success stays."""
    s = state()
    s.apply([rec(1), rec(2, "f")])
    series = s.series[("c1", "J", "full")]
    assert series.last_success is not None and series.last_success.job_id == 1
    assert series.last_run is not None and series.last_run.status is StatusClass.ERROR
    assert (series.runs, series.failures) == (2, 1)
    assert series.last_failure is not None and series.last_failure.job_id == 2


def test_failure_reason_is_the_telling_log_line() -> None:
    """The first error line wins; otherwise the last line; reasons follow the last failure."""
    s = state()
    s.apply([rec(1, "f")])
    s.set_reasons({1: ["c1-fd JobId 1: Start Backup\n", "c1-fd JobId 1: Fatal error: No Job status"
                       " returned from FD.\nmore\n", "Termination: *** Backup Error ***"]})
    series = s.series[("c1", "J", "full")]
    assert series.failure_reason == "c1-fd JobId 1: Fatal error: No Job status returned from FD."
    s.apply([rec(2, "A")])
    assert series.failure_reason == ""
    s.set_reasons({2: ["canceled by operator", "Termination: Backup Canceled"]})
    assert series.failure_reason == "Termination: Backup Canceled"



def test_failure_reason_among_given_keys_only() -> None:
    """A poll names the series of its failed jobs; others (and unknown keys) are left alone."""
    s = state()
    s.apply([rec(1, "f")])
    s.set_reasons({1: ["Fatal error: disk full"]}, [("c1", "J", "incremental")])
    assert s.series[("c1", "J", "full")].failure_reason == ""
    s.set_reasons({1: ["Fatal error: disk full"]}, [("c1", "J", "full"), ("c9", "X", "full")])
    assert s.series[("c1", "J", "full")].failure_reason == "Fatal error: disk full"


def test_warning_counts_as_success_unless_configured() -> None:
    """T with errors is a success by default and not with warning_is_success=False."""
    s = state()
    s.apply([rec(1, errors=1)])
    assert s.series[("c1", "J", "full")].last_success is not None
    strict = CatalogModel(warning_is_success=False)
    strict.set_clients({1: Client("c1", "u")})
    strict.apply([rec(1, errors=1)])
    assert strict.series[("c1", "J", "full")].last_success is None


def test_copies_restores_and_control_jobs_are_not_backups() -> None:
    """Type C sets the copy time only; R counts restores; c, D, V never touch backups."""
    s = state()
    s.apply([rec(1, type_="C", tdate=500), rec(2, type_="R"), rec(3, type_="c", client=0),
             rec(4, type_="D", level=" ", client=0), rec(5, "D", type_="V", level="C")])
    series = s.series[("c1", "J", "full")]
    assert series.last_success is None and series.runs == 0
    assert series.last_copy == 500
    assert s.restores == {("c1", "ok"): 1}
    assert not s.skipped


def test_running_then_finished_counts_once() -> None:
    """A job seen running, then finished, is counted once and reported finished once."""
    s = state()
    assert s.apply([rec(1, "R")]) == []
    assert ("c1", "J", "full") in s.running()
    done = s.apply([rec(1)])
    assert [r.job_id for r in done] == [1]
    assert s.running() == {}
    assert s.series[("c1", "J", "full")].runs == 1


def test_seed_counts_and_cold_rows_do_not_double_count() -> None:
    """Cold start: counters come from aggregates; the rows fetched after add nothing."""
    s = state()
    s.seed([
        Aggregate(1, "J", "B", "F", "T", False, 5, 9, 1, 1009),
        Aggregate(1, "J", "B", "F", "f", False, 2, 8, 3, 1008),
        Aggregate(1, "J", "C", "F", "T", False, 4, 12, 10, 1007),
        Aggregate(1, "J", "B", "F", "?", False, 1, 13, 13, 1013),
    ])
    s.apply([rec(9), rec(8, "f")], count=False)
    series = s.series[("c1", "J", "full")]
    assert (series.runs, series.failures, series.last_copy) == (7, 2, 1007)
    assert series.last_success is not None and series.last_success.job_id == 9
    assert s.skipped == {"unknown_status": 1}


def test_unknown_client_and_codes_are_skipped_and_counted() -> None:
    """Rows the state cannot place are counted, not raised."""
    s = state()
    s.apply([rec(1, client=99), rec(2, "?"), rec(3, level="Z")])
    assert s.skipped == {"unknown_client": 1, "unknown_status": 1, "unknown_level": 1}
    assert s.series == {}


def test_generation_changes_only_with_content() -> None:
    """Renderers rely on the generation to skip work when nothing changed."""
    s = state()
    g = s.generation
    s.apply([])
    s.set_clients({1: Client("c1", "u")})
    assert s.generation == g
    s.apply([rec(1)])
    assert s.generation > g


def test_migration_keeps_the_data_in_place_and_counts_no_new_run() -> None:
    """A migration's new B row (PriorJobId set, the original's JobTDate) is not a later run."""
    s = state()
    s.apply([rec(1, tdate=5000), rec(2, tdate=9000)])
    # Job 1 is migrated later: its new row 3 carries job 1's time.
    moved = JobRecord(job_id=3, job="J.3", name="J", type="B", level="F", client_id=1,
                      status="T", job_tdate=5000, prior_job_id=1, pool_id=7)
    s.apply([moved])
    series = s.series[("c1", "J", "full")]
    assert series.last_success is not None and series.last_success.job_id == 2
    assert series.last_run is not None and series.last_run.job_id == 2
    assert (series.runs, series.last_migration) == (2, 5000.0)
    # A failed migration leaves every series alone.
    s.apply([JobRecord(job_id=4, job="J.4", name="J", type="B", level="F", client_id=1,
                       status="f", job_tdate=9000, prior_job_id=2)])
    assert (series.runs, series.failures, series.last_migration) == (2, 0, 5000.0)
    # With its original purged, a moved row is the last success at the original's time.
    lone = state()
    lone.apply([moved])
    only = lone.series[("c1", "J", "full")]
    assert only.last_success is not None and only.last_success.time == 5000.0
    assert only.last_run is None and only.runs == 0


def test_cold_start_counts_migrated_originals_once() -> None:
    """Type M rows were backup runs; the moved rows only give the migration time."""
    s = state()
    s.seed([
        Aggregate(1, "J", "M", "F", "T", False, 3, 3, 1, 5000, 300),
        Aggregate(1, "J", "B", "F", "T", False, 2, 5, 4, 9000, 200),
        Aggregate(1, "J", "B", "F", "T", False, 3, 8, 6, 5000, 300, moved=True, migrated=True),
        # A copy promoted to a backup when its original was purged: moved, not migrated.
        Aggregate(1, "J", "B", "F", "T", False, 1, 9, 9, 7000, 100, moved=True),
    ])
    series = s.series[("c1", "J", "full")]
    assert (series.runs, series.bytes, series.last_migration) == (5, 500, 5000.0)
    picked = latest_ids([
        Aggregate(1, "J", "M", "F", "T", False, 3, 3, 1, 5000),
        Aggregate(1, "J", "B", "F", "T", False, 2, 5, 4, 9000),
        Aggregate(1, "J", "B", "F", "T", False, 3, 8, 6, 5000, moved=True),
    ], s)
    assert picked == {3, 5, 8}
