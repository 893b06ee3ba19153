"""Catalog queries: version detection, a set-based cold start, and O(new rows) polls.

Every statement is a plain SELECT written once for all engines: identifiers are CamelCase and
unquoted (PostgreSQL folds them, MySQL needs the exact case, SQLite ignores it) and placeholders
are %s (the SQLite session rewrites them).
"""

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from exporter.catalog.codes import (
    ACTIVE,
    ACTIVE_CODES,
    FAILED,
    FINISHED_CODES,
    SUCCESS_CODES,
    StatusClass,
    classify,
    is_success,
)
from exporter.catalog.codes import level_name as level_label
from exporter.catalog.ddl import BACULA_VERSIONS, STATUS_ROWS_15, STATUS_ROWS_96, is_bareos
from exporter.catalog.engines import CatalogError, Row, Session
from exporter.catalog.model import Aggregate, CatalogState, Client, FinishedJob, JobRecord, Pool
from exporter.catalog.restore_points import UNUSABLE_VOLUMES, BackupJob, Coverage, coverage
from exporter.catalog.times import local_to_epoch

BATCH = 5000  # new Job rows fetched per statement
IN_CHUNK = 500  # JobIds per IN (...) list
GAP_TTL = 600.0  # seconds a skipped JobId is re-checked (a Job row committed late)
GAP_MAX = 1000  # bound on tracked gaps, so a mass delete cannot grow memory
SETTLE = 120.0  # seconds a finished Type B row with a PriorJobId may still turn into a copy
LOG_LINES = 20  # Log lines kept per job result that is not ok
LOG_LINE_MAX = 2000  # characters kept of one Log row
NUMBER_MAX = 2**62  # larger JobBytes, JobFiles, JobErrors or JobTDate is garbage
FUTURE_SLACK = 86400  # a JobTDate further ahead than this (a wrong clock, ms for s) is garbage
# Bacula 15's encryption of a job: Job.Encrypted for the File daemon's (a real 15.0.3 Director
# writes 1 on every engine, whatever the create scripts' comments say), else the Storage daemon's
# volume encryption when every volume the job wrote has Media.VolEncrypted set.
ENCRYPTED = (
    "COALESCE(NULLIF(Encrypted, 0), (SELECT MIN(m.VolEncrypted) FROM JobMedia jm "
    "JOIN Media m ON m.MediaId = jm.MediaId WHERE jm.JobId = Job.JobId), 0)"
)
# Long texts for when the Status table lacks a code (it differs between versions).
DEFAULT_STATUS_TEXT = {code: text for code, text, _ in STATUS_ROWS_96 + STATUS_ROWS_15}


@dataclass(frozen=True)
class CatalogInfo:
    """What version detection found."""

    engine: str
    version: int
    product: str  # bacula or bareos

    @property
    def has_real_start(self) -> bool:
        """Tell whether Job has RealStartTime (Bacula 15)."""
        return self.product == "bacula" and self.version >= 1026


def detect(session: Session) -> CatalogInfo:
    """Read max(VersionId) and refuse catalogs this exporter does not know."""
    rows = session.query("SELECT MAX(VersionId) FROM Version")
    version = _int(rows[0][0]) if rows else 0
    if version in BACULA_VERSIONS:
        return CatalogInfo(session.engine, version, "bacula")
    if is_bareos(version) and 2171 <= version <= 2250 and session.engine == "postgresql":
        return CatalogInfo(session.engine, version, "bareos")
    known = "Bacula 16 (9.6), 1022 (11), 1024 (13), 1026 (15); Bareos 2171-2250 on PostgreSQL"
    raise CatalogError(f"unsupported catalog version {version} on {session.engine}; known: {known}")


def _int(value: Any) -> int:
    """Return an int for a numeric column, 0 for NULL or garbage."""
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text(value: Any, state: CatalogState) -> str | None:
    """Decode a text or BLOB column; bytes that are not UTF-8 are kept visible and counted."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            state.skip("invalid_utf8_repaired")
            return raw.decode("utf-8", "backslashreplace")
    return str(value)


def _codes(words: Iterable[str]) -> str:
    """Return an SQL IN list of constants from the code (codes or words), never of input."""
    return ", ".join(f"'{w}'" for w in words)


@dataclass
class Reader:
    """Reads one catalog into a CatalogState; holds the watermark between polls."""

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
    # Jobs applied to the state but not yet handed on (kept across a poll that failed late).
    unreported: list[JobRecord] = field(default_factory=list)

    def job_columns(self) -> str:
        """Return the Job columns to select, in the order record() reads them."""
        has_real = self.info is not None and self.info.has_real_start
        bacula15 = (f"RealStartTime, RealEndTime, {ENCRYPTED}, StatusInfo, isVirtualFull"
                     if has_real else "NULL, NULL, NULL, NULL, NULL")
        return (
            "JobId, Job, Name, Type, Level, ClientId, JobStatus, JobErrors, JobFiles, JobBytes, "
            f"SchedTime, StartTime, EndTime, JobTDate, PriorJobId, PoolId, {bacula15}"
        )

    def record(self, row: Row, state: CatalogState) -> JobRecord | None:
        """Turn a Job row into a JobRecord, or count it as skipped when it is unusable."""
        job_id, client_id = _int(row[0]), _int(row[5])
        job, name = _text(row[1], state), _text(row[2], state)
        codes = [_text(v, state) for v in row[3:5]] + [_text(row[6], state)]
        numbers = [_int(v) for v in (row[7], row[8], row[9], row[13])]
        if job_id <= 0 or not name or any(c is None or len(c) != 1 for c in codes):
            state.skip("null_or_invalid")
            return None
        if any(n < 0 or n > NUMBER_MAX for n in numbers):
            state.skip("invalid_number")
            return None
        type_, level, status = (str(c) for c in codes)
        if numbers[3] > time.time() + FUTURE_SLACK:
            # A wrong clock or milliseconds: such a JobTDate would be the last success for
            # ages and silence every staleness alert. Keep the row, use its EndTime instead.
            state.skip("future_time_repaired")
            numbers[3] = 0
        # Bacula 15 records when copies and Virtual Fulls really ran; older catalogs only the
        # source job's times, which still give the source's run time.
        start = local_to_epoch(row[16], self.zone) or local_to_epoch(row[11], self.zone)
        end = local_to_epoch(row[17], self.zone) or local_to_epoch(row[12], self.zone)
        return JobRecord(
            job_id=job_id, job=job or "", name=name, type=type_, level=level,
            client_id=client_id, status=status, errors=numbers[0], files=numbers[1],
            bytes=numbers[2], sched_time=local_to_epoch(row[10], self.zone),
            start_time=start, end_time=end, job_tdate=numbers[3],
            prior_job_id=_int(row[14]), pool_id=_int(row[15]),
            encrypted=None if row[18] is None else _int(row[18]) != 0,
            status_info=(_text(row[19], state) or "").strip(), virtual_full=_int(row[20]) != 0,
        )

    def _records(self, rows: Iterable[Row], state: CatalogState) -> list[JobRecord]:
        """Convert rows, dropping the unusable ones."""
        return [r for r in (self.record(row, state) for row in rows) if r is not None]

    def _by_ids(self, session: Session, ids: Iterable[int], state: CatalogState) -> list[JobRecord]:
        """Fetch Job rows by JobId, a few hundred per statement."""
        wanted = sorted(set(ids))
        out: list[JobRecord] = []
        for i in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[i : i + IN_CHUNK]
            marks = ", ".join(["%s"] * len(chunk))
            sql = f"SELECT {self.job_columns()} FROM Job WHERE JobId IN ({marks})"
            out += self._records(session.query(sql, chunk), state)
        return out

    def refresh(self, session: Session, state: CatalogState, full: bool) -> None:
        """Read new Client rows; with full, re-read all clients, pools and volumes."""
        since = 0 if full else self.client_watermark
        clients = self._clients(session, state, "ClientId > %s", [since])
        state.set_clients(clients, replace=full)
        self.client_watermark = max([self.client_watermark, *clients])
        if full:
            state.set_pools(self._pools(session, state))
            if self.restore_window > 0:
                state.set_coverage(self._coverage(session, state))
            self.last_refresh = time.monotonic()

    def _clients(
        self, session: Session, state: CatalogState, where: str, params: Sequence[int]
    ) -> dict[int, Client]:
        """Read Client rows."""
        clients = {}
        for row in session.query(f"SELECT ClientId, Name, Uname FROM Client WHERE {where}", params):
            name = _text(row[1], state)
            if name is None:
                state.skip("null_or_invalid")
                continue
            clients[_int(row[0])] = Client(name, _text(row[2], state) or "")
        return clients

    def after_jobs(self, session: Session, state: CatalogState, jobs: Sequence[JobRecord]) -> None:
        """Re-read what finished jobs change: their clients' Uname and the volumes' fill."""
        # The Director fills in a client's Uname on first contact and jobs fill volumes; waiting
        # for the next full refresh would show stale values for minutes.
        ids = sorted({j.client_id for j in jobs if j.client_id > 0})[:IN_CHUNK]
        if ids:
            marks = ", ".join(["%s"] * len(ids))
            state.set_clients(self._clients(session, state, f"ClientId IN ({marks})", ids))
        state.set_pools(self._pools(session, state))

    def _pools(self, session: Session, state: CatalogState) -> dict[str, Pool]:
        """Count volumes per pool and status and sum their bytes."""
        rows = session.query(
            "SELECT p.Name, p.MaxVols, m.VolStatus, COUNT(m.MediaId), SUM(m.VolBytes) "
            "FROM Pool p LEFT JOIN Media m ON m.PoolId = p.PoolId "
            "GROUP BY p.Name, p.MaxVols, m.VolStatus"
        )
        pools: dict[str, Pool] = {}
        for row in rows:
            name = _text(row[0], state)
            if name is None:
                continue
            pool = pools.setdefault(name, Pool({}, 0, _int(row[1])))
            status = _text(row[2], state)
            if status is not None and _int(row[3]) > 0:
                key = status.lower()
                pool.volumes[key] = pool.volumes.get(key, 0) + _int(row[3])
            pools[name] = Pool(pool.volumes, pool.bytes + max(0, _int(row[4])), pool.max_volumes)
        return pools

    def _coverage(
        self, session: Session, state: CatalogState
    ) -> dict[tuple[str, str], Coverage | None]:
        """Read the good backups inside the restore window with the state of their volumes."""
        since = int(time.time() - self.restore_window)
        # JobId order follows time closely enough to bound the scan; JobTDate decides.
        top = session.query(
            "SELECT MIN(JobId) FROM Job WHERE JobId >= %s AND JobTDate >= %s",
            [self.window_start, since],
        )
        self.window_start = _int(top[0][0]) if top and top[0][0] is not None else self.watermark
        bad = _codes(UNUSABLE_VOLUMES)
        rows = session.query(
            "SELECT j.JobId, j.ClientId, j.Name, j.Level, j.JobTDate, COUNT(m.MediaId), "
            f"SUM(CASE WHEN m.VolStatus IN ({bad}) THEN 1 ELSE 0 END) "
            "FROM Job j LEFT JOIN JobMedia jm ON jm.JobId = j.JobId "
            "LEFT JOIN Media m ON m.MediaId = jm.MediaId "
            "WHERE j.JobId >= %s AND j.JobTDate >= %s AND j.Type = 'B' "
            f"AND j.JobStatus IN ({_codes(SUCCESS_CODES)}) "
            "GROUP BY j.JobId, j.ClientId, j.Name, j.Level, j.JobTDate",
            [self.window_start, since],
        )
        jobs: dict[tuple[str, str], list[BackupJob]] = {}
        for job_id, client_id, name, level, tdate, volumes, unusable in rows:
            client, job, code = state.clients.get(_int(client_id)), _text(name, state), _text(
                level, state)
            if client is None or job is None or code is None:
                continue
            usable = _int(volumes) > 0 and _int(unusable) == 0
            jobs.setdefault((client.name, job), []).append(
                BackupJob(_int(job_id), float(_int(tdate)), code, usable)
            )
        return {key: coverage(found) for key, found in jobs.items()}

    def cold_start(self, session: Session, state: CatalogState) -> None:
        """Build the state from the whole catalog with one GROUP BY pass and point lookups."""
        self.watermark = _int(session.query("SELECT MAX(JobId) FROM Job")[0][0])
        self.refresh(session, state, full=True)
        for code, text in session.query("SELECT JobStatus, JobStatusLong FROM Status"):
            code, text = _text(code, state), _text(text, state)
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
        rows = session.query(
            f"SELECT ClientId, Name, Type, Level, JobStatus, {has_errors}, COUNT(*), "
            "MAX(JobId), MIN(JobId), MAX(CASE WHEN JobTDate <= %s THEN JobTDate ELSE 0 END), "
            f"SUM(CASE WHEN {sane} THEN JobBytes ELSE 0 END), {flag} "
            "FROM Job WHERE JobId <= %s "
            f"GROUP BY ClientId, Name, Type, Level, JobStatus, {has_errors}, {flag}",
            [int(time.time() + FUTURE_SLACK), self.watermark],
        )
        aggregates = []
        for row in rows:
            if not _int(row[11]):
                state.skip("invalid_number", _int(row[6]))
                continue
            name, codes = _text(row[1], state), [_text(v, state) for v in row[2:5]]
            if name is None or any(c is None or len(c) != 1 for c in codes):
                state.skip("null_or_invalid", _int(row[6]))
                continue
            type_, level, status = (str(c) for c in codes)
            aggregates.append(Aggregate(
                _int(row[0]), name, type_, level, status, bool(_int(row[5])), _int(row[6]),
                _int(row[7]), _int(row[8]), _int(row[9]), _int(row[10]),
            ))
        state.seed(aggregates)
        state.apply(self._by_ids(session, _latest_ids(aggregates, state), state), count=False)
        failures = [s.last_failure.job_id for s in state.series.values() if s.last_failure]
        state.set_reasons(self._logs(session, state, failures))
        active = [a.min_job_id for a in aggregates if a.status in ACTIVE_CODES]
        if active:
            sql = (
                f"SELECT {self.job_columns()} FROM Job WHERE JobId >= %s AND JobId <= %s "
                f"AND JobStatus IN ({_codes(ACTIVE_CODES)})"
            )
            rows = session.query(sql, [min(active), self.watermark])
            state.apply(self._records(rows, state), count=False)

    def poll(self, session: Session, state: CatalogState, refresh_every: float) -> list[JobRecord]:
        """Read what changed since the last poll; return the jobs that finished meanwhile."""
        full = time.monotonic() - self.last_refresh >= refresh_every
        self.refresh(session, state, full=full)
        now = time.monotonic()
        self.gaps = {j: t for j, t in self.gaps.items() if now - t < GAP_TTL}
        tracked = set(state.active) | set(self.gaps) | set(self.settling)
        changed = self._by_ids(session, tracked, state) if tracked else []
        for rec in changed:
            self.gaps.pop(rec.job_id, None)
        vanished_settling = set(self.settling) - {r.job_id for r in changed}
        for job_id in vanished_settling:
            del self.settling[job_id]
        vanished = set(state.active) - {r.job_id for r in changed}
        new: list[JobRecord] = []
        while True:
            rows = session.query(
                f"SELECT {self.job_columns()} FROM Job WHERE JobId > %s "
                f"ORDER BY JobId LIMIT {BATCH}",
                [self.watermark],
            )
            expected = self.watermark + 1
            for row in rows:
                job_id = _int(row[0])
                for missing in range(expected, min(job_id, expected + GAP_MAX)):
                    if len(self.gaps) < GAP_MAX:
                        self.gaps[missing] = now
                expected = job_id + 1
                self.watermark = max(self.watermark, job_id)
            new += self._records(rows, state)
            if len(rows) < BATCH:
                break
        for job_id in vanished:
            # A running job whose row was deleted (bconsole `delete`): forget it.
            state.active.pop(job_id, None)
            state.generation += 1
        finished = state.apply(self._settled(changed + new, now))
        self.unreported += finished
        if finished:
            self.after_jobs(session, state, finished)
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
            finished = rec.type == "B" and rec.status not in ACTIVE_CODES
            own_time = rec.end_time is not None and rec.job_tdate >= int(rec.end_time)
            provisional = finished and (
                rec.prior_job_id > 0
                or (rec.virtual_full and rec.status in SUCCESS_CODES and own_time)
            )
            if provisional and now - self.settling.setdefault(rec.job_id, now) < SETTLE:
                continue
            self.settling.pop(rec.job_id, None)
            out.append(rec)
        return out

    def checkpoint(self, state: CatalogState) -> int:
        """Return the highest JobId up to which every job's outcome has been read."""
        open_ids = [*state.active, *self.gaps, *self.settling]
        return min(self.watermark, min(open_ids) - 1) if open_ids else self.watermark

    def finished_since(
        self, session: Session, state: CatalogState, after: int | None, since: float | None,
        upto: int,
    ) -> list[JobRecord]:
        """Return finished jobs up to a JobId, after another JobId or within a time window."""
        if after is None and since is None:
            return []
        where = "JobId > %s" if after is not None else "JobTDate >= %s"
        bound = after if after is not None else int(since or 0)
        rows = session.query(
            f"SELECT {self.job_columns()} FROM Job WHERE {where} AND JobId <= %s "
            f"AND JobStatus IN ({_codes(FINISHED_CODES)}) ORDER BY JobId",
            [bound, upto],
        )
        return self._records(rows, state)

    def describe(
        self, session: Session, state: CatalogState, catalog: str, records: Sequence[JobRecord]
    ) -> list[FinishedJob]:
        """Add client name, level, status text and, for results that are not ok, the Log lines."""
        known = [(r, cls) for r in records if (cls := classify(r.status, r.errors)) is not None]
        # Failures carry their reason; restores their log too, for the person who reviews them.
        wanted = [r.job_id for r, c in known if c is not StatusClass.OK or r.type == "R"]
        logs = self._logs(session, state, wanted)
        out = []
        for rec, cls in known:
            client = state.clients.get(rec.client_id)
            out.append(FinishedJob(
                catalog=catalog, record=rec, client=client.name if client else "",
                level=level_label(rec.level) or rec.level, status=cls,
                status_text=self.status_text.get(rec.status, rec.status),
                log=tuple(logs.get(rec.job_id, [])[-LOG_LINES:]),
            ))
        return out

    def _logs(self, session: Session, state: CatalogState, ids: list[int]) -> dict[int, list[str]]:
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
                line = (_text(text, state) or "").rstrip("\\\n ")[:LOG_LINE_MAX]
                logs.setdefault(_int(job_id), []).append(line)
        return logs

    def catalog_replaced(self, session: Session) -> bool:
        """Tell whether the catalog now holds fewer jobs than we read (restored or recreated)."""
        top = _int(session.query("SELECT MAX(JobId) FROM Job")[0][0])
        return top < self.watermark


def _latest_ids(aggregates: Sequence[Aggregate], state: CatalogState) -> set[int]:
    """Pick the JobIds of the last finished run and the last success of every backup key."""
    last: dict[tuple[int, str, str], int] = {}
    good: dict[tuple[int, str, str], int] = {}
    bad: dict[tuple[int, str, str], int] = {}
    for agg in aggregates:
        if agg.type != "B":
            continue
        cls = classify(agg.status, 1 if agg.errors else 0)
        if cls is None or cls in ACTIVE:
            continue
        key = (agg.client_id, agg.name, agg.level)
        last[key] = max(last.get(key, 0), agg.max_job_id)
        if is_success(cls, state.warning_is_success):
            good[key] = max(good.get(key, 0), agg.max_job_id)
        if cls in FAILED:
            bad[key] = max(bad.get(key, 0), agg.max_job_id)
    return set(last.values()) | set(good.values()) | set(bad.values())
