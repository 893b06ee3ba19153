"""What a catalog is and how its rows decode: version detection, Job rows, cold-start picks.

Bytes that are not UTF-8 are kept visible and counted; unusable rows are counted as skipped.
"""

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from exporter.catalog.codes import (
    ACTIVE,
    BACKUP,
    CHECKS,
    FAILED,
    MIGRATED,
    classify,
    is_success,
)
from exporter.catalog.ddl import BACULA_VERSIONS, STATUS_ROWS_15, STATUS_ROWS_96, is_bareos
from exporter.catalog.engines import CatalogError, Row, Session
from exporter.catalog.model import Aggregate, CatalogModel, JobRecord
from exporter.catalog.times import local_to_epoch

NUMBER_MAX = 2**62  # larger JobBytes, JobFiles, JobErrors or JobTDate is garbage
FUTURE_SLACK = 86400  # a JobTDate further ahead than this (a wrong clock, ms for s) is garbage
# Bacula 15's encryption of a job: Job.Encrypted for the File daemon's (a real 15.0.3 Director
# writes 1 on every engine, whatever the create scripts' comments say), else the Storage daemon's
# volume encryption when every volume the job wrote has Media.VolEncrypted set.
ENCRYPTED = (
    "COALESCE(NULLIF(Encrypted, 0), (SELECT MIN(m.VolEncrypted) FROM JobMedia jm "
    "JOIN Media m ON m.MediaId = jm.MediaId WHERE jm.JobId = Job.JobId), 0)"
)
# Bareos records only the Storage daemon's volume encryption (Media.EncryptionKey, e.g. LTO drive
# keys): 1 when every volume the job wrote has a key, else NULL (the File daemon's encryption is
# not recorded, so "not encrypted" cannot be told).
BAREOS_ENCRYPTED = (
    "(SELECT CASE WHEN MIN(CASE WHEN m.EncryptionKey <> '' THEN 1 ELSE 0 END) = 1 THEN 1 END "
    "FROM JobMedia jm JOIN Media m ON m.MediaId = jm.MediaId WHERE jm.JobId = Job.JobId)"
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
    version = as_int(rows[0][0]) if rows else 0
    if version in BACULA_VERSIONS:
        return CatalogInfo(session.engine, version, "bacula")
    if is_bareos(version) and 2171 <= version <= 2250 and session.engine == "postgresql":
        return CatalogInfo(session.engine, version, "bareos")
    known = "Bacula 16 (9.6), 1022 (11), 1024 (13), 1026 (15); Bareos 2171-2250 on PostgreSQL"
    raise CatalogError(f"unsupported catalog version {version} on {session.engine}; known: {known}")


def as_int(value: Any) -> int:
    """Return an int for a numeric column, 0 for NULL or garbage."""
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def as_text(value: Any, model: CatalogModel) -> str | None:
    """Decode a text or BLOB column; bytes that are not UTF-8 are kept visible and counted."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            model.skip("invalid_utf8_repaired")
            return raw.decode("utf-8", "backslashreplace")
    return str(value)


def sql_codes(words: Iterable[str]) -> str:
    """Return an SQL IN list of constants from the code (codes or words), never of input."""
    return ", ".join(f"'{w}'" for w in words)


def job_columns(info: CatalogInfo | None) -> str:
    """Return the Job columns to select, in the order decode_job() reads them."""
    has_real = info is not None and info.has_real_start
    bacula15 = (f"RealStartTime, RealEndTime, {ENCRYPTED}, StatusInfo, isVirtualFull"
                if has_real else "NULL, NULL, NULL, NULL, NULL")
    if info is not None and info.product == "bareos":
        bacula15 = f"NULL, NULL, {BAREOS_ENCRYPTED}, NULL, NULL"
    return (
        "JobId, Job, Name, Type, Level, ClientId, JobStatus, JobErrors, JobFiles, JobBytes, "
        f"SchedTime, StartTime, EndTime, JobTDate, PriorJobId, PoolId, {bacula15}"
    )


def decode_job(row: Row, zone: ZoneInfo, model: CatalogModel) -> JobRecord | None:
    """Turn a Job row into a JobRecord, or count it as skipped when it is unusable."""
    job_id, client_id = as_int(row[0]), as_int(row[5])
    job, name = as_text(row[1], model), as_text(row[2], model)
    codes = [as_text(v, model) for v in row[3:5]] + [as_text(row[6], model)]
    numbers = [as_int(v) for v in (row[7], row[8], row[9], row[13])]
    if job_id <= 0 or not name or any(c is None or len(c) != 1 for c in codes):
        model.skip("null_or_invalid")
        return None
    if any(n < 0 or n > NUMBER_MAX for n in numbers):
        model.skip("invalid_number")
        return None
    type_, level, status = (str(c) for c in codes)
    if numbers[3] > time.time() + FUTURE_SLACK:
        # A wrong clock or milliseconds: such a JobTDate would be the last success for
        # ages and silence every staleness alert. Keep the row, use its EndTime instead.
        model.skip("future_time_repaired")
        numbers[3] = 0
    # Bacula 15 records when copies and Virtual Fulls really ran; older catalogs only the
    # source job's times, which still give the source's run time.
    start = local_to_epoch(row[16], zone) or local_to_epoch(row[11], zone)
    end = local_to_epoch(row[17], zone) or local_to_epoch(row[12], zone)
    return JobRecord(
        job_id=job_id, job=job or "", name=name, type=type_, level=level,
        client_id=client_id, status=status, errors=numbers[0], files=numbers[1],
        bytes=numbers[2], sched_time=local_to_epoch(row[10], zone),
        start_time=start, end_time=end, job_tdate=numbers[3],
        prior_job_id=as_int(row[14]), pool_id=as_int(row[15]),
        encrypted=None if row[18] is None else as_int(row[18]) != 0,
        status_info=(as_text(row[19], model) or "").strip(), virtual_full=as_int(row[20]) != 0,
    )


def latest_ids(aggregates: Sequence[Aggregate], model: CatalogModel) -> set[int]:
    """Pick the JobIds of the last run, last success and last failure of every backup key,
    and of every verify and admin job key."""
    last: dict[tuple[str, int, str, str], int] = {}
    good: dict[tuple[str, int, str, str], int] = {}
    bad: dict[tuple[str, int, str, str], int] = {}
    for agg in aggregates:
        if agg.type not in (BACKUP, MIGRATED) and agg.type not in CHECKS:
            continue
        cls = classify(agg.status, 1 if agg.errors else 0)
        if cls is None or cls in ACTIVE:
            continue
        # Moved rows apart: the newest original and the newest migrated copy of its data.
        key = (agg.type + ("+" if agg.moved else ""), agg.client_id, agg.name, agg.level)
        last[key] = max(last.get(key, 0), agg.max_job_id)
        if is_success(cls, model.warning_is_success):
            good[key] = max(good.get(key, 0), agg.max_job_id)
        if cls in FAILED:
            bad[key] = max(bad.get(key, 0), agg.max_job_id)
    return set(last.values()) | set(good.values()) | set(bad.values())
