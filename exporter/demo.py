"""A realistic demo catalog (Bacula 9.6 schema, SQLite) so a newcomer sees real metrics at once."""

import random
import sqlite3
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from exporter.catalog.builder import CatalogBuilder

DEMO_ZONE = "Europe/Berlin"
DAY = 86400
GiB = 1 << 30


def build_demo(now: float | None = None, seed: int = 7) -> CatalogBuilder:
    """Three weeks of nightly backups for a small shop, with the usual trouble mixed in."""
    now = time.time() if now is None else now
    rng = random.Random(seed)  # noqa: S311 - deterministic demo data, not security
    b = CatalogBuilder(ZoneInfo(DEMO_ZONE))
    for pool, kind in (("Full", "Backup"), ("Incremental", "Backup"), ("Offsite", "Copy")):
        b.pool(pool, kind, max_vols=40)
    for row in b.rows["Pool"]:
        row["MaxVolBytes"] = 100 * GiB  # so each pool states a capacity: 40 x 100 GiB
    # Volume i was last written i days ago (odd ones in Full); two weeks' retention, so some
    # are recyclable and more become so within the week; the oldest were recycled already.
    vols = []
    for i in range(24):
        status = "Full" if i < 16 else ("Append" if i < 20 else "Recycle")
        vols.append(b.volume(f"Vol-{i:04d}", "Full" if i % 2 else "Incremental", status,
                             50 * GiB, now - i * DAY))
        b.rows["Media"][-1].update(Recycle=1, VolRetention=14 * DAY)
    # Night 0 is the newest night whose runs have all ended by now (starts 01:00-01:30 UTC, an
    # hour at most): at any time of day the newest incremental is under 26 h old and the
    # newest full under 7 days, so only the trouble written on purpose shows.
    settled = now - 2.75 * 3600
    midnight = settled - settled % DAY
    # name, full size, nightly change, copied offsite, the day it stopped (None = healthy)
    clients = [
        ("web01-fd", 40 * GiB, 0.03, True, None),
        ("web02-fd", 38 * GiB, 0.03, False, None),
        ("db01-fd", 120 * GiB, 0.10, True, None),
        ("mail01-fd", 60 * GiB, 0.05, False, 9),   # stopped backing up nine days ago
        ("files01-fd", 300 * GiB, 0.02, True, None),
    ]
    for name, size, change, offsite, stopped in clients:
        job = "Backup-" + name.removesuffix("-fd")
        for day in range(20, -1, -1):
            if stopped is not None and day < stopped:
                continue
            start = midnight - day * DAY + 3600 + rng.randint(0, 1800)
            full = day % 7 == 5  # weekly fulls, the last one five nights ago
            nbytes = int(size if full else size * change * rng.uniform(0.5, 1.5))
            duration = max(60, nbytes // (80 << 20))
            status, errors = "T", 0
            # Past incrementals carry some random trouble, which a later run made good; the
            # trouble that shows today is written on purpose below.
            roll = rng.random()
            if day == 0 or full:
                roll = 1.0
            if roll < 0.05:
                status, nbytes, duration = "f", 0, 12
            elif roll < 0.09:
                errors = 1  # "OK -- with warnings": Bacula writes T with JobErrors > 0
            jid = b.job(job, name, start, start + duration, level="F" if full else "I",
                        status=status, errors=errors, bytes_=nbytes, files=nbytes // 90_000,
                        pool="Full" if full else "Incremental")
            if status != "f":  # the volume of its night and pool (older ones are recycled)
                b.job_media(jid, vols[min(23, day + (day % 2 != full))])
            if status == "f":
                b.log(jid, start + 12, f"{name} JobId {jid}: Fatal error: No Job status returned "
                      "from FD.\n")
            elif name == "web02-fd" and day == 0:
                # After tonight's incremental an operator's extra full failed: a failure whose
                # last good full is still within its SLA.
                failed = b.job(job, name, start + duration + 600, start + duration + 612,
                               level="F", status="f", pool="Full")
                b.log(failed, start + duration + 612, f"{name} JobId {failed}: Fatal error: "
                      "Unable to connect to Client: web02-fd on web02:9102. ERR=No route to "
                      "host\n")
            elif name == "web01-fd" and day == 3:
                b.job(job, name, start + 5 * 3600, start + 5 * 3600 + 5, level="I",
                      status="A", pool="Incremental")  # canceled by an operator
            if status != "f" and offsite:
                b.job("CopyToOffsite", "", start + duration + 600, start + duration + 660,
                            type_="c", pool="Offsite")
                b.job(job, name, start, start + duration, type_="C", level="F" if full else "I",
                      bytes_=nbytes, files=nbytes // 90_000, pool="Offsite", prior_job_id=jid,
                      job_tdate=int(start + duration))
    b.client("laptop07-fd")  # registered, never backed up
    b.job("Backup-laptop07", "laptop07-fd", midnight + 7200, midnight + 7205,
          level="F", status="f")
    b.job("RestoreFiles", "web02-fd", now - 5 * 3600, now - 5 * 3600 + 240, type_="R",
          bytes_=2 * GiB, files=1200, pool="Full")
    # The nightly catalog backup (an admin job) and a weekly read-back of db01's volumes.
    b.job("BackupCatalog", "", midnight + 2 * 3600, midnight + 2 * 3600 + 40, type_="D",
          level=" ")
    b.job("VerifyDb01", "db01-fd", midnight - DAY + 4 * 3600, midnight - DAY + 4 * 3600 + 900,
          type_="V", level="O", files=4100)
    for hour in range(24, 0, -1):
        start = now - hour * 3600 - 600
        b.job("Backup-db01-hourly", "db01-fd", start, start + 90, level="I",
              bytes_=rng.randint(200, 900) << 20, files=rng.randint(10, 40), pool="Incremental")
    b.job("Backup-db01-hourly", "db01-fd", now - 600, None, level="I", status="R",
          pool="Incremental")  # running now
    for i in range(6):
        b.volume(f"Offsite-{i:04d}", "Offsite", "Full" if i < 5 else "Append", 80 * GiB,
                 now - i * DAY)
    return b


def write_demo_catalog(path: Path, now: float | None = None) -> None:
    """Write the demo catalog to a fresh SQLite file."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        build_demo(now).write(conn.cursor(), "sqlite", version=16)
        conn.commit()
    finally:
        conn.close()
