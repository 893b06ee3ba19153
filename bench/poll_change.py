"""A poll that finds new jobs, end to end: read, re-render, and the /metrics block rebuilt.

Cold-starts a poller on a generated catalog, then before each of --polls polls inserts --new
rows of "tomorrow" (the generator's own SQL, as bench.run does) and times the poll (read and
render, as the poller does it) and the block rebuild the exporter does after it. Wall time and
the thread's CPU time, so that a busy machine shows as the gap between them. With --profile,
prints the cProfile top entries of those polls. The rows are deleted afterwards.

    .venv/bin/python -m bench.poll_change --jobs 10000000 [--new 100] [--polls 8] [--profile]
"""

import argparse
import cProfile
import json
import os
import pstats
import statistics
import time

from bench.generate import Layout
from bench.run import STATEMENT_TIMEOUT, Appender, catalog_config, ensure, ms
from exporter.exposition.block import Exposition
from exporter.service.poller import CatalogPoller


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="postgresql")
    parser.add_argument("--jobs", type=int, default=10_000_000)
    parser.add_argument("--new", type=int, default=100)
    parser.add_argument("--polls", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    name, layout, _ = ensure(args.engine, args.jobs, regenerate=False)
    poller = CatalogPoller(catalog_config(args.engine, name))
    started = time.perf_counter()
    poller.maybe_poll(0, wait=STATEMENT_TIMEOUT)
    cold = time.perf_counter() - started
    exposition = Exposition()
    exposition.rebuild([poller.rendered])
    appender = Appender(args.engine, name, Layout.for_jobs(args.jobs))
    profile = cProfile.Profile()
    read, polled, total, cpu = [], [], [], []
    try:
        for _ in range(args.polls):
            appender.add(args.new)
            started, cpu_started = time.perf_counter(), time.thread_time()
            if args.profile:
                profile.enable()
            poller.maybe_poll(0, wait=STATEMENT_TIMEOUT)
            polled.append(time.perf_counter() - started)
            exposition.rebuild([poller.rendered])
            if args.profile:
                profile.disable()
            total.append(time.perf_counter() - started)
            cpu.append(time.thread_time() - cpu_started)
            read.append(poller.last_duration)
    finally:
        appender.cleanup()
        appender.close()
        poller.close()
    print(json.dumps({
        "jobs": layout.rows, "new": args.new, "polls": args.polls, "cold_start_ms": ms(cold),
        "read_ms": ms(statistics.median(read)), "read_and_render_ms": ms(statistics.median(polled)),
        "end_to_end_ms": ms(statistics.median(total)), "end_to_end_max_ms": ms(max(total)),
        "cpu_ms": ms(statistics.median(cpu)), "profiled": args.profile, "load": os.getloadavg(),
    }), flush=True)
    if args.profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
