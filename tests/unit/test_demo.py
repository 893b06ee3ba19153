"""The demo catalog shows the mix it intends at any time of day: a newcomer's first screen."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.catalog.config import CatalogConfig
from exporter.demo import DEMO_ZONE, write_demo_catalog
from exporter.exposition.sla import SlaConfig
from exporter.service.overview import overview, sla_max_age
from exporter.service.poller import CatalogPoller

# Past every hour of a day and across a DST change of the demo's zone.
TIMES = [datetime(2026, 11, 30, tzinfo=UTC).timestamp() + h * 3600
         for h in (0, 0.5, 1, 2, 2.75, 3, 4.5, 7, 12, 18, 23.9)]
TIMES.append(datetime(2026, 3, 29, 2, 30, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("now", TIMES)
def test_demo_shows_the_intended_mix(tmp_path: Path, now: float) -> None:
    """Mostly ok; one client that stopped, one failure, one never backed up, one running job."""
    path = tmp_path / "demo.db"
    write_demo_catalog(path, now)
    poller = CatalogPoller(CatalogConfig(name="demo", url=f"sqlite:///{path}",
                                         timezone=DEMO_ZONE))
    poller.maybe_poll(0, wait=30)
    assert poller.up, poller.error
    rows, _ = overview([poller], sla_max_age(SlaConfig()), now)
    trouble = {(r.standing.label, r.client, r.job, r.level) for r in rows if r.standing.value}
    assert trouble == {
        ("late", "mail01-fd", "Backup-mail01", "full"),  # stopped nine days ago
        ("late", "mail01-fd", "Backup-mail01", "incremental"),
        ("failing", "web02-fd", "Backup-web02", "full"),  # an extra full failed tonight
        ("never", "laptop07-fd", "Backup-laptop07", "full"),
    }
    assert sum(1 for r in rows if not r.standing.value) >= 8
    checks = {(r.standing.label, r.client, r.job, r.level) for r in rows
              if r.job in ("VerifyDb01", "BackupCatalog")}
    assert checks == {("ok", "db01-fd", "VerifyDb01", "verify-volume-to-catalog"),
                      ("ok", "", "BackupCatalog", "admin")}
    running = [(r.client, r.job) for r in rows if r.running_since is not None]
    assert running == [("db01-fd", "Backup-db01-hourly")]
    poller.close()
