"""Verify, admin, migration control and Bareos consolidate jobs: last run, success, counters."""

from collections import defaultdict

from exporter.catalog.model import Check
from exporter.exposition.text import Lines, escape, number

# name, type, help, in the order they are rendered.
CHECK_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("bacula_verify_last_run_timestamp_seconds", "gauge",
     "End of the last finished run of this verify job at this level."),
    ("bacula_verify_last_run_status", "gauge",
     "1 for the status class of the last finished verify run (differences: data did not match)."),
    ("bacula_verify_last_success_timestamp_seconds", "gauge",
     "End of the last verify run that found no differences."),
    ("bacula_verify_runs_total", "counter", "Finished verify runs."),
    ("bacula_verify_failures_total", "counter",
     "Verify runs that found differences, failed or were canceled."),
    ("bacula_admin_last_run_timestamp_seconds", "gauge",
     "End of the last finished run of this admin job."),
    ("bacula_admin_last_run_status", "gauge",
     "1 for the status class of the last finished run of this admin job."),
    ("bacula_admin_runs_total", "counter", "Finished admin job runs."),
    ("bacula_admin_failures_total", "counter", "Admin job runs that failed or were canceled."),
    ("bacula_migration_last_run_timestamp_seconds", "gauge",
     "End of the last finished run of this migration control job (Type g)."),
    ("bacula_migration_last_run_status", "gauge",
     "1 for the status class of the last finished run of this migration control job."),
    ("bacula_migration_runs_total", "counter", "Finished migration control job runs."),
    ("bacula_migration_failures_total", "counter",
     "Migration control job runs that failed or were canceled."),
    ("bacula_consolidate_last_run_timestamp_seconds", "gauge",
     "End of the last finished run of this Bareos consolidate job (Type O)."),
    ("bacula_consolidate_last_run_status", "gauge",
     "1 for the status class of the last finished run of this consolidate job."),
    ("bacula_consolidate_last_success_timestamp_seconds", "gauge",
     "End of the last run of this consolidate job that ended ok or warning."),
    ("bacula_consolidate_runs_total", "counter", "Finished consolidate job runs."),
    ("bacula_consolidate_failures_total", "counter",
     "Consolidate job runs that failed or were canceled."),
)
WITH_SUCCESS = ("verify", "consolidate")  # kinds whose last success an alert watches


def render_checks(cat: str, items: list[tuple[tuple[str, str, str, str], Check]]) -> Lines:
    """Render verify, admin, migration control and consolidate jobs (cat: the catalog label)."""
    out: Lines = defaultdict(list)
    for (kind, client, job, level), check in items:
        key = f'{cat},client="{escape(client)}",job="{escape(job)}"'
        if kind == "verify":
            key += f',level="{escape(level)}"'
        if check.last_run is not None:
            run = check.last_run
            out[f"bacula_{kind}_last_run_timestamp_seconds"].append(f"{{{key}}} {number(run.time)}")
            out[f"bacula_{kind}_last_run_status"].append(f'{{{key},status="{run.status.value}"}} 1')
        if kind in WITH_SUCCESS and check.last_success is not None:
            out[f"bacula_{kind}_last_success_timestamp_seconds"].append(
                f"{{{key}}} {number(check.last_success)}")
        out[f"bacula_{kind}_runs_total"].append(f"{{{key}}} {check.runs}")
        out[f"bacula_{kind}_failures_total"].append(f"{{{key}}} {check.failures}")
    return out
