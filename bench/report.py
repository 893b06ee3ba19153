"""Print the results table of bench/README.md from the runner's results.jsonl."""

import argparse
import json
from pathlib import Path
from typing import Any

from bench.generate import DATA_DIR

ENGINES = {"postgresql": "PostgreSQL", "mysql": "MariaDB", "sqlite": "SQLite"}


def size(jobs: int) -> str:
    """10,003,500 -> 10M."""
    return f"{round(jobs / 1e6)}M" if jobs >= 1_000_000 else f"{round(jobs / 1e3)}k"


def latest(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The last complete result (with the peers, not a smoke run) per engine and size."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        result = json.loads(line)
        if "peer_per_job" in result and not result.get("smoke"):
            found[(result["engine"], result["jobs"])] = result
    return found


def table(results: dict[tuple[str, int], dict[str, Any]]) -> str:
    """Markdown table, one row per catalog."""
    head = (
        "| catalog | Job rows | clients | series | exposition | cold start | poll, 0 new "
        "(p99) | poll, 100 new: read / +render | /metrics 1 scraper p50 | /metrics 10 "
        "scrapers p50 / p99 (cached) | same, every scrape polls | peak RSS ready / under load "
        "| peer (a) per job | peer (b) GROUP BY |\n|" + "---|" * 14
    )
    rows = [head]
    for (engine, jobs), r in sorted(results.items(), key=lambda kv: (kv[0][0] != "postgresql",
                                                                      kv[0][1], kv[0][0])):
        c, p = r["server_cached"], r["server_polling"]
        rows.append(
            f"| {ENGINES[engine]} | {size(jobs)} ({jobs:,}) | {r['clients']:,} | "
            f"{c['series']:,} | {c['bytes'] / 2**20:.1f} MiB | {r['cold_start_ms'] / 1000:.2f} s | "
            f"{r['poll0_ms']} ms ({r['poll0_p99_ms']}) | "
            f"{r['poll100_read_ms']} / {r['poll100_ms']} ms | {c['single_p50_ms']} ms | "
            f"{c['p50_ms']} / {c['p99_ms']} ms | {p['p50_ms']} / {p['p99_ms']} ms | "
            f"{c['rss_ready_mb']:.0f} / {max(c['rss_peak_mb'], p['rss_peak_mb']):.0f} MB | "
            f"{r['peer_per_job']['median_ms'] / 1000:.2f} s ({r['peer_per_job']['size']:,} "
            f"queries) | {r['peer_group_by']['median_ms'] / 1000:.2f} s |"
        )
    return "\n".join(rows)


def ratios(results: dict[tuple[str, int], dict[str, Any]]) -> str:
    """Markdown table of peer time per scrape over the exporter's."""
    rows = [
        "| catalog | (a) / poll read | (a) / scrape (polling) | (b) / poll read "
        "| (b) / scrape (polling) |\n|---|---|---|---|---|"
    ]
    for (engine, jobs), r in sorted(results.items(), key=lambda kv: (kv[0][0] != "postgresql",
                                                                      kv[0][1], kv[0][0])):
        a, b = r["peer_per_job"], r["peer_group_by"]
        rows.append(
            f"| {ENGINES[engine]} {size(jobs)} | {a['x_vs_poll_read']:,.0f}x | "
            f"{a['x_vs_scrape_polling']:,.0f}x | {b['x_vs_poll_read']:,.0f}x | "
            f"{b['x_vs_scrape_polling']:,.0f}x |"
        )
    return "\n".join(rows)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=DATA_DIR / "results.jsonl")
    args = parser.parse_args()
    results = latest(args.results)
    print(table(results))
    print()
    print(ratios(results))


if __name__ == "__main__":
    main()
