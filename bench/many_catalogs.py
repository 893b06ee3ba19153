"""Many catalogs in one process: cold start, poll cost per catalog, scrapes and memory.

Makes --catalogs copies of one generated SQLite catalog (--jobs rows each; copies, not links, so
each is read from its own file), starts the real exporter on all of them (one poll thread per
catalog: their cold starts run side by side), and reports:
- ready: the time until every catalog was read once, and each catalog's cold start (its first
  poll's duration, from bacula_catalog_poll_duration_seconds);
- /metrics with 1 and 10 scrapers (gzip) and one plain scraper, series, peak RSS;
- then, in this process, what one catalog's polls cost: no new jobs, and 100 new ones.

    .venv/bin/python -m bench.many_catalogs [--catalogs 100] [--jobs 100000] [--limit 10]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.generate import DATA_DIR, db_name, sqlite_path
from bench.run import (
    EXPORTER,
    ROOT,
    Appender,
    catalog_config,
    cold_start,
    ensure,
    figures,
    free_port,
    load,
    ms,
    pct,
    polls,
    vm_hwm,
    wrk,
)


def copies(count: int, jobs: int) -> list[Path]:
    """Return `count` copies of the SQLite bench catalog of `jobs` rows (made once)."""
    name, _, _ = ensure("sqlite", jobs, regenerate=False)
    source = sqlite_path(name)
    folder = DATA_DIR / f"many_{db_name(jobs)}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"c{i:03d}.db" for i in range(count)]
    for path in paths:
        if not path.exists() or path.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, path)
    return paths


def poll_durations(base: str) -> list[float]:
    """Return every catalog's last poll duration (seconds) from /metrics."""
    body = httpx.get(f"{base}/metrics", timeout=120).content
    # Millions of lines: read the few wanted ones without parsing the rest.
    start = body.index(b"\nbacula_catalog_poll_duration_seconds{") + 1
    end = body.index(b"\n# HELP", start)
    return [float(line.rsplit(b" ", 1)[1]) for line in body[start:end].splitlines()]


def poll_costs(jobs: int, count: int) -> dict[str, float]:
    """Time one catalog's polls in this process: with no new jobs, and with 100 new ones."""
    name, layout, _ = ensure("sqlite", jobs, regenerate=False)
    _, poller = cold_start(catalog_config("sqlite", name), 1)
    appender = Appender("sqlite", name, layout)
    try:
        idle, _ = polls(poller, count)
        busy, _ = polls(poller, max(3, count // 4), before=appender.add)
    finally:
        appender.cleanup()
        appender.close()
        poller.close()
    return {"poll0_median_ms": ms(statistics.median(idle)), "poll0_p99_ms": ms(pct(idle, 0.99)),
            "poll100_median_ms": ms(statistics.median(busy))}


def run(count: int, jobs: int, limit: float, timed_polls: int) -> dict[str, Any]:
    """Start one exporter over `count` catalogs and measure it."""
    paths = copies(count, jobs)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = {
        "listen": f"127.0.0.1:{port}", "poll_interval": "1h",
        "scrape_min_interval": "1d", "log_level": "warning",
        "catalogs": [{"name": path.stem, "url": f"sqlite:///{path}", "timezone": "UTC",
                      "statement_timeout": 600} for path in paths],
    }
    out: dict[str, Any] = {"catalogs": count, "jobs_each": jobs, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bacula-many-") as tmp:
        path = Path(tmp) / "config.yml"
        path.write_text(yaml.safe_dump(config))
        started = time.perf_counter()
        proc = subprocess.Popen([str(EXPORTER), "--config", str(path)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while httpx_status(f"{base}/readyz") != 200:
                if proc.poll() is not None or time.perf_counter() - started > 1800:
                    raise RuntimeError("the exporter did not become ready")
                time.sleep(0.1)
            out["ready_s"] = round(time.perf_counter() - started, 2)
            out["rss_ready_mb"] = round(vm_hwm(proc.pid) / 2**20, 1)
            cold = poll_durations(base)  # no catalog polled twice yet: these are cold starts
            out["cold_start_each_ms"] = {"median": ms(statistics.median(cold)),
                                         "max": ms(max(cold)), "sum": ms(sum(cold))}
            body = httpx.get(f"{base}/metrics", timeout=120).content
            out["series"] = sum(1 for line in body.splitlines() if line and line[:1] != b"#")
            out["bytes"] = len(body)
            if shutil.which("wrk"):
                out["scrape_1"] = wrk(base, 1, limit / 2)
                out["scrape_10"] = wrk(base, 10, limit)
                out["scrape_plain"] = wrk(base, 1, limit / 2, gzip=False)
            else:
                out["scrape_1"] = figures(load(base, 1, 50, limit / 2))
                out["scrape_10"] = figures(load(base, 10, 50, limit))
                out["scrape_plain"] = figures(load(base, 1, 50, limit / 2, gzip=False))
            out["rss_peak_mb"] = round(vm_hwm(proc.pid) / 2**20, 1)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    out["poll_one_catalog"] = poll_costs(jobs, timed_polls)
    out["load_after"] = os.getloadavg()
    return out


def httpx_status(url: str) -> int:
    """Return the status of a GET, 0 when nothing answers yet."""
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalogs", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--limit", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--polls", type=int, default=20, help="polls of one catalog timed")
    args = parser.parse_args()
    print(json.dumps(run(args.catalogs, args.jobs, args.limit, args.polls)), flush=True)


if __name__ == "__main__":
    main()
