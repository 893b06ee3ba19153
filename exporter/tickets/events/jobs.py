"""Job-result events: one per job that reached a final status."""

from datetime import UTC, datetime
from typing import Any

from exporter.catalog.codes import RESTORE, StatusClass
from exporter.catalog.model import FinishedJob
from exporter.tickets.events.models import Event

SEVERITY = {StatusClass.OK: "info", StatusClass.WARNING: "warning"}  # the rest are critical
TYPES = {"B": "backup", "C": "copy", "R": "restore", "V": "verify", "D": "admin",
         "c": "copy-control", "g": "migrate-control", "M": "migrated", "A": "archive",
         "O": "consolidate"}
RESTORE_PREFIX = "Restore: "  # restores stand out in every ticket list and page


def iso(ts: float | None) -> str | None:
    """Return Unix seconds as ISO 8601 in UTC."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def job_event_id(catalog: str, job_id: int) -> str:
    """Return the id (and ticket key) of a job's result: stable across restarts and replicas."""
    return f"{catalog}:{job_id}"


def job_result_event(job: FinishedJob) -> Event:
    """Turn a finished job into its event; the id is `<catalog>:<JobId>`."""
    rec = job.record
    body: dict[str, Any] = {
        "catalog": job.catalog, "client": job.client, "job": rec.name, "job_name": rec.job,
        "job_id": rec.job_id, "type": TYPES.get(rec.type, rec.type), "type_code": rec.type,
        "level": job.level, "status_code": rec.status, "status": job.status.value,
        "status_text": job.status_text, "start": iso(rec.start_time), "end": iso(rec.end_time),
        "duration_seconds": rec.duration, "bytes": rec.bytes, "files": rec.files,
        "errors": rec.errors, "log": list(job.log),
    }
    if rec.encrypted is not None:  # Bacula 15 catalogs only
        body.update(encrypted=rec.encrypted, status_info=rec.status_info,
                    virtual_full=rec.virtual_full)
    who = f"{job.client} " if job.client else ""
    # Bacula 15's error code ("[DE0029]") is what a ticket search and the vendor's docs key on.
    outcome = f"{job.status_text} {rec.status_info}".rstrip()
    if rec.type == RESTORE:
        # A restore has no meaningful level; what a reviewer scans for is that it happened.
        title = f"{RESTORE_PREFIX}[{job.catalog}] {who}{rec.name}: {outcome} ({rec.job})"
    else:
        # A Virtual Full counts as a full, but the person reading the ticket should know.
        level = "virtual full" if rec.virtual_full else job.level
        title = f"[{job.catalog}] {who}{rec.name} {level}: {outcome} ({rec.job})"
    return Event(
        id=job_event_id(job.catalog, rec.job_id), kind="job_result",
        key=job_event_id(job.catalog, rec.job_id),
        title=title, severity=SEVERITY.get(job.status, "critical"), status=job.status.value,
        body={"kind": "job_result", **body}, job_type=rec.type,
    )
