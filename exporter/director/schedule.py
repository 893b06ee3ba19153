"""Missed schedules: each scheduled slot is remembered until a job of that name starts."""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter.director.parse import Scheduled

log = logging.getLogger(__name__)

# A scheduled job's SchedTime is its slot; this much slack absorbs minute rounding.
TOLERANCE = 60.0


@dataclass(frozen=True, order=True)
class Slot:
    """A run the Director said it would start: job, level, Unix time."""

    job: str
    level: str
    at: float


class Slots:
    """The slots still awaited and the missed ones, per (job, level): pure logic, no I/O."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.pending: set[Slot] = set()
        self.missed: dict[tuple[str, str], float] = {}  # (job, level) -> the missed slot's time

    def load(self, slots: Iterable[tuple[Slot, bool]]) -> None:
        """Take what a store kept: (slot, missed) pairs."""
        for slot, missed in slots:
            if missed:
                key = (slot.job, slot.level)
                self.missed[key] = max(self.missed.get(key, 0.0), slot.at)
            else:
                self.pending.add(slot)

    def saved(self) -> list[tuple[Slot, bool]]:
        """Return what a store must keep, in a stable order."""
        kept = [(slot, False) for slot in sorted(self.pending)]
        return kept + [(Slot(job, level, at), True)
                       for (job, level), at in sorted(self.missed.items())]

    def update(self, scheduled: Iterable[Scheduled], started: Mapping[str, float],
               now: float) -> bool:
        """Add new slots, settle due ones against the latest start per job; tell if changed."""
        before = (frozenset(self.pending), tuple(sorted(self.missed.items())))
        self.pending.update(Slot(s.name, s.level, s.at) for s in scheduled)
        for slot in sorted(self.pending):
            if started.get(slot.job, 0.0) >= slot.at - TOLERANCE:
                self.pending.discard(slot)
            elif now >= slot.at + self.grace:
                self.pending.discard(slot)
                key = (slot.job, slot.level)
                self.missed[key] = max(self.missed.get(key, 0.0), slot.at)
                log.warning("scheduled run of job %s (%s) at %d did not start", slot.job,
                            slot.level, slot.at)
        for (job, level), at in list(self.missed.items()):
            if started.get(job, 0.0) >= at - TOLERANCE:
                del self.missed[(job, level)]  # the job ran again since
        return before != (frozenset(self.pending), tuple(sorted(self.missed.items())))
