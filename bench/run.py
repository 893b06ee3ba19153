"""Benchmark runner: cold start, incremental polls, /metrics under load, and the peers' patterns.

For each (engine, size) it measures, on the same generated catalog:
- cold start: CatalogPoller's first maybe_poll (version check, GROUP BY, point lookups, render);
- incremental polls with 0 and with 100 new Job rows (read time and read + re-render);
- the real server (`bacula-exporter --config`) under 10 concurrent scrapers: p50/p99 with a
  scrape_min_interval so large that scrapes never poll ("cached"), and with 0 so that every scrape
  polls first ("polling"); series count, exposition size and the process's peak RSS (VmHWM);
- the peers' patterns, written here from their description: (a) per job name, "last job / last
  success / last full" on every scrape; (b) one whole-table GROUP BY join on every scrape.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.generate import (
    DATA_DIR,
    DIALECTS,
    END,
    Layout,
    connect_rw,
    db_name,
    drop,
    generate,
    insert_jobs,
    read_layout,
    schema_current,
    url,
)
from exporter.catalog.config import CatalogConfig
from exporter.service.poller import CatalogPoller

ROOT = Path(__file__).resolve().parent.parent
EXPORTER = ROOT / ".venv" / "bin" / "bacula-exporter"
RESULTS = DATA_DIR / "results.jsonl"
STATEMENT_TIMEOUT = 600.0  # the default 10 s is too short for a 10M-row cold start here
MATRIX = [("postgresql", 100_000), ("postgresql", 1_000_000), ("mysql", 1_000_000),
          ("sqlite", 1_000_000), ("postgresql", 10_000_000)]


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded for the report."""
    return round(seconds * 1000, 2)


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of some values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def catalog_config(engine: str, name: str) -> CatalogConfig:
    """The exporter's configuration of a bench catalog (times are UTC)."""
    return CatalogConfig(name="bench", url=url(engine, name), timezone="UTC",
                         statement_timeout=STATEMENT_TIMEOUT)


def ensure(engine: str, jobs: int, regenerate: bool) -> tuple[str, Layout, float | None]:
    """Generate the catalog unless it exists with the wanted size; return its layout."""
    name = db_name(jobs)
    wanted = Layout.for_jobs(jobs)
    if not regenerate:
        try:
            conn = connect_rw(engine, name)
            try:
                found = read_layout(conn)
                # A catalog generated before the DDL grew (a table, a column) is made anew.
                current = schema_current(conn, found.version)
            finally:
                conn.close()
            if found == wanted and current:
                return name, found, None
        except Exception:
            pass  # missing database or table: generate it
    print(f"generating {name} on {engine} ({wanted.rows:,} Job rows)", flush=True)
    took = generate(engine, wanted, name, quiet=True)
    print(f"  generated in {took:.1f} s", flush=True)
    return name, wanted, took


def cold_start(cfg: CatalogConfig, repeats: int) -> tuple[list[float], CatalogPoller]:
    """Time the first poll of fresh pollers; return the times and the last poller."""
    times = []
    poller = CatalogPoller(cfg)
    for _ in range(repeats):
        poller.close()
        poller = CatalogPoller(cfg)
        started = time.perf_counter()
        poller.maybe_poll(0, wait=STATEMENT_TIMEOUT)
        times.append(time.perf_counter() - started)
        if not poller.up:
            raise RuntimeError(f"cold start failed: {poller.error}")
    return times, poller


def polls(poller: CatalogPoller, count: int, before: Callable[[], None] | None = None,
          ) -> tuple[list[float], list[float]]:
    """Time `count` polls (each after `before`); return total times and read-only times."""
    total, read = [], []
    for _ in range(count):
        if before is not None:
            before()
        started = time.perf_counter()
        poller.maybe_poll(0, wait=STATEMENT_TIMEOUT)
        total.append(time.perf_counter() - started)
        read.append(poller.last_duration)
        if not poller.up:
            raise RuntimeError(f"poll failed: {poller.error}")
    return total, read


class Appender:
    """Appends "tomorrow's" Job rows with the generator's own SQL, and removes them after."""

    def __init__(self, engine: str, name: str, layout: Layout) -> None:
        self.engine, self.layout = engine, layout
        self.sql = DIALECTS[engine]()
        self.conn = connect_rw(engine, name)
        self.next = layout.rows

    def add(self, count: int = 100) -> None:
        """Insert `count` new Job rows (and the Log lines of their failures)."""
        cur = self.conn.cursor()
        for stmt in insert_jobs(self.sql, self.layout, self.next, self.next + count):
            cur.execute(stmt)
        self.next += count

    def cleanup(self) -> None:
        """Delete the appended rows, so the catalog is as generated again."""
        cur = self.conn.cursor()
        cur.execute(f"DELETE FROM Log WHERE JobId > {self.layout.rows}")
        cur.execute(f"DELETE FROM Job WHERE JobId > {self.layout.rows}")
        self.next = self.layout.rows

    def close(self) -> None:
        """Close the writer's connection."""
        self.conn.close()


def free_port() -> int:
    """A free TCP port on the loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_hwm(pid: int) -> int:
    """Peak resident set size of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def load(base: str, scrapers: int, per_scraper: int, limit: float, gzip: bool = True,
         ) -> list[float]:
    """Scrape /metrics from `scrapers` threads, each up to `per_scraper` times or `limit` s."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + limit

    def worker() -> None:
        """One scraper: a keep-alive client in a loop."""
        offer = {"Accept-Encoding": "gzip" if gzip else "identity"}
        with httpx.Client(base_url=base, timeout=60, headers=offer) as client:
            for _ in range(per_scraper):
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                response = client.get("/metrics")
                took = time.perf_counter() - started
                response.raise_for_status()
                with lock:
                    latencies.append(took)

    threads = [threading.Thread(target=worker) for _ in range(scrapers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def figures(latencies: list[float]) -> dict[str, float]:
    """p50/p99 (ms) and the count of some request latencies."""
    return {"p50_ms": ms(pct(latencies, 0.5)), "p99_ms": ms(pct(latencies, 0.99)),
            "scrapes": len(latencies)}


WRK = shutil.which("wrk")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wrk(base: str, connections: int, limit: float, gzip: bool = True) -> dict[str, float]:
    """Load /metrics with wrk for `limit` seconds; return p50/p99 (ms) and the request count.

    Like Prometheus, it offers gzip unless told not to (curl and some agents do not).
    """
    if WRK is None:
        raise RuntimeError("wrk is not installed")
    offer = ["-H", "Accept-Encoding: gzip"] if gzip else []
    out = subprocess.run(
        [WRK, f"-t{min(2, connections)}", f"-c{connections}", f"-d{max(1, round(limit))}s",
         "--latency", "--timeout", "60s", *offer, f"{base}/metrics"],
        capture_output=True, text=True, check=True,
    ).stdout
    found: dict[str, float] = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("50%", "99%"):
            value = re.fullmatch(r"([\d.]+)(us|ms|s|m)", words[1])
            if value:
                found[f"p{words[0][:2]}_ms"] = ms(float(value[1]) * _UNITS[value[2]])
        elif "requests in" in line:
            found["scrapes"] = int(words[0])
    return found


def serve(engine: str, name: str, min_interval: float, scrapers: int, per_scraper: int,
          limit: float) -> dict[str, Any]:
    """Start the real exporter, wait until ready, load it, and report latency, size and RSS."""
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}", "poll_interval": "1h",
        "scrape_min_interval": min_interval, "log_level": "warning",
        "catalogs": [{"name": "bench", "url": url(engine, name), "timezone": "UTC",
                      "statement_timeout": STATEMENT_TIMEOUT}],
    }
    with tempfile.TemporaryDirectory(prefix="bacula-bench-") as tmp:
        path = Path(tmp) / "config.yml"
        path.write_text(yaml.safe_dump(config))
        started = time.perf_counter()
        command = [str(EXPORTER), "--config", str(path)]
        proc = subprocess.Popen(command, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            ready = wait_ready(base, proc, STATEMENT_TIMEOUT)
            ready_after = time.perf_counter() - started
            hwm_ready = vm_hwm(proc.pid)
            body = httpx.get(f"{base}/metrics", timeout=60).content
            if WRK is not None:
                single = wrk(base, 1, limit / 2)
                loaded = wrk(base, scrapers, limit)
            else:
                single = figures(load(base, 1, per_scraper, limit / 2))
                loaded = figures(load(base, scrapers, per_scraper, limit))
            hwm_gzip = vm_hwm(proc.pid)  # before a plain scraper makes it keep the text
            plain = (wrk(base, 1, limit / 2, gzip=False) if WRK is not None
                     else figures(load(base, 1, per_scraper, limit / 2, gzip=False)))
            hwm = vm_hwm(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not ready:
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise RuntimeError(f"exporter never became ready: {err}")
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return {
        "ready_s": round(ready_after, 2), "series": series, "bytes": len(body),
        "tool": "wrk" if WRK else "httpx", "single_p50_ms": single["p50_ms"],
        "single_p99_ms": single["p99_ms"], "single_scrapes": single["scrapes"],
        "scrapes": loaded["scrapes"], "p50_ms": loaded["p50_ms"], "p99_ms": loaded["p99_ms"],
        "plain_p50_ms": plain["p50_ms"], "plain_p99_ms": plain["p99_ms"],
        "plain_scrapes": plain["scrapes"],
        "rss_ready_mb": round(hwm_ready / 2**20, 1), "rss_gzip_mb": round(hwm_gzip / 2**20, 1),
        "rss_peak_mb": round(hwm / 2**20, 1),
    }


def wait_ready(base: str, proc: subprocess.Popen[bytes], limit: float) -> bool:
    """Wait until /readyz answers 200 (the first poll, i.e. the cold start, is done)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def placeholder(engine: str) -> str:
    """The DB-API parameter mark of an engine."""
    return "?" if engine == "sqlite" else "%s"


def fetch(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Run one query and return all rows."""
    cur = conn.cursor()
    cur.execute(sql, params)
    return list(cur.fetchall())


def peer_per_job(conn: Any, engine: str) -> int:
    """Pattern (a): job names seen in 7 days, then 3 queries per name; return the query count."""
    week = datetime.fromtimestamp(END - 7 * 86400, UTC).strftime("%Y-%m-%d %H:%M:%S")
    mark = placeholder(engine)
    names = fetch(conn, f"SELECT DISTINCT Name FROM Job WHERE Type = 'B' AND SchedTime >= {mark}",
                  (week,))
    cols = "JobId, Level, JobStatus, JobBytes, JobFiles, StartTime, EndTime"
    queries = [
        f"SELECT {cols} FROM Job WHERE Name = {mark} AND Type = 'B' "
        "ORDER BY StartTime DESC LIMIT 1",
        f"SELECT {cols} FROM Job WHERE Name = {mark} AND Type = 'B' AND JobStatus IN ('T', 'W') "
        "ORDER BY StartTime DESC LIMIT 1",
        f"SELECT {cols} FROM Job WHERE Name = {mark} AND Type = 'B' AND JobStatus IN ('T', 'W') "
        "AND Level = 'F' ORDER BY StartTime DESC LIMIT 1",
    ]
    for (job,) in names:
        for sql in queries:
            fetch(conn, sql, (job,))
    return 1 + 3 * len(names)


def peer_group_by(conn: Any, engine: str) -> int:
    """Pattern (b): one GROUP BY over the whole Job table joined to Client; return row count."""
    rows = fetch(
        conn,
        "SELECT c.Name, j.Name, j.Level, COUNT(*), MAX(j.EndTime), "
        "MAX(CASE WHEN j.JobStatus IN ('T', 'W') THEN j.EndTime END), "
        "SUM(CASE WHEN j.JobStatus IN ('E', 'e', 'f', 'A') THEN 1 ELSE 0 END) "
        "FROM Job j JOIN Client c ON c.ClientId = j.ClientId WHERE j.Type = 'B' "
        "GROUP BY c.Name, j.Name, j.Level",
    )
    return len(rows)


def time_peer(fn: Callable[[Any, str], int], engine: str, name: str, budget: float,
              most: int) -> dict[str, Any]:
    """Repeat a peer pattern (at least once, at most `most` times, within `budget` seconds)."""
    conn = connect_rw(engine, name)
    times: list[float] = []
    size = 0
    try:
        deadline = time.monotonic() + budget
        while len(times) < most and (not times or time.monotonic() < deadline):
            started = time.perf_counter()
            size = fn(conn, engine)
            times.append(time.perf_counter() - started)
    finally:
        conn.close()
    return {"runs": len(times), "median_ms": ms(statistics.median(times)), "size": size}


def bench(engine: str, jobs: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run every measurement on one catalog."""
    name, layout, generated = ensure(engine, jobs, args.regenerate)
    cfg = catalog_config(engine, name)
    out: dict[str, Any] = {
        "engine": engine, "jobs": layout.rows, "clients": layout.clients, "db": name,
        "generated_s": None if generated is None else round(generated, 1),
    }
    print(f"[{engine} {name}] cold start x{args.repeats}", flush=True)
    cold, poller = cold_start(cfg, args.repeats)
    out["cold_start_ms"] = ms(statistics.median(cold))
    out["cold_start_all_ms"] = [ms(t) for t in cold]
    out["tracked_series"] = len(poller.model.series)
    total, read = polls(poller, args.polls)
    out["poll0_ms"] = ms(statistics.median(total))
    out["poll0_p99_ms"] = ms(pct(total, 0.99))
    out["poll0_read_ms"] = ms(statistics.median(read))
    appender = Appender(engine, name, layout)
    try:
        total, read = polls(poller, max(3, args.polls // 4), before=appender.add)
    finally:
        appender.cleanup()
        appender.close()
        poller.close()
    out["poll100_ms"] = ms(statistics.median(total))
    out["poll100_read_ms"] = ms(statistics.median(read))
    for mode, interval in (("cached", 86400.0), ("polling", 0.0)):
        print(f"[{engine} {name}] server, {mode}", flush=True)
        runs = [serve(engine, name, interval, args.scrapers, args.per_scraper, args.limit)
                for _ in range(args.server_repeats)]
        runs.sort(key=lambda r: r["p99_ms"])
        out[f"server_{mode}"] = runs[len(runs) // 2]
        out[f"server_{mode}"]["p99_all_ms"] = [r["p99_ms"] for r in runs]
    if args.drop and args.skip_peers:
        drop(engine, name)
    if args.skip_peers:
        return out
    print(f"[{engine} {name}] peer patterns", flush=True)
    out["peer_group_by"] = time_peer(peer_group_by, engine, name, args.peer_budget, 3)
    out["peer_per_job"] = time_peer(peer_per_job, engine, name, args.peer_budget, 3)
    # Per scrape, the exporter's catalog work is one incremental poll (read only); what a client
    # waits for is a whole scrape, with one scraper and polling on every scrape.
    bases = {"poll_read": out["poll0_read_ms"],
             "scrape_polling": out["server_polling"]["single_p50_ms"],
             "scrape_cached": out["server_cached"]["single_p50_ms"]}
    for peer in ("peer_group_by", "peer_per_job"):
        for label, base in bases.items():
            out[peer][f"x_vs_{label}"] = round(out[peer]["median_ms"] / max(base, 0.001), 1)
    if args.drop:
        drop(engine, name)
    return out


def main() -> None:
    """Command line: one catalog, or the whole matrix with --all."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=sorted(DIALECTS), default="postgresql")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--all", action="store_true", help="PostgreSQL 100k/1M/10M, "
                        "MariaDB and SQLite 1M")
    parser.add_argument("--smoke", action="store_true", help="quick pipeline check (100k)")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--drop", action="store_true", help="drop each catalog when done")
    parser.add_argument("--repeats", type=int, default=3, help="cold starts")
    parser.add_argument("--polls", type=int, default=20, help="incremental polls")
    parser.add_argument("--server-repeats", type=int, default=3)
    parser.add_argument("--scrapers", type=int, default=10)
    parser.add_argument("--per-scraper", type=int, default=50)
    parser.add_argument("--limit", type=float, default=30.0, help="seconds of load per run")
    parser.add_argument("--peer-budget", type=float, default=180.0)
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.polls, args.server_repeats, args.per_scraper = 1, 4, 1, 5
        args.peer_budget = 1.0
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    matrix = MATRIX if args.all else [(args.engine, args.jobs)]
    for engine, jobs in matrix:
        result = bench(engine, jobs, args)
        result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
        result["smoke"] = args.smoke
        result["load"] = os.getloadavg()
        line = json.dumps(result)
        print(line, flush=True)
        with RESULTS.open("a") as fh:
            fh.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
