"""From a job's end to its ticket: the time until the webhook receives the job's result.

Starts the real exporter (`python -m exporter --config`) on a fresh SQLite catalog with a webhook
sink that points at a recording server in this process, then writes --jobs finished Job rows into
the catalog, spread evenly over --duration seconds (each its own commit: the moment it commits is
the job's end as the exporter can know it). The webhook notes when each result arrives (by its
Idempotency-Key, `<catalog>:<JobId>`). Reports p50 / p99 / max of the delay, which a poll bounds:
it should stay under poll_interval + 1 s.

    .venv/bin/python -m bench.ticket_latency [--jobs 1000] [--duration 30] [--poll-interval 5]
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench.load_alertmanager import free_port, percentiles
from exporter.catalog.builder import CatalogBuilder, wall_clock

ROOT = Path(__file__).resolve().parent.parent
UTC = ZoneInfo("UTC")


class Webhook(ThreadingHTTPServer):
    """Notes when each event id first arrives, and how often it arrives."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.first: dict[str, float] = {}
        self.posts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        now = time.time()
        with self.server.lock:
            self.server.first.setdefault(self.headers.get("Idempotency-Key", ""), now)
            self.server.posts += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def catalog(path: Path) -> None:
    """Write an empty catalog: one client, one pool, one old job."""
    build = CatalogBuilder(UTC)
    build.job("Backup-bench", "bench-fd", time.time() - 7200, time.time() - 3600)
    conn = sqlite3.connect(path)
    try:
        build.write(conn.cursor(), "sqlite", version=16)
        conn.commit()
    finally:
        conn.close()


def finish_jobs(path: Path, jobs: int, duration: float) -> dict[int, float]:
    """Commit `jobs` finished backups evenly over `duration` s; return JobId -> commit time."""
    ended: dict[int, float] = {}
    conn = sqlite3.connect(path)
    try:
        started = time.monotonic()
        for i in range(jobs):
            time.sleep(max(0.0, started + i * duration / jobs - time.monotonic()))
            now = time.time()
            job_id = 100 + i
            conn.execute(
                "INSERT INTO Job (JobId, Job, Name, Type, Level, ClientId, JobStatus, SchedTime,"
                " StartTime, EndTime, RealEndTime, JobTDate, JobFiles, JobBytes, ReadBytes,"
                " JobErrors, PoolId, PriorJobId) VALUES (?, ?, ?, 'B', 'I', 1, 'T', ?, ?, ?, ?,"
                " ?, 1, 1, 1, 0, 1, 0)",
                (job_id, f"Backup-bench-{i % 50}.{job_id}", f"Backup-bench-{i % 50}",
                 wall_clock(now - 60, UTC), wall_clock(now - 60, UTC), wall_clock(now, UTC),
                 wall_clock(now, UTC), int(now)))
            conn.commit()
            ended[job_id] = time.time()
    finally:
        conn.close()
    return ended


def run(jobs: int, duration: float, poll_interval: float) -> dict[str, Any]:
    """Start the exporter, finish the jobs, wait for their tickets; return the figures."""
    hook = Webhook()
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="bacula-ticket-") as folder:
        tmp = Path(folder)
        db = tmp / "bacula.db"
        catalog(db)
        port = free_port()
        config = tmp / "config.yml"
        config.write_text(json.dumps({
            "listen": f"127.0.0.1:{port}", "poll_interval": poll_interval,
            "log_level": "warning", "state_dir": str(tmp / "state"),
            "catalogs": [{"name": "bench", "url": f"sqlite:///{db}", "timezone": "UTC"}],
            "sinks": [{"name": "hook", "type": "webhook", "url": hook.url,
                       "events": ["job_result"], "retry": {"initial": "0.2s", "max": "2s"}}],
        }))
        with (tmp / "exporter.log").open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(config)],
                                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit((tmp / "exporter.log").read_text()[-2000:])
                    time.sleep(0.1)
                ended = finish_jobs(db, jobs, duration)
                deadline = time.monotonic() + 3 * poll_interval + 30
                keys = {f"bench:{job_id}" for job_id in ended}
                while time.monotonic() < deadline and not keys <= hook.first.keys():
                    time.sleep(0.2)
            finally:
                proc.terminate()
                proc.wait(timeout=20)
    hook.shutdown()
    delays = [hook.first[f"bench:{j}"] - t for j, t in ended.items() if f"bench:{j}" in hook.first]
    return {"jobs": jobs, "duration_s": duration, "poll_interval_s": poll_interval,
            "delivered": len(delays), "posts": hook.posts, "delay_ms": percentiles(delays),
            "load": os.getloadavg()}


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(run(args.jobs, args.duration, args.poll_interval)), flush=True)


if __name__ == "__main__":
    main()
