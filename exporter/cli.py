"""Command line: serve, check-config, demo."""

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporter import __version__
from exporter.config import Config, ConfigError, load_config, parse_config


def _serve(config: Config) -> int:
    """Run the HTTP server and the pollers until interrupted."""
    import uvicorn  # imported here so check-config stays fast

    from exporter.ha.leader import Leadership
    from exporter.service.runner import Exporter
    from exporter.tickets.bridge import build_bridge
    from exporter.tickets.schema import SchemaError
    from exporter.web.access import ssl_context
    from exporter.web.app import create_app

    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO, URL included: a sink's address is not for the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        bridge = build_bridge(config)
        if bridge:
            bridge.outbox.start()  # migrates a PostgreSQL outbox (SQLite's: when built)
    except SchemaError as exc:
        logging.getLogger("exporter").error("%s", exc)
        return 1
    leadership = Leadership(config.state_database) if config.state_database else None
    exporter = Exporter(config, bridge.outbox.listener if bridge else None,
                        bridge.outbox.store.resume if bridge else None, config.backfill, leadership)
    exporter.start()
    logging.getLogger("exporter").info(
        "bacula-exporter %s listening on %s, %d catalog(s)",
        __version__, config.listen, len(config.catalogs),
    )
    tls = config.web.tls_server_config
    try:
        uvicorn.run(
            create_app(exporter, bridge, config.web, config.web_public), host=config.host,
            port=config.port, log_level=config.log_level, access_log=False,
            # Longer than the 15 s scrape interval, so scrapers keep their connection.
            timeout_keep_alive=30,
            ssl_context_factory=(lambda _config, _default: ssl_context(tls)) if tls else None,
        )
    finally:
        exporter.stop()
        if bridge:
            bridge.outbox.stop()
    return 0


def _load(path: str, web_config_file: str | None = None) -> Config | None:
    """Load a config file, or print every problem with its key path and return None."""
    try:
        return load_config(path, web_config_file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return None


def _check(path: str) -> int:
    """Validate a config file; print every problem with its key path."""
    config = _load(path)
    if config is None:
        return 1
    print(f"{path}: OK ({len(config.catalogs)} catalog(s))")
    return 0


def _status(path: str, check: bool) -> int:
    """Poll every catalog once and print the overview, or one Nagios/Icinga check line."""

    from exporter.service.live import live_overview, with_directors
    from exporter.service.overview import human_age, level_of_trouble, overview, sla_max_age
    from exporter.service.poller import CatalogPoller

    config = _load(path)
    if config is None:
        if check:
            print(f"BACULA UNKNOWN - bad configuration {path}")
            return 3
        return 1
    logging.basicConfig(level="CRITICAL")  # the output is the report; errors show in it
    pollers = [CatalogPoller(c) for c in config.catalogs]
    for poller in pollers:
        poller.maybe_poll(0, wait=poller.cfg.statement_timeout * 4 + poller.cfg.connect_timeout)
        poller.close()
    directors = _directors_once(config, pollers)
    now = time.time()
    expected = [key for policy in config.sla.policies for key in policy.expected()]
    rows, health = overview(pollers, sla_max_age(config.sla), now, expected)
    live_rows, live_health = live_overview(directors)
    code, line = with_directors(*level_of_trouble(rows, health), live_health, live_rows)
    if check:
        print(line)
        return code
    table = [("STATE", "CATALOG", "CLIENT", "JOB", "LEVEL", "LAST SUCCESS AGE", "SLA",
              "LAST RUN", "RUNNING", "REASON")]
    for r in rows:
        table.append((
            r.standing.label, r.catalog, r.client, r.job or "-",
            f"{r.level} (virtual)" if r.virtual_full else r.level or "-",
            human_age(r.age(now)), human_age(r.max_age) if r.max_age else "-",
            r.last_status or "-", human_age(now - r.running_since) if r.running_since else "-",
            r.reason[:60],
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for h in health:
        if not h.up:
            print(f"catalog {h.name} is unreachable: {h.error}", file=sys.stderr)
    _print_live(live_rows, live_health, now)
    print(line.split(" | ")[0])
    return code


def _directors_once(config: Config, pollers: Sequence[Any]) -> list[Any]:
    """Poll each Director once; the kept slots are read, never written (the server owns them)."""
    from exporter.director.console import runtime_dir
    from exporter.service.director import director_pollers

    if not config.directors:
        return []
    folder = runtime_dir()
    directors = director_pollers(config, {p.cfg.name: p.jobs_seen for p in pollers}, folder,
                                 read_only=True)
    try:
        for director in directors:
            director.poll()
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # it held the console configs
    return directors


def _print_live(rows: Sequence[Any], health: Sequence[Any], now: float) -> None:
    """Print what the Directors say now: who is down, what waits, what was missed, what comes."""
    for h in health:
        state = f"up, {h.version}" if h.up else f"DOWN: {h.error}"
        print(f"director {h.name} (catalog {h.catalog}): {state}")
    for r in rows:
        when = r.when_text(now)
        if r.kind in ("missed", "next"):
            when = f"at {when}"
        print(f"  {r.kind:8} {r.director}  {r.client or '-'}  {r.job or '-'}  {r.level or '-'}  "
              f"{r.what}  {when}".rstrip())


def _demo(listen: str, db: str | None) -> int:
    """Write a demo catalog and serve it."""
    from exporter.demo import DEMO_ZONE, write_demo_catalog

    path = Path(db) if db else Path(tempfile.gettempdir()) / "bacula-exporter-demo.db"
    write_demo_catalog(path)
    print(f"demo catalog written to {path}; metrics at http://{listen}/metrics", flush=True)
    config = parse_config({
        "listen": listen,
        "poll_interval": "10s",
        "catalogs": [{"name": "demo", "url": f"sqlite:///{path.resolve()}", "timezone": DEMO_ZONE}],
    }, "demo")
    return _serve(config)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bacula-exporter` command."""
    parser = argparse.ArgumentParser(
        prog="bacula-exporter", description="Prometheus exporter for Bacula and Bareos catalogs."
    )
    parser.add_argument("--version", action="version", version=f"bacula-exporter {__version__}")
    parser.add_argument("--config", help="serve with this YAML configuration file")
    parser.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                        help="TLS and basic auth in exporter-toolkit's format (as node_exporter "
                             "reads it); overrides the config's web_config_file")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve /metrics (the default with --config)")
    serve.add_argument("--config", dest="serve_config", required=True)
    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("file")
    status = sub.add_parser("status", help="print the overview of every catalog and job")
    status.add_argument("--config", dest="status_config", required=True)
    status.add_argument("--check", action="store_true",
                        help="one line and exit code as a Nagios/Icinga plugin (0/1/2/3)")
    demo = sub.add_parser("demo", help="serve a generated demo catalog")
    demo.add_argument("--listen", default="127.0.0.1:9625")
    demo.add_argument("--db", help="where to write the demo SQLite catalog")
    args = parser.parse_args(argv)

    if args.command == "check-config":
        return _check(args.file)
    if args.command == "status":
        return _status(args.status_config, args.check)
    if args.command == "demo":
        return _demo(args.listen, args.db)
    path = getattr(args, "serve_config", None) or args.config
    if not path:
        parser.print_usage(sys.stderr)
        print("bacula-exporter: give --config FILE, or try `bacula-exporter demo`", file=sys.stderr)
        return 2
    config = _load(path, args.web_config_file)
    return 1 if config is None else _serve(config)


if __name__ == "__main__":
    sys.exit(main())
