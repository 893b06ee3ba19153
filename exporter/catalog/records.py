"""The records the catalog model holds: job rows, cold-start aggregates, runs, series, pools."""

from dataclasses import dataclass

from exporter.catalog.codes import StatusClass


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One Job row as the reader hands it over: codes raw, times already in Unix seconds."""

    job_id: int
    job: str  # the unique Job name, e.g. "BackupGood.2026-11-27_01.00.00_03"
    name: str
    type: str
    level: str
    client_id: int
    status: str
    errors: int = 0
    files: int = 0
    bytes: int = 0
    sched_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    job_tdate: int = 0
    prior_job_id: int = 0
    pool_id: int = 0
    encrypted: bool | None = None  # None where the catalog does not record it (before Bacula 15)
    status_info: str = ""  # Bacula 15's error code of a failed job, e.g. "[DE0029]"
    virtual_full: bool = False  # Bacula 15's isVirtualFull (still level F: it counts as a full)

    @property
    def finished_at(self) -> float | None:
        """Return when the run ended: JobTDate (zone-free epoch) first, the wall clock otherwise."""
        # JobTDate becomes the RealEndTime epoch when a job ends; for copies and Virtual Fulls
        # it is the source job's time, i.e. the point in time the data represents.
        return float(self.job_tdate) if self.job_tdate > 0 else self.end_time

    @property
    def started_at(self) -> float | None:
        """Return when the run started (or was scheduled, while it waits)."""
        return self.start_time if self.start_time is not None else self.sched_time

    @property
    def duration(self) -> float:
        """Return the wall-clock run time in seconds, 0 when unknown."""
        if self.start_time is None or self.end_time is None:
            return 0.0
        return max(0.0, self.end_time - self.start_time)


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """A job that reached its final status, with what a ticket needs to tell about it."""

    catalog: str
    record: JobRecord
    client: str  # "" for jobs without a client (copy control jobs, admin jobs)
    level: str  # lowercase label: full, incremental, ..., none
    status: StatusClass
    status_text: str  # Bacula's long text for the JobStatus
    log: tuple[str, ...] = ()  # the last Log lines, oldest first, for results that are not ok


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A GROUP BY row of the cold start: runs of one job, type, level and status class."""

    client_id: int
    name: str
    type: str
    level: str
    status: str
    errors: bool
    count: int
    max_job_id: int
    min_job_id: int
    max_job_tdate: int
    bytes: int = 0  # SUM(JobBytes)
    moved: bool = False  # Type B rows with a PriorJobId: an earlier backup's data
    migrated: bool = False  # moved by a migration (the original is Type M)


@dataclass(slots=True)
class Run:
    """What the metrics need of one finished run."""

    job_id: int
    time: float
    status: StatusClass
    bytes: int
    files: int
    duration: float
    encrypted: bool | None = None
    virtual_full: bool = False
    status_info: str = ""
    pool_id: int = 0


@dataclass(slots=True)
class Series:
    """Everything known about one (client, job, level) of backups."""

    last_run: Run | None = None
    last_success: Run | None = None
    last_failure: Run | None = None
    failure_reason: str = ""  # the telling Log line of the last failure
    runs: int = 0
    failures: int = 0
    bytes: int = 0  # written by all finished runs, for "bytes per day"
    last_copy: float | None = None
    last_migration: float | None = None  # source JobTDate of the newest migrated backup

    @property
    def reason(self) -> str:
        """Return why the last failure failed: Bacula 15's error code and the telling Log line."""
        code = self.last_failure.status_info if self.last_failure else ""
        if not code or code in self.failure_reason:
            return self.failure_reason
        return f"{code} {self.failure_reason}".rstrip()


@dataclass(slots=True)
class Check:
    """A verify or admin job's record: the last run, the last success, counters."""

    last_run: Run | None = None
    last_success: float | None = None
    runs: int = 0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Client:
    """A Client row."""

    name: str
    uname: str


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool with its volumes counted by status."""

    volumes: dict[str, int]
    bytes: int
    max_volumes: int
    capacity: int = 0  # MaxPoolBytes, else MaxVols x MaxVolBytes; 0: the pool sets none


Key = tuple[str, str, str]  # client, job, level
