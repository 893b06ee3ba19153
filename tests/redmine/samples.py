"""Sample finished jobs and Alertmanager payloads for the bridge tests."""

from typing import Any

from exporter.catalog.codes import StatusClass
from exporter.catalog.model import FinishedJob, JobRecord

T0 = 1_795_000_000.0  # 2026-11-18, a fixed clock for the tests


LEVELS = {"full": "F", "differential": "D", "incremental": "I"}


def finished(job_id: int, status: StatusClass = StatusClass.OK, catalog: str = "main",
             client: str = "fd1", log: tuple[str, ...] = (), level: str = "incremental"
             ) -> FinishedJob:
    """Return a finished backup job."""
    code = {StatusClass.OK: "T", StatusClass.WARNING: "W", StatusClass.ERROR: "f",
            StatusClass.CANCELED: "A"}.get(status, "T")
    rec = JobRecord(
        job_id=job_id, job=f"Backup{client}.2026-11-18_01.00.00_{job_id:02d}",
        name=f"Backup{client}", type="B", level=LEVELS[level], client_id=1, status=code, files=10,
        bytes=1234, start_time=T0, end_time=T0 + 60, job_tdate=int(T0 + 60),
    )
    text = {"T": "Backup OK", "W": "Backup OK -- with warnings", "f": "Fatal error",
            "A": "Canceled"}[code]
    return FinishedJob(catalog=catalog, record=rec, client=client, level=level,
                       status=status, status_text=text, log=log)


def restore(job_id: int, status: StatusClass = StatusClass.OK, catalog: str = "main",
            client: str = "fd1", log: tuple[str, ...] = ()) -> FinishedJob:
    """Return a finished restore job (Type R)."""
    code = {StatusClass.OK: "T", StatusClass.ERROR: "f"}.get(status, "T")
    rec = JobRecord(
        job_id=job_id, job=f"RestoreFiles.2026-11-18_03.00.00_{job_id:02d}",
        name="RestoreFiles", type="R", level="F", client_id=1, status=code, files=5,
        bytes=171_000, start_time=T0 + 7200, end_time=T0 + 7230, job_tdate=int(T0 + 7230),
    )
    text = {"T": "Restore OK", "f": "Fatal error"}[code]
    return FinishedJob(catalog=catalog, record=rec, client=client, level="full",
                       status=status, status_text=text, log=log)


def alert(status: str = "firing", starts: str = "2026-11-18T01:00:00Z",
          group: dict[str, str] | None = None, receiver: str = "tickets",
          group_key: str = "{}:{alertname=\"BaculaJobFailed\"}",
          severity: str = "critical", **labels: str) -> dict[str, Any]:
    """Return an Alertmanager version-4 payload with one alert."""
    group = group or {"alertname": "BaculaJobFailed", "client": "fd1"}
    all_labels = {**group, "severity": severity, **labels}
    return {
        "version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": status,
        "receiver": receiver, "groupLabels": group, "commonLabels": all_labels,
        "commonAnnotations": {"summary": "The last backup of fd1 failed"},
        "externalURL": "http://alertmanager.invalid",
        "alerts": [{
            "status": status, "labels": all_labels,
            "annotations": {"summary": "The last backup of fd1 failed"},
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-18T02:00:00Z",
            "generatorURL": "http://prometheus.invalid/graph", "fingerprint": "abc123",
        }],
    }
