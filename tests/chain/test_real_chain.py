"""The real chain: the exporter over a real catalog -> Prometheus -> rules -> Alertmanager."""

import sqlite3
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exporter.catalog.builder import CatalogBuilder
from tests.chain.harness import (
    Alertmanager,
    Prometheus,
    Receiver,
    firing,
    require_binaries,
    rule_files,
    running,
    shorten_for,
)
from tests.server import start, stop, write_config

pytestmark = pytest.mark.integration
H, D = 3600.0, 86400.0


def write(db: Path, build: Any, version: int | None = None) -> None:
    """Append rows to (or create) a SQLite catalog."""
    b = CatalogBuilder(ZoneInfo("UTC"))
    b._clients = {"late-fd": 1, "failing-fd": 2, "good-fd": 3}
    b._pools = {"Full": 1}
    b._ids["Job"] = 100 if version is None else 0
    if version is not None:
        b._clients, b._pools = {}, {}
    build(b)
    conn = sqlite3.connect(db)
    b.write(conn.cursor(), "sqlite", version)
    conn.commit()
    conn.close()


def test_exporter_rules_alertmanager_fire_and_resolve(tmp_path: Path) -> None:
    """One client past its SLA, one failing, one healthy; good runs written later resolve both."""
    require_binaries()
    now = time.time()
    db = tmp_path / "bacula.db"

    def initial(b: CatalogBuilder) -> None:
        for name in ("late-fd", "failing-fd", "good-fd"):
            b.client(name)
        b.pool("Full")
        b.job("Files-late", "late-fd", now - 10 * D, now - 10 * D + 600)
        b.job("Files-failing", "failing-fd", now - 2 * D, now - 2 * D + 600)
        b.job("Files-failing", "failing-fd", now - 3 * H, now - 3 * H + 60, level="I")
        b.job("Files-failing", "failing-fd", now - 900, now - 840, level="I", status="f")
        b.job("Files-good", "good-fd", now - 2 * D, now - 2 * D + 600)
        b.job("Files-good", "good-fd", now - 2 * H, now - 2 * H + 60, level="I")

    write(db, initial, version=16)
    config, port = write_config(
        tmp_path, db, catalog="main", zone="UTC", poll="1s",
        extra="sla:\n  defaults:\n    max_age: {full: 7d, incremental: 26h}\n",
    )
    exporter = start(["--config", str(config)], port)
    try:
        with Receiver() as receiver:
            am = Alertmanager(tmp_path / "am", receiver.url)
            prom = Prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"],
                              shorten_for(rule_files(), tmp_path), alertmanager=am.url)
            with running(am, prom):
                started = time.monotonic()
                receiver.wait_for(lambda r: {"late-fd", "failing-fd"} <= set(firing(r)), 90,
                                  "the late and the failing client's alerts")
                fired_after = time.monotonic() - started
                alerts = firing(receiver)
                assert alerts["late-fd"]["labels"]["alertname"] == "BaculaBackupTooOld"
                assert alerts["late-fd"]["labels"]["level"] == "full"
                assert alerts["late-fd"]["labels"]["job"] == "Files-late"
                assert "9d 23h" in alerts["late-fd"]["annotations"]["description"]
                assert alerts["failing-fd"]["labels"]["alertname"] == "BaculaJobFailed"
                assert alerts["failing-fd"]["labels"]["status"] == "error"
                assert alerts["failing-fd"]["labels"]["level"] == "incremental"
                clients = {a["labels"].get("client") for a in receiver.alerts()}
                assert "good-fd" not in clients

                def fixed(b: CatalogBuilder) -> None:
                    t = time.time()
                    b.job("Files-late", "late-fd", t - 120, t - 60)
                    b.job("Files-failing", "failing-fd", t - 120, t - 60, level="I")

                write(db, fixed)
                started = time.monotonic()
                receiver.wait_for(lambda r: not {"late-fd", "failing-fd"} & set(firing(r)), 90,
                                  "both alerts to resolve")
                resolved_after = time.monotonic() - started
                latest = {a["labels"]["client"]: a["status"] for a in receiver.latest().values()
                          if a["labels"].get("client") in ("late-fd", "failing-fd")}
                assert latest == {"late-fd": "resolved", "failing-fd": "resolved"}
    finally:
        stop(exporter)
    print(f"chain: fired after {fired_after:.1f}s, resolved after {resolved_after:.1f}s")
