"""In-memory view of one catalog: plain data, no I/O; all semantics of the metrics live here."""

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from exporter.catalog.codes import (
    ACTIVE,
    BACKUP,
    CHECKS,
    COPY,
    FAILED,
    FINISHED,
    MIGRATED,
    RESTORE,
    StatusClass,
    classify,
    is_success,
    level_name,
)
from exporter.catalog.media import Lifecycle, PoolRules, Volume
from exporter.catalog.records import (
    Aggregate,
    Check,
    Client,
    FinishedJob,
    JobRecord,
    Key,
    Pool,
    Run,
    Series,
)
from exporter.catalog.restore_points import Coverage

__all__ = ["Aggregate", "CatalogModel", "Check", "Client", "FinishedJob", "JobRecord", "Key",
           "Pool", "Run", "Series", "pick_reason"]


@dataclass
class CatalogModel:
    """The exporter's view of one catalog, updated from batches of JobRecords."""

    warning_is_success: bool = True
    series: dict[Key, Series] = field(default_factory=dict)
    active: dict[int, JobRecord] = field(default_factory=dict)
    clients: dict[int, Client] = field(default_factory=dict)
    restores: Counter[tuple[str, str]] = field(default_factory=Counter)
    pools: dict[str, Pool] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    coverage: dict[tuple[str, str], Coverage | None] = field(default_factory=dict)
    media: dict[str, Lifecycle] = field(default_factory=dict)  # pool -> lifecycle figures
    pool_rules: dict[int, PoolRules] = field(default_factory=dict)  # PoolId -> limits and links
    volumes: list[Volume] = field(default_factory=list)  # only with expose_volumes
    # (kind, client, job, level) of verify and admin jobs; client "" when the row names none.
    checks: dict[tuple[str, str, str, str], Check] = field(default_factory=dict)
    generation: int = 0  # bumped on every change, so renderers know when to redo their work
    # Keys changed in place, by part, for the renderer: parts replaced whole are compared instead.
    changed: dict[str, set[Any]] = field(default_factory=dict)

    def touch(self, part: str, key: Hashable) -> None:
        """Note that the rendering of one key of a part may have changed."""
        self.changed.setdefault(part, set()).add(key)

    def _touch_row(self, type_: str, key: Key, cls: StatusClass) -> None:
        """Note the series, or for a restore the restore counter, that a Job row changes."""
        part, touched = ("restores", (key[0], cls.value)) if type_ == RESTORE else ("series", key)
        self.touch(part, touched)

    def take_changes(self) -> dict[str, set[Any]]:
        """Return the keys changed since the last call, by part, and start noting afresh."""
        changed, self.changed = self.changed, {}
        return changed

    def set_clients(self, clients: dict[int, Client], replace: bool = False) -> None:
        """Add (or, with replace, set) the Client rows."""
        merged = dict(clients) if replace else {**self.clients, **clients}
        if merged != self.clients:
            self.clients = merged
            self.generation += 1

    def set_pools(self, pools: dict[str, Pool]) -> None:
        """Replace the pool and volume summary."""
        if pools != self.pools:
            self.pools = pools
            self.generation += 1

    def set_media(self, media: dict[str, Lifecycle], rules: dict[int, PoolRules],
                  volumes: list[Volume]) -> None:
        """Replace the media lifecycle per pool, the pools' rules and the exposed volumes."""
        if media != self.media or rules != self.pool_rules or volumes != self.volumes:
            self.media, self.pool_rules, self.volumes = media, rules, volumes
            self.generation += 1

    def set_coverage(self, coverage: dict[tuple[str, str], Coverage | None]) -> None:
        """Replace the restore points per (client, job)."""
        if coverage != self.coverage:
            self.coverage = coverage
            self.generation += 1

    def skip(self, reason: str, count: int = 1) -> None:
        """Count rows that could not be used."""
        self.skipped[reason] += count
        self.generation += 1

    def seed(self, aggregates: Iterable[Aggregate]) -> None:
        """Take the counters and copy times of a cold start from its GROUP BY rows."""
        for agg in aggregates:
            if agg.type in CHECKS:
                self._seed_check(agg)
                continue
            if agg.type not in (BACKUP, MIGRATED, COPY, RESTORE):
                continue
            cls = classify(agg.status, 1 if agg.errors else 0)
            client = self.clients.get(agg.client_id)
            level = level_name(agg.level)
            if cls is None or client is None or level is None:
                self.skip(_reason(cls, level), agg.count)
                continue
            if cls not in FINISHED:
                continue
            key = (client.name, agg.name, level)
            self._touch_row(agg.type, key, cls)
            if agg.type == BACKUP and agg.moved:
                # An earlier backup's data: its run was counted with its original (Type M).
                if agg.migrated and is_success(cls, self.warning_is_success):
                    series = self.series.setdefault(key, Series())
                    series.last_migration = max(series.last_migration or 0.0,
                                                float(agg.max_job_tdate))
            elif agg.type in (BACKUP, MIGRATED):
                series = self.series.setdefault(key, Series())
                series.runs += agg.count
                series.bytes += agg.bytes
                if cls in FAILED:
                    series.failures += agg.count
            elif agg.type == COPY and is_success(cls, self.warning_is_success):
                series = self.series.setdefault(key, Series())
                series.last_copy = max(series.last_copy or 0.0, float(agg.max_job_tdate))
            elif agg.type == RESTORE:
                self.restores[(client.name, cls.value)] += agg.count
        self.generation += 1

    def _seed_check(self, agg: Aggregate) -> None:
        """Count a cold start's verify or admin runs."""
        cls = classify(agg.status, 1 if agg.errors else 0)
        if cls is None or cls not in FINISHED:
            return
        key = self._check_key(agg.type, agg.client_id, agg.name, agg.level)
        self.touch("checks", key)
        check = self.checks.setdefault(key, Check())
        check.runs += agg.count
        check.failures += agg.count if cls in FAILED else 0

    def _check_key(self, type_: str, client_id: int, name: str, level: str
                   ) -> tuple[str, str, str, str]:
        """Return the key of a verify or admin job (admin jobs have no level)."""
        client = self.clients.get(client_id)
        kind = CHECKS[type_]
        label = (level_name(level) or level) if kind == "verify" else ""
        return kind, client.name if client else "", name, label

    def apply(self, records: Iterable[JobRecord], count: bool = True) -> list[JobRecord]:
        """Fold job rows into the state; return those that reached a final status just now.

        With count=False (cold start) the rows only set the last run and success: their runs were
        already counted by seed().
        """
        finished: list[JobRecord] = []
        for rec in records:
            cls = classify(rec.status, rec.errors)
            level = level_name(rec.level)
            client = self.clients.get(rec.client_id)
            if cls is None or level is None:
                self.skip(_reason(cls, level))
                self.active.pop(rec.job_id, None)
                continue
            if cls in ACTIVE:
                if self.active.get(rec.job_id) != rec:
                    self.active[rec.job_id] = rec
                    self.generation += 1
                continue
            was_active = self.active.pop(rec.job_id, None) is not None
            if count:
                finished.append(rec)
            if rec.type in CHECKS:
                self._fold_check(rec, cls, count)
                self.generation += 1
                continue
            if rec.type in (BACKUP, MIGRATED, COPY, RESTORE) and client is None:
                self.skip("unknown_client")
                continue
            if client is not None:
                self._fold(rec, cls, (client.name, rec.name, level), count)
            if count or was_active:
                self.generation += 1
        return finished

    def _fold(self, rec: JobRecord, cls: StatusClass, key: Key, count: bool) -> None:
        """Update the series, copy time or restore counter that a finished row belongs to."""
        self._touch_row(rec.type, key, cls)
        if rec.type == BACKUP and rec.prior_job_id > 0:
            self._fold_moved(rec, cls, key, count)
        elif rec.type in (BACKUP, MIGRATED):
            series = self.series.setdefault(key, Series())
            run = Run(rec.job_id, rec.finished_at or 0.0, cls, rec.bytes, rec.files, rec.duration,
                      rec.encrypted, rec.virtual_full, rec.status_info, rec.pool_id)
            if count:
                series.runs += 1
                series.bytes += rec.bytes
                series.failures += cls in FAILED
            if series.last_run is None or rec.job_id >= series.last_run.job_id:
                series.last_run = run
            ok = is_success(cls, self.warning_is_success)
            if ok and (series.last_success is None or rec.job_id >= series.last_success.job_id):
                series.last_success = run
            last_failure = series.last_failure
            if cls in FAILED and (last_failure is None or rec.job_id >= last_failure.job_id):
                series.last_failure = run
                series.failure_reason = ""
        elif rec.type == COPY and is_success(cls, self.warning_is_success):
            series = self.series.setdefault(key, Series())
            series.last_copy = max(series.last_copy or 0.0, rec.finished_at or 0.0)
        elif rec.type == RESTORE and count:
            self.restores[(key[0], cls.value)] += 1

    def _fold_moved(self, rec: JobRecord, cls: StatusClass, key: Key, count: bool) -> None:
        """Take a migration's new row: the original's data in its place in time, not a new run.

        It carries the original's level and JobTDate, so it is a success at that time (the
        original, now Type M, may be purged) but never a later run: a migration of an old
        backup must not make the last success older. A new row is a migration; at a cold start
        seed() sets the migration time from the GROUP BY instead.
        """
        if not is_success(cls, self.warning_is_success):
            return
        series = self.series.setdefault(key, Series())
        time = rec.finished_at or 0.0
        if count:
            series.last_migration = max(series.last_migration or 0.0, time)
        if series.last_success is None or time > series.last_success.time:
            series.last_success = Run(rec.job_id, time, cls, rec.bytes, rec.files, rec.duration,
                                      rec.encrypted, rec.virtual_full, rec.status_info,
                                      rec.pool_id)

    def _fold_check(self, rec: JobRecord, cls: StatusClass, count: bool) -> None:
        """Update a verify or admin job's record (a verify's differences count as failure)."""
        key = self._check_key(rec.type, rec.client_id, rec.name, rec.level)
        self.touch("checks", key)
        check = self.checks.setdefault(key, Check())
        if count:
            check.runs += 1
            check.failures += cls in FAILED
        run = Run(rec.job_id, rec.finished_at or 0.0, cls, rec.bytes, rec.files, rec.duration)
        if check.last_run is None or rec.job_id >= check.last_run.job_id:
            check.last_run = run
        if is_success(cls, self.warning_is_success):
            check.last_success = max(check.last_success or 0.0, run.time)

    def set_reasons(self, logs: dict[int, list[str]], keys: Iterable[Key] | None = None) -> None:
        """Attach Log lines to the last failures they belong to (among keys, if given)."""
        if not logs:
            return  # the common poll: nothing to look for among all the series
        found = self.series if keys is None else {k: s for k in keys if (s := self.series.get(k))}
        for series in found.values():
            failure = series.last_failure
            if failure is not None and failure.job_id in logs:
                reason = pick_reason(logs[failure.job_id])
                if reason != series.failure_reason:
                    series.failure_reason = reason
                    self.generation += 1

    def running(self) -> dict[Key, float]:
        """Return the active backups by key, with the earliest start time of each."""
        out: dict[Key, float] = {}
        # list() copies in one step under the GIL: safe while the poll thread updates the dict.
        for rec in list(self.active.values()):
            client = self.clients.get(rec.client_id)
            level = level_name(rec.level)
            # A row with a PriorJobId is a copy or migration under way, not a backup of the job.
            if rec.type != BACKUP or rec.prior_job_id or client is None or level is None:
                continue
            key = (client.name, rec.name, level)
            start = rec.started_at or 0.0
            out[key] = min(out.get(key, start), start)
        return out


def pick_reason(log: Iterable[str]) -> str:
    """Return the Log line that best says why a job failed: the first error, else the last line."""
    lines = [line.strip() for text in log for line in text.splitlines() if line.strip()]
    for line in lines:
        if "fatal error" in line.lower() or "error:" in line.lower():
            return line[:300]
    return lines[-1][:300] if lines else ""


def _reason(cls: StatusClass | None, level: str | None) -> str:
    """Name why a row was skipped, for the skipped-rows counter."""
    if cls is None:
        return "unknown_status"
    if level is None:
        return "unknown_level"
    return "unknown_client"
