"""Builds catalog contents for the demo and the tests (the exporter itself never writes)."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from exporter.catalog.ddl import create_statements


class Cursor(Protocol):
    """The DB-API cursor methods the writer uses."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any:
        """Run one statement."""

    def executemany(self, sql: Any, params: Any, /) -> Any:
        """Run one statement for many rows."""


def wall_clock(epoch: float | None, zone: ZoneInfo) -> str | None:
    """Format Unix time as the Director writes it: local time, no offset."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class CatalogBuilder:
    """Rows of Client, Pool, Media, Job and Log, with times written in the Director's zone."""

    zone: ZoneInfo
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {
            t: [] for t in ("Client", "Pool", "Media", "Job", "JobMedia", "Log", "Storage")
        }
    )
    _ids: dict[str, int] = field(default_factory=dict)
    _clients: dict[str, int] = field(default_factory=dict)
    _pools: dict[str, int] = field(default_factory=dict)

    def _next(self, table: str) -> int:
        """Return the next id of a table."""
        self._ids[table] = self._ids.get(table, 0) + 1
        return self._ids[table]

    def client(self, name: str, uname: str = "9.6.7 (10Dec22) x86_64-pc-linux-gnu,debian") -> int:
        """Add a Client row (once per name) and return its ClientId."""
        if name not in self._clients:
            cid = self._next("Client")
            self.rows["Client"].append(
                {"ClientId": cid, "Name": name, "Uname": uname, "AutoPrune": 1,
                 "FileRetention": 5184000, "JobRetention": 15552000}
            )
            self._clients[name] = cid
        return self._clients[name]

    def pool(self, name: str, pool_type: str = "Backup", max_vols: int = 0) -> int:
        """Add a Pool row (once per name) and return its PoolId."""
        if name not in self._pools:
            pid = self._next("Pool")
            self.rows["Pool"].append(
                {"PoolId": pid, "Name": name, "MaxVols": max_vols, "PoolType": pool_type,
                 "LabelFormat": f"{name}-", "NumVols": 0}
            )
            self._pools[name] = pid
        return self._pools[name]

    def volume(self, name: str, pool: str, status: str, vol_bytes: int, written: float) -> int:
        """Add a Media row."""
        mid = self._next("Media")
        self.rows["Media"].append(
            {"MediaId": mid, "VolumeName": name, "PoolId": self.pool(pool), "MediaType": "File",
             "VolStatus": status, "VolBytes": vol_bytes, "Enabled": 1,
             "LastWritten": wall_clock(written, self.zone)}
        )
        for row in self.rows["Pool"]:
            if row["PoolId"] == self.pool(pool):
                row["NumVols"] += 1
        return mid

    def job(
        self, name: str, client: str, start: float, end: float | None, *, type_: str = "B",
        level: str = "F", status: str = "T", errors: int = 0, files: int = 0,
        bytes_: int = 0, pool: str = "Full", prior_job_id: int = 0,
        job_tdate: int | None = None, job_id: int | None = None,
    ) -> int:
        """Add a Job row as the Director leaves it; end=None for a job still running."""
        jid = job_id if job_id is not None else self._next("Job")
        self._ids["Job"] = max(self._ids.get("Job", 0), jid)
        stamp = datetime.fromtimestamp(start, self.zone).strftime("%Y-%m-%d_%H.%M.%S")
        tdate = job_tdate if job_tdate is not None else int(end if end is not None else start)
        self.rows["Job"].append(
            {"JobId": jid, "Job": f"{name}.{stamp}_{jid:02d}", "Name": name, "Type": type_,
             "Level": level, "ClientId": self.client(client) if client else 0,
             "JobStatus": status, "SchedTime": wall_clock(start, self.zone),
             "StartTime": wall_clock(start, self.zone), "EndTime": wall_clock(end, self.zone),
             "RealEndTime": wall_clock(end, self.zone), "JobTDate": tdate, "JobFiles": files,
             "JobBytes": bytes_, "ReadBytes": bytes_, "JobErrors": errors,
             "PoolId": self.pool(pool), "PriorJobId": prior_job_id}
        )
        return jid

    def job_media(self, job_id: int, media_id: int) -> None:
        """Record that a job wrote to a volume."""
        self.rows["JobMedia"].append(
            {"JobMediaId": self._next("JobMedia"), "JobId": job_id, "MediaId": media_id,
             "FirstIndex": 1, "LastIndex": 1}
        )

    def log(self, job_id: int, when: float, text: str) -> None:
        """Add a Log row."""
        self.rows["Log"].append(
            {"LogId": self._next("Log"), "JobId": job_id, "Time": wall_clock(when, self.zone),
             "LogText": text}
        )

    def write(self, cursor: Cursor, engine: str, version: int | None = None) -> None:
        """Insert the rows (creating the tables first when a version is given)."""
        if version is not None:
            for sql in create_statements(engine, version):
                cursor.execute(sql)
        mark = "?" if engine == "sqlite" else "%s"
        for table, rows in self.rows.items():
            if not rows:
                continue
            columns = sorted({c for row in rows for c in row})
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join([mark] * len(columns))})"
            )
            zero = _SQLITE_ZERO if engine == "sqlite" and table == "Job" else frozenset()
            values = [
                tuple(0 if c in zero and row.get(c) is None else row.get(c) for c in columns)
                for row in rows
            ]
            cursor.executemany(sql, values)


# Bacula's SQLite Job table stores the integer 0, not NULL, for times not reached yet.
_SQLITE_ZERO = frozenset({"StartTime", "EndTime", "RealEndTime"})
