"""Every dashboard query returns data from a real Prometheus scraping the exporter."""

import json
from pathlib import Path

import pytest

from exporter.demo import write_demo_catalog
from tests.chain.harness import Prometheus, require_binaries, running, wait_until
from tests.dashboard_queries import DASHBOARDS, is_live, panel_queries
from tests.server import start, stop, write_config

pytestmark = pytest.mark.integration
# What Grafana would put in for the variables: the demo catalog, all clients, one client.
VALUES = {
    "overview.json": {"$catalog": "demo", "$client": ".*"},
    "client.json": {"$catalog": "demo", "$client": "web01-fd"},
}


def test_every_panel_query_returns_data(tmp_path: Path) -> None:
    """Substitute the variables in each panel query and run it against Prometheus."""
    require_binaries()
    db = tmp_path / "demo.db"
    write_demo_catalog(db)
    config, port = write_config(
        tmp_path, db, poll="1s",
        # A retention promise gives a restore window, so restorable bytes have data.
        extra="sla:\n  defaults: {retention: 7d}\n"
              "  policies:\n    - {match: {client: 'web*'}, max_copy_lag: 1d}\n",
    )
    exporter = start(["--config", str(config)], port)
    proven: list[str] = []
    try:
        prom = Prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"], [])
        with running(prom):
            # increase() and rate() need two samples in their window: wait for a few scrapes.
            wait_until(lambda: prom.query("count_over_time(bacula_catalog_up[1m]) >= 4"), 60,
                       "four scrapes of the exporter")
            for name, values in VALUES.items():
                model = json.loads((DASHBOARDS / name).read_text())
                for variable in model["templating"]["list"][1:]:
                    query = variable["query"].removeprefix("label_values(")
                    metric = query.rsplit(",", 1)[0]
                    for key, val in values.items():
                        metric = metric.replace(key, val)
                    assert prom.query(metric), f"{name}: variable {variable['name']}"
                for title, expr in panel_queries(name, values):
                    if is_live(expr):
                        continue  # a real Director's panels: tests/e2e/test_director.py
                    assert prom.query(expr), f"{name}: {title!r} returned no data: {expr}"
                    proven.append(f"{name}: {title}")
    finally:
        stop(exporter)
    print("panel queries proven:", *proven, sep="\n  ")
    assert len(proven) == sum(
        1 for n, v in VALUES.items() for _, e in panel_queries(n, v) if not is_live(e))
    assert len(proven) > 20
