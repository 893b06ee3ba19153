"""The media lifecycle per pool: what can be recycled and when, volumes in error, in the changer.

Pure logic over Media rows. A volume becomes recyclable when Bacula may reuse it: its Recycle
flag is set and it is Purged or marked Recycle, or it is Full or Used and its retention
(`LastWritten + VolRetention`) has passed. A recycled volume goes to its RecyclePool, so it
counts as headroom there, not in the pool it sits in now.

Writable headroom follows how Bacula picks a volume for a job: an appendable volume of the pool,
else one it can recycle now, else one from the pool's scratch pool (ScratchPoolId, else the pool
named Scratch) or a newly labeled one, both only below the pool's MaxVols.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

HORIZONS = {"now": 0.0, "1d": 86400.0, "7d": 7 * 86400.0}  # `within` label -> seconds ahead
REUSABLE = ("purged", "recycle")  # recyclable as they are
EXPIRING = ("full", "used")  # recyclable once their retention has passed


@dataclass(frozen=True, slots=True)
class Volume:
    """What the lifecycle needs of one Media row."""

    pool: str
    status: str  # lowercase VolStatus
    last_written: float | None  # Unix time
    retention: float  # VolRetention, seconds
    recycle: bool
    errors: int  # VolErrors
    in_changer: bool
    storage: str  # the Storage resource it was last in, "" when unknown
    recycle_pool: str  # the pool a recycled volume moves to, "" for its own
    enabled: bool = True  # Media.Enabled = 1: Bacula picks no other volume to write
    name: str = ""  # VolumeName
    bytes: int = 0  # VolBytes


@dataclass(frozen=True, slots=True)
class PoolRules:
    """What Bacula's choice of a volume needs of one Pool row."""

    pool_id: int
    name: str
    max_volumes: int  # MaxVols, 0 = no limit
    volumes: int  # volumes the pool holds now
    labels_itself: bool  # a LabelFormat is set, so Bacula may label new volumes
    scratch_pool: str  # where it takes volumes from: ScratchPoolId's pool, else "Scratch"
    next_pool: str  # where copies and migrations of its jobs go, "" for none


@dataclass(slots=True)
class Lifecycle:
    """One pool's figures."""

    recyclable: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HORIZONS, 0))
    errors: int = 0
    in_changer: dict[str, int] = field(default_factory=dict)  # storage -> volumes
    in_changer_appendable: dict[str, int] = field(default_factory=dict)  # storage -> volumes
    appendable: int = 0  # enabled volumes in Append status
    headroom: dict[str, float] = field(default_factory=dict)  # source -> volumes, see headroom()


def expires_at(volume: Volume) -> float | None:
    """Return when a Full or Used volume's retention ends and Bacula may recycle it."""
    if not volume.recycle or volume.status not in EXPIRING or volume.last_written is None:
        return None
    return volume.last_written + volume.retention


def recyclable_at(volume: Volume, when: float) -> bool:
    """Tell whether Bacula may recycle the volume at a given time."""
    if not volume.recycle or not volume.enabled:
        return False
    if volume.status in REUSABLE:
        return True
    return (volume.status in EXPIRING and volume.last_written is not None
            and volume.last_written + volume.retention <= when)


def lifecycle(volumes: Iterable[Volume], now: float) -> dict[str, Lifecycle]:
    """Aggregate the volumes per pool (recyclable ones under the pool they will go to)."""
    out: dict[str, Lifecycle] = {}
    for vol in volumes:
        own = out.setdefault(vol.pool, Lifecycle())
        target = out.setdefault(vol.recycle_pool or vol.pool, Lifecycle())
        for within, ahead in HORIZONS.items():
            target.recyclable[within] += recyclable_at(vol, now + ahead)
        own.errors += vol.status == "error" or vol.errors > 0
        own.appendable += vol.status == "append" and vol.enabled
        if vol.in_changer:
            own.in_changer[vol.storage] = own.in_changer.get(vol.storage, 0) + 1
            if vol.status == "append":
                own.in_changer_appendable[vol.storage] = (
                    own.in_changer_appendable.get(vol.storage, 0) + 1)
    return out


def headroom(pools: Iterable[PoolRules], media: dict[str, Lifecycle]) -> None:
    """Set each pool's writable volumes by source: append, recyclable, scratch and new.

    New is what the pool may still label below MaxVols (+Inf when it labels without a limit);
    scratch and new volumes only count up to the room left below MaxVols.
    """
    for pool in pools:
        own = media.setdefault(pool.name, Lifecycle())
        room = math.inf if pool.max_volumes <= 0 else max(0, pool.max_volumes - pool.volumes)
        spare = media.get(pool.scratch_pool) if pool.scratch_pool != pool.name else None
        scratch = min(room, spare.appendable + spare.recyclable["now"]) if spare else 0
        own.headroom = {
            "append": own.appendable, "recyclable": own.recyclable["now"], "scratch": scratch,
            "new": room - scratch if pool.labels_itself else 0,
        }
