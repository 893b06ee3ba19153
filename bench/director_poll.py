"""Cost of one Director poll against real Directors (Bacula 9.6.7 and 15.0.3 on loopback).

Starts each release's lab from tests/e2e (the 15.0.3 one in its chroot), queues a job that waits
for media, a second run of it and another job, then runs --polls polls of the real
DirectorPoller and reports wall time and CPU per poll: the exporter's own (process time) and
bconsole's (its children's user + system time). Once with every Storage resource asked (the
default), once with `storages:` set to one. Prints one JSON line per release and setting.

    .venv/bin/python -m bench.director_poll [--polls 20] [--release 9.6 --release 15]
"""

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from exporter.director.config import DirectorConfig
from exporter.director.store import MemorySlotStore
from exporter.service.director import DirectorPoller
from tests.e2e.bacula import RELEASES, Release, chroot_mounts, missing
from tests.e2e.director_lab import DirectorLab


def measure(lab: DirectorLab, polls: int, storages: list[str] | None) -> dict[str, object]:
    """Run `polls` polls; return medians and p90s in milliseconds."""
    secret = lab.root / "bench.pw"
    secret.write_text(lab.console_password)
    cfg = DirectorConfig(name="bench", catalog="lab", address="127.0.0.1", port=lab.ports.dir,
                         password_file=secret, storages=storages, bconsole=lab.bconsole())
    folder = lab.root / "run"
    folder.mkdir(exist_ok=True)
    poller = DirectorPoller(cfg, folder, MemorySlotStore())
    poller.poll()  # the first poll also looks up the clients of never-run scheduled jobs
    walls, own, child = [], [], []
    for _ in range(polls):
        began, cpu = time.perf_counter(), time.process_time()
        poller.poll()
        walls.append((time.perf_counter() - began) * 1000)
        own.append((time.process_time() - cpu) * 1000)
        child.append(poller.cpu_seconds * 1000)
    assert poller.view.up, poller.view.error

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"median": round(statistics.median(ordered), 1),
                "p90": round(ordered[math.ceil(0.9 * len(ordered)) - 1], 1)}  # nearest rank

    return {"release": lab.release.name, "storages": len(storages or poller.view.storage_up),
            "jobs_listed": len(poller.view.jobs), "devices": len(poller.view.devices),
            "wall_ms": summary(walls), "exporter_cpu_ms": summary(own),
            "bconsole_cpu_ms": summary(child), "polls": polls}


def run(release: Release, polls: int, base: Path) -> list[dict[str, object]]:
    """Start one release's lab with a waiting job and measure both settings."""
    lab = DirectorLab(base / f"lab-{release.name}", release, "UTC", slot_after=3600)
    lab.setup()
    lab.start()
    try:
        for job in ("WaitMedia", "WaitMedia", "BackupGood"):
            lab.run(job)
        time.sleep(3)  # the jobs reach their wait states
        return [measure(lab, polls, None), measure(lab, polls, ["NoLabel"])]
    finally:
        lab.stop()


def main() -> None:
    """Measure each release asked for; print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--release", action="append", choices=[r.name for r in RELEASES])
    args = parser.parse_args()
    wanted = [r for r in RELEASES if not args.release or r.name in args.release]
    with tempfile.TemporaryDirectory(prefix="bench-director-") as tmp:
        base = Path(tmp)
        for release in wanted:
            reason = missing(release)
            if reason:
                raise SystemExit(reason)
            with chroot_mounts(release, base):
                for result in run(release, args.polls, base):
                    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
