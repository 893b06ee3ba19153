"""Which points in time can still be restored from the catalog: pure logic over backup jobs.

A restore to the point a backup job J ended needs Bacula's usual chain: the last successful Full
up to J, the last successful Differential after that Full (if any), and every successful
Incremental after those up to J. J is a restore point when every job of its chain has all its
volumes usable: at least one volume, none Purged, Recycled or in Error. Failed and canceled runs
are not in the list at all, so a failed Full in the middle leaves the previous Full's chain going.
The bytes still restorable are those of every job some restore point needs.
"""

from collections.abc import Iterable
from dataclasses import dataclass

UNUSABLE_VOLUMES = ("Purged", "Recycle", "Error")


@dataclass(frozen=True, slots=True)
class BackupJob:
    """A successful backup with what the chain rule needs."""

    job_id: int
    time: float  # JobTDate
    level: str  # F (or f), D or I
    usable: bool  # every volume of the job is still readable
    bytes: int = 0  # JobBytes


@dataclass(frozen=True, slots=True)
class Coverage:
    """The restore points of one client and job."""

    oldest: float
    newest: float
    points: int
    chain_jobs: int  # jobs needed to restore the newest point
    bytes: int = 0  # JobBytes of every job in the chain of some restore point


def coverage(jobs: Iterable[BackupJob]) -> Coverage | None:
    """Apply the chain rule; None when no point in time can be restored."""
    full_ok: bool | None = None  # None: no Full seen yet
    base_ok = incs_ok = False
    chain: list[BackupJob] = []  # the jobs the current point needs
    needed: dict[int, int] = {}  # JobId -> bytes of the jobs some restore point needs
    oldest = newest = 0.0
    points = newest_chain = 0
    for job in sorted(jobs, key=lambda j: (j.time, j.job_id)):
        if job.level in ("F", "f"):
            full_ok, base_ok, incs_ok, chain = job.usable, job.usable, True, [job]
        elif full_ok is None:
            continue  # a Differential or Incremental without a Full before it restores nothing
        elif job.level == "D":
            base_ok, incs_ok, chain = full_ok and job.usable, True, [chain[0], job]
        elif job.level == "I":
            incs_ok, chain = incs_ok and job.usable, [*chain, job]
        else:
            continue
        if base_ok and incs_ok:
            oldest = job.time if points == 0 else oldest
            newest, newest_chain = job.time, len(chain)
            points += 1
            needed.update((j.job_id, j.bytes) for j in chain)
    if points == 0:
        return None
    return Coverage(oldest, newest, points, newest_chain, sum(needed.values()))
