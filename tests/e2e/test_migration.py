"""A Migration job run by real Directors (Bacula 9.6.7 and 15.0.3), as the exporter shows it.

A lab (SQLite catalog, ports of its own) gets a pool `MigSrc` whose Next Pool is `MigDst` on the
other device, a backup job `BackupMig` writing to `MigSrc` and a Migrate job `MigrateMig` that
selects it by name. The Director turns the original into Type M and writes a Type B row with its
data (PriorJobId = the original); the control job is Type g. An exporter that watched it all and
one cold-started afterwards must both show: one run, the last success at the original's time,
the migration time, and the control job's run as a migration check.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.bacula import RELEASES, BaculaLab, Release, chroot_mounts, missing
from tests.promtext import samples, value
from tests.server import free_port, start_logged, stop

PORT_BASES = {"9.6": 19400, "15": 19420}
CATALOG = "mig"


class MigrationLab(BaculaLab):
    """The lab with a pool to migrate from, one to migrate to, and the two jobs."""

    def _write_configs(self) -> None:
        """Add the migration resources to the lab's Director."""
        super()._write_configs()
        with (self.etc / "bacula-dir.conf").open("a") as conf:
            conf.write("""
Pool {
  Name = MigSrc
  Pool Type = Backup
  Storage = File1
  Label Format = "MigSrc-"
  Next Pool = MigDst
  AutoPrune = no
  Volume Retention = 365 days
}
Pool {
  Name = MigDst
  Pool Type = Backup
  Storage = File2
  Label Format = "MigDst-"
  AutoPrune = no
  Volume Retention = 365 days
}
Job {
  Name = BackupMig
  JobDefs = Defaults
  Pool = MigSrc
}
Job {
  Name = MigrateMig
  JobDefs = Defaults
  Type = Migrate
  Pool = MigSrc
  Selection Type = Job
  Selection Pattern = "^BackupMig$"
}
""")


def _config(lab: BaculaLab, port: int, name: str) -> Path:
    """Write an exporter config for the lab's catalog, polled every second."""
    path = lab.root / f"{name}.yml"
    path.write_text(f'listen: "127.0.0.1:{port}"\npoll_interval: 1s\nscrape_min_interval: 0s\n'
                    f"catalogs:\n  - {{name: {CATALOG}, url: '{lab.catalog_url}', "
                    f"timezone: {lab.tz}}}\n")
    return path


def _scrape(port: int) -> dict[Any, float]:
    """Return the samples of one exporter."""
    return samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text)


def _until_migrated(port: int) -> dict[Any, float]:
    """Wait until the exporter has seen the migration control job end; return its samples."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = _scrape(port)
        if value(found, "bacula_migration_runs_total", catalog=CATALOG, client="good-fd",
                 job="MigrateMig"):
            return found
        time.sleep(0.5)
    raise AssertionError("the exporter never showed the migration control job")


@pytest.fixture(scope="module", params=RELEASES, ids=[f"bacula-{r.name}" for r in RELEASES])
def migrated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[BaculaLab, dict[str, Any]]]:
    """Run a backup and its migration with an exporter watching; then cold-start another."""
    release: Release = request.param
    reason = missing(release)
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp(f"migration-{release.name}")
    lab = MigrationLab("sqlite", base / "lab", tz="Europe/Berlin",
                       port_base=PORT_BASES[release.name], release=release)
    seen: dict[str, Any] = {}
    with chroot_mounts(release, base):
        lab.setup()
        lab.start()
        watcher_port, cold_port = free_port(), free_port()
        with (base / "watcher.log").open("wb") as log:
            watcher = start_logged(_config(lab, watcher_port, "watcher"), watcher_port, log)
            try:
                seen["backup"] = lab.run_and_wait("BackupMig", "Full")
                seen["migrate"] = lab.run_and_wait("MigrateMig")
                seen["watcher"] = _until_migrated(watcher_port)
            finally:
                stop(watcher)
        with (base / "cold.log").open("wb") as log:
            cold = start_logged(_config(lab, cold_port, "cold"), cold_port, log)
            try:
                seen["cold"] = _until_migrated(cold_port)
            finally:
                stop(cold)
        seen["jobs"] = lab.jobs()
        lab.stop()
    yield lab, seen


def test_the_director_migrated_the_backup(migrated: tuple[BaculaLab, dict[str, Any]]) -> None:
    """The catalog as Bacula wrote it: original M, its data in a B row, the control job g."""
    _, seen = migrated
    jobs = {j.job_id: j for j in seen["jobs"]}
    original = jobs[seen["backup"]]
    assert original.type == "M" and original.status == "T", original
    control = jobs[seen["migrate"]]
    assert control.type == "g" and control.status == "T", control
    (moved,) = [j for j in jobs.values() if j.prior_job_id == original.job_id]
    assert moved.type == "B" and moved.name == "BackupMig" and moved.level == "F"
    assert moved.job_tdate == original.job_tdate


@pytest.mark.parametrize("exporter", ["watcher", "cold"])
def test_the_exporter_keeps_one_run_at_the_original_time(
        migrated: tuple[BaculaLab, dict[str, Any]], exporter: str) -> None:
    """One run, the last success at the original's time, the migration time; the check ran ok."""
    _, seen = migrated
    found = seen[exporter]
    original = next(j for j in seen["jobs"] if j.job_id == seen["backup"])
    key = {"catalog": CATALOG, "client": "good-fd", "job": "BackupMig", "level": "full"}
    assert value(found, "bacula_job_runs_total", **key) == 1
    assert value(found, "bacula_job_failures_total", **key) == 0
    assert value(found, "bacula_job_last_success_timestamp_seconds", **key) == original.job_tdate
    migration = value(found, "bacula_job_last_migration_timestamp_seconds", **key)
    if exporter == "cold":
        assert migration == original.job_tdate
    else:
        # A new B row with a PriorJobId is held back for the settle window (2 minutes): Bacula
        # writes a copy as B first and turns it C later. Until then it is not the migration yet.
        assert migration in (None, original.job_tdate)
    check = {"catalog": CATALOG, "client": "good-fd", "job": "MigrateMig"}
    assert value(found, "bacula_migration_last_run_status", status="ok", **check) == 1
    assert value(found, "bacula_migration_failures_total", **check) == 0
