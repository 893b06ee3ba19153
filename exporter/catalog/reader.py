"""Catalog queries: a set-based cold start, O(new rows) polls, logs and restore points.

Every statement is a plain SELECT written once for all engines: identifiers are CamelCase and
unquoted (PostgreSQL folds them, MySQL needs the exact case, SQLite ignores it) and placeholders
are %s (the SQLite session rewrites them).
"""

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from exporter.catalog.codes import (
    ACTIVE_CODES,
    BACKUP,
    FINISHED_CODES,
    RESTORE,
    SUCCESS_CODES,
    StatusClass,
    classify,
)
from exporter.catalog.codes import level_name as level_label
from exporter.catalog.engines import Row, Session
from exporter.catalog.model import Aggregate, CatalogModel, Client, FinishedJob, JobRecord
from exporter.catalog.restore_points import UNUSABLE_VOLUMES, BackupJob, Coverage, coverage
from exporter.catalog.rows import (
    DEFAULT_STATUS_TEXT,
    FUTURE_SLACK,
    NUMBER_MAX,
    CatalogInfo,
    as_int,
    as_text,
    decode_job,
    job_columns,
    latest_ids,
    sql_codes,
)
from exporter.catalog.volumes import read_media, read_pools

JOB_BATCH = 5000  # new Job rows fetched per statement
IN_CHUNK = 500  # JobIds per IN (...) list
GAP_TTL = 600.0  # seconds a skipped JobId is re-checked (a Job row committed late)
GAP_MAX = 1000  # bound on tracked gaps, so a mass delete cannot grow memory
SETTLE = 120.0  # seconds a finished Type B row with a PriorJobId may still turn into a copy
LOG_LINES = 20  # Log lines kept per job result that is not ok
LOG_LINE_MAX = 2000  # characters kept of one Log row


@dataclass
class Reader:
    """Reads one catalog into a CatalogModel; holds the watermark between polls."""

    zone: ZoneInfo
    info: CatalogInfo | None = None
    watermark: int = 0
    client_watermark: int = 0
    gaps: dict[int, float] = field(default_factory=dict)
    settling: dict[int, float] = field(default_factory=dict)  # JobId -> first seen finished
    last_refresh: float = 0.0
    status_text: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STATUS_TEXT))
    restore_window: float = 0.0
    window_start: int = 0  # lowest JobId that can lie inside the restore window
    settle: float = SETTLE  # how long a provisional row is held back
    expose_volumes: bool = False  # keep every volume for its own series
    # Jobs applied to the model but not yet handed on (kept across a poll that failed late).
    unreported: list[JobRecord] = field(default_factory=list)

    def _records(self, rows: Iterable[Row], model: CatalogModel) -> list[JobRecord]:
        """Convert rows, dropping the unusable ones."""
        return [r for r in (decode_job(row, self.zone, model) for row in rows) if r is not None]

    def _by_ids(self, session: Session, ids: Iterable[int], model: CatalogModel) -> list[JobRecord]:
        """Fetch Job rows by JobId, a few hundred per statement."""
        wanted = sorted(set(ids))
        out: list[JobRecord] = []
        for i in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[i : i + IN_CHUNK]
            marks = ", ".join(["%s"] * len(chunk))
            sql = f"SELECT {job_columns(self.info)} FROM Job WHERE JobId IN ({marks})"
            out += self._records(session.query(sql, chunk), model)
        return out

    def refresh(self, session: Session, model: CatalogModel, full: bool) -> None:
        """Read new Client rows; with full, re-read all clients, pools and volumes."""
        since = 0 if full else self.client_watermark
        clients = self._clients(session, model, "ClientId > %s", [since])
        model.set_clients(clients, replace=full)
        self.client_watermark = max([self.client_watermark, *clients])
        if full:
            # Expiry moves with the clock: re-read with the full refresh, not after every job.
            read_media(session, model, self.zone, self.info, self.expose_volumes)
            if self.restore_window > 0:
                model.set_coverage(self._coverage(session, model))
            self.last_refresh = time.monotonic()

    def _clients(
        self, session: Session, model: CatalogModel, where: str, params: Sequence[int]
    ) -> dict[int, Client]:
        """Read Client rows."""
        clients = {}
        for row in session.query(f"SELECT ClientId, Name, Uname FROM Client WHERE {where}", params):
            name = as_text(row[1], model)
            if name is None:
                model.skip("null_or_invalid")
                continue
            clients[as_int(row[0])] = Client(name, as_text(row[2], model) or "")
        return clients

    def after_jobs(self, session: Session, model: CatalogModel, jobs: Sequence[JobRecord]) -> None:
        """Re-read what finished jobs change: their clients' Uname and the volumes' fill."""
        # The Director fills in a client's Uname on first contact and jobs fill volumes; waiting
        # for the next full refresh would show stale values for minutes.
        ids = sorted({j.client_id for j in jobs if j.client_id > 0})[:IN_CHUNK]
        if ids:
            marks = ", ".join(["%s"] * len(ids))
            model.set_clients(self._clients(session, model, f"ClientId IN ({marks})", ids))
        model.set_pools(read_pools(session, model, self.info))

    def _coverage(
        self, session: Session, model: CatalogModel
    ) -> dict[tuple[str, str], Coverage | None]:
        """Read the good backups inside the restore window with the status of their volumes."""
        since = int(time.time() - self.restore_window)
        # JobId order follows time closely enough to bound the scan; JobTDate decides.
        top = session.query(
            "SELECT MIN(JobId) FROM Job WHERE JobId >= %s AND JobTDate >= %s",
            [self.window_start, since],
        )
        self.window_start = as_int(top[0][0]) if top and top[0][0] is not None else self.watermark
        bad = sql_codes(UNUSABLE_VOLUMES)
        rows = session.query(
            "SELECT j.JobId, j.ClientId, j.Name, j.Level, j.JobTDate, COUNT(m.MediaId), "
            f"SUM(CASE WHEN m.VolStatus IN ({bad}) THEN 1 ELSE 0 END), j.JobBytes "
            "FROM Job j LEFT JOIN JobMedia jm ON jm.JobId = j.JobId "
            "LEFT JOIN Media m ON m.MediaId = jm.MediaId "
            f"WHERE j.JobId >= %s AND j.JobTDate >= %s AND j.Type = '{BACKUP}' "
            f"AND j.JobStatus IN ({sql_codes(SUCCESS_CODES)}) "
            "GROUP BY j.JobId, j.ClientId, j.Name, j.Level, j.JobTDate, j.JobBytes",
            [self.window_start, since],
        )
        jobs: dict[tuple[str, str], list[BackupJob]] = {}
        for job_id, client_id, name, level, tdate, volumes, unusable, size in rows:
            client, job, code = model.clients.get(as_int(client_id)), as_text(name, model), as_text(
                level, model)
            if client is None or job is None or code is None:
                continue
            usable = as_int(volumes) > 0 and as_int(unusable) == 0
            jobs.setdefault((client.name, job), []).append(
                BackupJob(as_int(job_id), float(as_int(tdate)), code, usable, as_int(size))
            )
        return {key: coverage(found) for key, found in jobs.items()}

    def cold_start(self, session: Session, model: CatalogModel) -> None:
        """Build the model from the whole catalog with one GROUP BY pass and point lookups."""
        self.watermark = as_int(session.query("SELECT MAX(JobId) FROM Job")[0][0])
        self.refresh(session, model, full=True)
        for code, text in session.query("SELECT JobStatus, JobStatusLong FROM Status"):
            code, text = as_text(code, model), as_text(text, model)
            if code and text:
                self.status_text[code] = text
        has_errors = "CASE WHEN JobErrors > 0 THEN 1 ELSE 0 END"
        # The rows record() refuses form groups of their own (still one pass over Job), which
        # are counted as skipped; the SUM ignores their numbers, which could overflow it.
        sane = " AND ".join(
            f"COALESCE({c}, 0) BETWEEN 0 AND {NUMBER_MAX}"
            for c in ("JobErrors", "JobFiles", "JobBytes", "JobTDate")
        )
        flag = f"CASE WHEN {sane} THEN 1 ELSE 0 END"
        # A Type B row with a PriorJobId holds an earlier backup's data (a migration's, or a copy
        # promoted when its original was purged). Telling them apart by the original's Type
        # (a correlated lookup) made this scan 2.4x slower at 10M jobs: not done here.
        moved = "CASE WHEN PriorJobId > 0 THEN 1 ELSE 0 END"
        rows = session.stream(
            f"SELECT ClientId, Name, Type, Level, JobStatus, {has_errors}, COUNT(*), "
            "MAX(JobId), MIN(JobId), MAX(CASE WHEN JobTDate <= %s THEN JobTDate ELSE 0 END), "
            f"SUM(CASE WHEN {sane} THEN JobBytes ELSE 0 END), {flag}, {moved} "
            "FROM Job WHERE JobId <= %s "
            f"GROUP BY ClientId, Name, Type, Level, JobStatus, {has_errors}, {flag}, {moved}",
            [int(time.time() + FUTURE_SLACK), self.watermark],
        )
        aggregates = []
        for row in rows:
            if not as_int(row[11]):
                model.skip("invalid_number", as_int(row[6]))
                continue
            name, codes = as_text(row[1], model), [as_text(v, model) for v in row[2:5]]
            if name is None or any(c is None or len(c) != 1 for c in codes):
                model.skip("null_or_invalid", as_int(row[6]))
                continue
            type_, level, status = (str(c) for c in codes)
            aggregates.append(Aggregate(
                as_int(row[0]), name, type_, level, status, bool(as_int(row[5])), as_int(row[6]),
                as_int(row[7]), as_int(row[8]), as_int(row[9]), as_int(row[10]),
                type_ == BACKUP and as_int(row[12]) > 0, type_ == BACKUP and as_int(row[12]) > 0,
            ))
        model.seed(aggregates)
        latest = latest_ids(aggregates, model)
        active = [a.min_job_id for a in aggregates if a.status in ACTIVE_CODES]
        del aggregates  # 100k at 10M jobs: gone before the lookups' rows come, a lower peak
        model.apply(self._by_ids(session, latest, model), count=False)
        failures = [s.last_failure.job_id for s in model.series.values() if s.last_failure]
        model.set_reasons(self._logs(session, model, failures))
        if active:
            sql = (
                f"SELECT {job_columns(self.info)} FROM Job WHERE JobId >= %s AND JobId <= %s "
                f"AND JobStatus IN ({sql_codes(ACTIVE_CODES)})"
            )
            running = session.query(sql, [min(active), self.watermark])
            model.apply(self._records(running, model), count=False)

    def poll(self, session: Session, model: CatalogModel, refresh_every: float) -> list[JobRecord]:
        """Read what changed since the last poll; return the jobs that finished meanwhile."""
        full = time.monotonic() - self.last_refresh >= refresh_every
        self.refresh(session, model, full=full)
        now = time.monotonic()
        self.gaps = {j: t for j, t in self.gaps.items() if now - t < GAP_TTL}
        tracked = set(model.active) | set(self.gaps) | set(self.settling)
        changed = self._by_ids(session, tracked, model) if tracked else []
        for rec in changed:
            self.gaps.pop(rec.job_id, None)
        vanished_settling = set(self.settling) - {r.job_id for r in changed}
        for job_id in vanished_settling:
            del self.settling[job_id]
        vanished = set(model.active) - {r.job_id for r in changed}
        new: list[JobRecord] = []
        while True:
            rows = session.query(
                f"SELECT {job_columns(self.info)} FROM Job WHERE JobId > %s "
                f"ORDER BY JobId LIMIT {JOB_BATCH}",
                [self.watermark],
            )
            expected = self.watermark + 1
            for row in rows:
                job_id = as_int(row[0])
                for missing in range(expected, min(job_id, expected + GAP_MAX)):
                    if len(self.gaps) < GAP_MAX:
                        self.gaps[missing] = now
                expected = job_id + 1
                self.watermark = max(self.watermark, job_id)
            new += self._records(rows, model)
            if len(rows) < JOB_BATCH:
                break
        for job_id in vanished:
            # A running job whose row was deleted (bconsole `delete`): forget it.
            model.active.pop(job_id, None)
            model.generation += 1
        finished = model.apply(self._settled(changed + new, now))
        self.unreported += finished
        if finished:
            self.after_jobs(session, model, finished)
        return finished

    def _settled(self, records: list[JobRecord], now: float) -> list[JobRecord]:
        """Hold back a finished backup row that a copy, migration or Virtual Full may rewrite.

        The Director writes a copy's new row as Type B with its final status, and only then
        copies the source's times and log to it and sets Type C. A migration's row stays B. So a
        finished B row with a PriorJobId waits until it turns C, or until SETTLE has passed.
        A good Virtual Full (Bacula 15 flags it from the start) is first written with its own
        JobTDate, then given its newest source's: it waits until JobTDate lies before its end.
        """
        out = []
        for rec in records:
            finished = rec.type == BACKUP and rec.status not in ACTIVE_CODES
            own_time = rec.end_time is not None and rec.job_tdate >= int(rec.end_time)
            provisional = finished and (
                rec.prior_job_id > 0
                or (rec.virtual_full and rec.status in SUCCESS_CODES and own_time)
            )
            if provisional and now - self.settling.setdefault(rec.job_id, now) < self.settle:
                continue
            self.settling.pop(rec.job_id, None)
            out.append(rec)
        return out

    def checkpoint(self, model: CatalogModel) -> int:
        """Return the highest JobId up to which every job's outcome has been read."""
        open_ids = [*model.active, *self.gaps, *self.settling]
        return min(self.watermark, min(open_ids) - 1) if open_ids else self.watermark

    def finished_since(
        self, session: Session, model: CatalogModel, after: int | None, since: float | None,
        upto: int,
    ) -> list[JobRecord]:
        """Return finished jobs up to a JobId, after another JobId or within a time window."""
        if after is None and since is None:
            return []
        where = "JobId > %s" if after is not None else "JobTDate >= %s"
        bound = after if after is not None else int(since or 0)
        rows = session.query(
            f"SELECT {job_columns(self.info)} FROM Job WHERE {where} AND JobId <= %s "
            f"AND JobStatus IN ({sql_codes(FINISHED_CODES)}) ORDER BY JobId",
            [bound, upto],
        )
        return self._records(rows, model)

    def describe(
        self, session: Session, model: CatalogModel, catalog: str, records: Sequence[JobRecord]
    ) -> list[FinishedJob]:
        """Add client name, level, status text and, for results that are not ok, the Log lines."""
        known = [(r, cls) for r in records if (cls := classify(r.status, r.errors)) is not None]
        # Failures carry their reason; restores their log too, for the person who reviews them.
        wanted = [r.job_id for r, c in known if c is not StatusClass.OK or r.type == RESTORE]
        logs = self._logs(session, model, wanted)
        out = []
        for rec, cls in known:
            client = model.clients.get(rec.client_id)
            out.append(FinishedJob(
                catalog=catalog, record=rec, client=client.name if client else "",
                level=level_label(rec.level) or rec.level, status=cls,
                status_text=self.status_text.get(rec.status, rec.status),
                log=tuple(logs.get(rec.job_id, [])[-LOG_LINES:]),
            ))
        return out

    def _logs(self, session: Session, model: CatalogModel, ids: list[int]) -> dict[int, list[str]]:
        """Return the Log lines of some jobs, oldest first (the Log table is indexed by JobId)."""
        logs: dict[int, list[str]] = {}
        for i in range(0, len(ids), IN_CHUNK):
            chunk = ids[i : i + IN_CHUNK]
            marks = ", ".join(["%s"] * len(chunk))
            rows = session.query(
                f"SELECT JobId, LogText FROM Log WHERE JobId IN ({marks}) ORDER BY JobId, LogId",
                chunk,
            )
            for job_id, text in rows:
                # SQLite keeps a trailing backslash after the newline: strip both.
                # Capped: a runaway job can log megabytes, and this goes into every ticket.
                line = (as_text(text, model) or "").rstrip("\\\n ")[:LOG_LINE_MAX]
                logs.setdefault(as_int(job_id), []).append(line)
        return logs

    def catalog_replaced(self, session: Session) -> bool:
        """Tell whether the catalog now holds fewer jobs than we read (restored or recreated)."""
        top = as_int(session.query("SELECT MAX(JobId) FROM Job")[0][0])
        return top < self.watermark
