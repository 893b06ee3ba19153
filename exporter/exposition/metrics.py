"""Prometheus exposition of catalog states: the families, and a pure renderer per kind of item."""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter import __version__
from exporter.catalog.model import CatalogModel, Client, Key, Series
from exporter.catalog.restore_points import Coverage
from exporter.exposition.checks import CHECK_FAMILIES, render_checks
from exporter.exposition.incremental import Kind, Rendering
from exporter.exposition.pools import (
    POOL_FAMILIES,
    pool_job_counts,
    render_media,
    render_pool_jobs,
    render_pools,
    render_volumes,
)
from exporter.exposition.sla import QuietHours, SlaConfig, effective, quiet_hours_active
from exporter.exposition.sla_samples import FAMILIES as SLA_FAMILIES
from exporter.exposition.sla_samples import sla_samples
from exporter.exposition.text import Lines, escape, labels, number

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Family:
    """A metric family: its name, type and help text."""

    name: str
    type: str
    help: str

    def header(self) -> str:
        """Return the # HELP and # TYPE lines."""
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.type}\n"


def family_specs(*specs: tuple[str, str, str]) -> dict[str, Family]:
    """Index family specs by name, keeping their order."""
    return {name: Family(name, kind, text) for name, kind, text in specs}


# Rendered from the catalog state, once per change of that state.
STATE_FAMILIES = family_specs(
    ("bacula_job_last_success_timestamp_seconds", "gauge",
     "End of the last successful backup of this job at this level (JobTDate)."),
    ("bacula_job_last_success_bytes", "gauge", "Bytes written by the last successful backup."),
    ("bacula_job_last_success_files", "gauge", "Files written by the last successful backup."),
    ("bacula_job_last_success_duration_seconds", "gauge",
     "Run time of the last successful backup."),
    ("bacula_job_last_success_encrypted", "gauge",
     "1 when the last successful backup was encrypted (Bacula 15 catalogs record it), else 0."),
    ("bacula_job_last_run_timestamp_seconds", "gauge",
     "End of the last finished backup run, whatever its outcome."),
    ("bacula_job_last_run_status", "gauge",
     "1 for the status class of the last finished backup run."),
    ("bacula_job_last_failure_timestamp_seconds", "gauge",
     "End of the last backup run of this job and level that failed (error, canceled)."),
    ("bacula_job_runs_total", "counter", "Finished backup runs seen in the catalog."),
    ("bacula_job_failures_total", "counter",
     "Finished backup runs that failed (error, canceled)."),
    ("bacula_job_bytes_total", "counter", "Bytes written by finished backup runs."),
    ("bacula_job_running", "gauge", "1 while a backup of this job and level runs or waits."),
    ("bacula_job_running_start_timestamp_seconds", "gauge",
     "Start (or schedule) time of the oldest running backup of this job and level."),
    ("bacula_job_last_copy_timestamp_seconds", "gauge",
     "Source time (JobTDate) of the newest backup of this job that has a successful copy."),
    ("bacula_job_last_migration_timestamp_seconds", "gauge",
     "Source time (JobTDate) of the newest backup of this job that a migration moved."),
    ("bacula_job_restore_points", "gauge",
     "Points in time within the restore window that can still be restored (0 = none)."),
    ("bacula_job_oldest_restore_point_timestamp_seconds", "gauge",
     "Oldest point in time that can still be restored from the catalog."),
    ("bacula_job_newest_restore_point_timestamp_seconds", "gauge",
     "Newest point in time that can be restored from the catalog."),
    ("bacula_job_restore_chain_jobs", "gauge",
     "Jobs (full, differential, incrementals) needed to restore the newest point."),
    ("bacula_job_restorable_bytes", "gauge",
     "Bytes of the good backups in the restore window that some restore point needs."),
    ("bacula_client_info", "gauge", "1 for every Client row of the catalog."),
    ("bacula_restore_runs_total", "counter", "Finished restore jobs by client and status class."),
    *CHECK_FAMILIES,
    *POOL_FAMILIES,
    ("bacula_catalog_skipped_rows_total", "counter",
     "Catalog rows skipped or repaired because they were unusable, by reason."),
    *(f for f in SLA_FAMILIES if f[0] != "bacula_sla_quiet_hours_active"),
)

# Rendered on every scrape: small, and they change with every poll.
HEALTH_FAMILIES = family_specs(
    ("bacula_catalog_up", "gauge", "1 when the last poll of the catalog succeeded."),
    ("bacula_catalog_info", "gauge", "Engine, schema version and product of the catalog."),
    ("bacula_catalog_encryption_verifiable", "gauge",
     "1 when the catalog records whether backups are encrypted (Bacula 15), else 0."),
    ("bacula_catalog_poll_duration_seconds", "gauge", "Duration of the last poll."),
    ("bacula_catalog_last_poll_success_timestamp_seconds", "gauge",
     "Time of the last successful poll."),
    ("bacula_catalog_polls_total", "counter", "Polls of the catalog by result."),
    ("bacula_exporter_build_info", "gauge", "Version of bacula-exporter."),
    *(f for f in SLA_FAMILIES if f[0] == "bacula_sla_quiet_hours_active"),
)

def job_key(cat: str, client: str, job: str) -> str:
    """Return the labels of a job: catalog, client, job."""
    return f'{cat},client="{escape(client)}",job="{escape(job)}"'


def render_series(cat: str, items: list[tuple[Key, Series]]) -> Lines:
    """Render backup series: last run, last success, counters, copy time."""
    out: Lines = defaultdict(list)
    for (client, job, level), s in items:
        key = f'{job_key(cat, client, job)},level="{level}"'
        if s.last_success is not None:
            ok = s.last_success
            out["bacula_job_last_success_timestamp_seconds"].append(f"{{{key}}} {number(ok.time)}")
            out["bacula_job_last_success_bytes"].append(f"{{{key}}} {ok.bytes}")
            out["bacula_job_last_success_files"].append(f"{{{key}}} {ok.files}")
            out["bacula_job_last_success_duration_seconds"].append(
                f"{{{key}}} {number(ok.duration)}"
            )
            if ok.encrypted is not None:
                out["bacula_job_last_success_encrypted"].append(f"{{{key}}} {int(ok.encrypted)}")
        if s.last_run is not None:
            run = s.last_run
            out["bacula_job_last_run_timestamp_seconds"].append(f"{{{key}}} {number(run.time)}")
            out["bacula_job_last_run_status"].append(f'{{{key},status="{run.status.value}"}} 1')
        if s.last_failure is not None:
            out["bacula_job_last_failure_timestamp_seconds"].append(
                f"{{{key}}} {number(s.last_failure.time)}"
            )
        if s.runs:
            out["bacula_job_runs_total"].append(f"{{{key}}} {s.runs}")
            out["bacula_job_failures_total"].append(f"{{{key}}} {s.failures}")
            out["bacula_job_bytes_total"].append(f"{{{key}}} {s.bytes}")
        if s.last_copy is not None:
            out["bacula_job_last_copy_timestamp_seconds"].append(
                f"{{{key}}} {number(s.last_copy)}"
            )
        if s.last_migration is not None:
            out["bacula_job_last_migration_timestamp_seconds"].append(
                f"{{{key}}} {number(s.last_migration)}")
    return out


def render_running(cat: str, items: list[tuple[Key, float]]) -> Lines:
    """Render the backups running now, with the start of the oldest of each key."""
    out: Lines = defaultdict(list)
    for (client, job, level), start in items:
        key = f'{job_key(cat, client, job)},level="{level}"'
        out["bacula_job_running"].append(f"{{{key}}} 1")
        out["bacula_job_running_start_timestamp_seconds"].append(f"{{{key}}} {number(start)}")
    return out


def render_coverage(cat: str, items: list[tuple[tuple[str, str], Coverage | None]]) -> Lines:
    """Render the restore points of each job."""
    out: Lines = defaultdict(list)
    for (client, job), cover in items:
        key = job_key(cat, client, job)
        out["bacula_job_restore_points"].append(f"{{{key}}} {cover.points if cover else 0}")
        out["bacula_job_restorable_bytes"].append(f"{{{key}}} {cover.bytes if cover else 0}")
        if cover is not None:
            out["bacula_job_oldest_restore_point_timestamp_seconds"].append(
                f"{{{key}}} {number(cover.oldest)}"
            )
            out["bacula_job_newest_restore_point_timestamp_seconds"].append(
                f"{{{key}}} {number(cover.newest)}"
            )
            out["bacula_job_restore_chain_jobs"].append(f"{{{key}}} {cover.chain_jobs}")
    return out


def render_clients(cat: str, items: list[tuple[tuple[str, str], Client]]) -> Lines:
    """Render one info line per distinct Client row (name, uname)."""
    return {"bacula_client_info": [
        f'{{{cat},client="{escape(name)}",uname="{escape(uname)}"}} 1' for (name, uname), _ in items
    ]}


def render_restores(cat: str, items: list[tuple[tuple[str, str], int]]) -> Lines:
    """Render the restore counters by client and status class."""
    return {"bacula_restore_runs_total": [
        f'{{{cat},client="{escape(client)}",status="{status}"}} {count}'
        for (client, status), count in items
    ]}


def render_skipped(cat: str, items: list[tuple[str, int]]) -> Lines:
    """Render the counters of unusable rows by reason."""
    return {"bacula_catalog_skipped_rows_total": [
        f'{{{cat},reason="{reason}"}} {count}' for reason, count in items
    ]}


# Every state family comes from exactly one kind; a new family joins a kind (or a new one).
KINDS = (
    Kind("series", lambda m: m.series, render_series, tracked=True),
    Kind("restores", lambda m: m.restores, render_restores, tracked=True),
    Kind("checks", lambda m: m.checks, render_checks, tracked=True),
    Kind("running", lambda m: m.running(), render_running),
    Kind("coverage", lambda m: m.coverage, render_coverage, source=lambda m: m.coverage),
    Kind("clients", lambda m: {(c.name, c.uname): c for c in m.clients.values()},
         render_clients, source=lambda m: m.clients),
    Kind("pools", lambda m: m.pools, render_pools, source=lambda m: m.pools),
    Kind("media", lambda m: m.media, render_media, source=lambda m: m.media),
    Kind("volumes", lambda m: {(v.pool, v.name): v for v in m.volumes}, render_volumes,
         source=lambda m: m.volumes),
    # Counted from the series on every render (cheap); compared item by item.
    Kind("pool_jobs", pool_job_counts, render_pool_jobs),
    Kind("skipped", lambda m: dict(m.skipped), render_skipped),
)


def render_state(catalog: str, state: CatalogModel) -> Lines:
    """Render the sample lines of one catalog's state at once, by family name."""
    out: Lines = {name: [] for name in STATE_FAMILIES}
    cat = f'catalog="{escape(catalog)}"'
    for kind in KINDS:
        for name, lines in kind.render(cat, sorted(kind.items(state).items())).items():
            out[name] += lines
    return out


def state_rendering(catalog: str) -> Rendering:
    """Return an incremental rendering of one catalog's state (see incremental.py)."""
    return Rendering(f'catalog="{escape(catalog)}"', KINDS)


# The jobs with quiet hours, each with its windows: evaluated again on every scrape.
Quiet = list[tuple[str, Sequence[QuietHours]]]


def render_sla(catalog: str, state: CatalogModel, sla: SlaConfig) -> tuple[Lines, Quiet]:
    """Render the SLA limits of every job the catalog has (or a policy expects) in it."""
    seen = {(catalog, *key) for key in dict(state.series)} | {
        (catalog, *key) for key in state.running()
    }
    out: Lines = {}
    quiet: Quiet = []
    checks = {(kind, catalog, client, job) for kind, client, job, _ in dict(state.checks)}
    for sample in sla_samples(sla.policies, sla.defaults, seen, datetime.now(UTC), checks):
        if sample.labels["catalog"] != catalog:
            continue  # an expected job of another catalog
        text = labels(**sample.labels)
        if sample.name == "bacula_sla_quiet_hours_active":
            lb = sample.labels
            windows = effective(sla.policies, sla.defaults, catalog, lb["client"], lb["job"])
            quiet.append((text, windows.quiet_hours))
        else:
            out.setdefault(sample.name, []).append(f"{{{text}}} {number(sample.value)}")
    return out, quiet


def render_quiet(quiet: Iterable[tuple[str, Sequence[QuietHours]]], now: datetime) -> Lines:
    """Render bacula_sla_quiet_hours_active for this instant (each distinct window set once)."""
    cache: dict[int, bool] = {}
    lines = []
    for text, windows in quiet:
        active = cache.get(id(windows))
        if active is None:
            active = cache[id(windows)] = quiet_hours_active(windows, now)
        lines.append(f"{{{text}}} {int(active)}")
    return {"bacula_sla_quiet_hours_active": lines}


@dataclass(frozen=True)
class Health:
    """What the health families need to know of one catalog."""

    catalog: str
    up: bool
    engine: str
    schema_version: int
    product: str
    poll_duration: float
    last_success: float | None
    polls: Mapping[str, int]


def render_health(health: Iterable[Health]) -> Lines:
    """Render the per-scrape health families."""
    out: Lines = {name: [] for name in HEALTH_FAMILIES}
    for h in health:
        cat = f'catalog="{escape(h.catalog)}"'
        out["bacula_catalog_up"].append(f"{{{cat}}} {int(h.up)}")
        if h.engine:
            info = labels(engine=h.engine, schema_version=str(h.schema_version), product=h.product)
            out["bacula_catalog_info"].append(f"{{{cat},{info}}} 1")
            verifiable = h.product == "bacula" and h.schema_version >= 1026
            out["bacula_catalog_encryption_verifiable"].append(f"{{{cat}}} {int(verifiable)}")
        out["bacula_catalog_poll_duration_seconds"].append(f"{{{cat}}} {number(h.poll_duration)}")
        if h.last_success is not None:
            out["bacula_catalog_last_poll_success_timestamp_seconds"].append(
                f"{{{cat}}} {number(h.last_success)}"
            )
        for result in ("success", "failure"):
            out["bacula_catalog_polls_total"].append(
                f'{{{cat},result="{result}"}} {h.polls.get(result, 0)}'
            )
    out["bacula_exporter_build_info"].append(f'{{version="{escape(__version__)}"}} 1')
    return out


def family_texts(families: Mapping[str, Family], parts: Sequence[Lines]) -> Iterator[str]:
    """Yield each family's text with the lines of every catalog, as the text format requires."""
    for name, family in families.items():
        lines = [line for part in parts for line in part.get(name, ())]
        if lines:
            yield family.header() + "".join(f"{name}{line}\n" for line in lines)


def assemble(families: Mapping[str, Family], parts: Sequence[Lines]) -> str:
    """Join the lines of several catalogs family by family."""
    return "".join(family_texts(families, parts))
