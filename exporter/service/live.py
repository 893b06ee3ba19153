"""What the Directors say now, for the status page and the `status` command."""

import time
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.service.director import DirectorPoller
from exporter.service.overview import human_age

# Waits that need a person: a volume to label or load, a mount, an operator's answer.
OPERATOR_WAITS = ("media", "mount", "operator")
NEXT_RUNS = 10  # scheduled runs shown per Director


@dataclass(frozen=True)
class LiveRow:
    """One line of the Directors' view: a waiting or running job, a next run, a missed slot."""

    director: str
    kind: str  # "missed", "waiting", "blocked", "running", "next"
    client: str
    job: str
    level: str
    what: str  # the wait state, the device, or the level of a next run
    when: float  # since (waiting, running), slot time (missed, next)

    def when_text(self, now: float) -> str:
        """Say when: how long it waits or runs, or the (UTC) time of a slot; nothing if blocked."""
        if self.kind in ("waiting", "running"):
            return f"for {human_age(now - self.when)}"
        if self.kind == "blocked":
            return ""
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.when))

    @property
    def trouble(self) -> bool:
        """Tell whether a person must act: a missed run, an operator wait, a blocked device."""
        return self.kind in ("missed", "blocked") or (
            self.kind == "waiting" and self.what in OPERATOR_WAITS)


@dataclass(frozen=True)
class DirectorHealth:
    """Whether a Director answered."""

    name: str
    catalog: str
    up: bool
    error: str
    version: str


ORDER = {"missed": 0, "blocked": 1, "waiting": 2, "running": 3, "next": 4}


def live_overview(directors: Iterable[DirectorPoller]
                  ) -> tuple[list[LiveRow], list[DirectorHealth]]:
    """Return the rows of every Director, trouble first, and each Director's health."""
    rows: list[LiveRow] = []
    health: list[DirectorHealth] = []
    for poller in directors:
        view = poller.view
        health.append(DirectorHealth(view.name, view.catalog, view.up, view.error, view.version))
        if not view.up:
            continue
        for job in view.jobs:
            kind = "running" if job.state == "running" else "waiting"
            since = view.since.get((job.job_id, job.state), job.start)
            rows.append(LiveRow(view.name, kind, job.client, job.name, job.level, job.state,
                                since))
        for (name, level), at in view.missed.items():
            rows.append(LiveRow(view.name, "missed", view.clients.get(name, ""), name, level,
                                "did not start", at))
        for dev in view.devices:
            if dev.blocked:
                rows.append(LiveRow(view.name, "blocked", "", "", "", f"{dev.storage}/{dev.name}",
                                    0.0))
        for run in sorted(view.scheduled, key=lambda s: s.at)[:NEXT_RUNS]:
            rows.append(LiveRow(view.name, "next", view.clients.get(run.name, ""), run.name,
                                run.level, "scheduled", run.at))
    rows.sort(key=lambda r: (ORDER[r.kind], r.director, r.when, r.job))
    return rows, health


def live_trouble(rows: Iterable[LiveRow], health: Iterable[DirectorHealth]) -> tuple[int, str]:
    """Return a Nagios/Icinga exit code and message part for the Directors (0: nothing to say)."""
    down = [h for h in health if not h.up]
    if down:
        return 2, "Director down: " + ", ".join(f"{h.name} ({h.error})" for h in down)
    trouble = [r for r in rows if r.trouble]
    if trouble:
        shown = "; ".join(f"{r.job or r.what} {r.kind}" + (f" ({r.what})" if r.job else "")
                          for r in trouble[:5])
        return 1, f"{len(trouble)} need an operator: {shown}"
    return 0, ""


NAGIOS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def with_directors(code: int, line: str, health: list[DirectorHealth], rows: list[LiveRow]
                   ) -> tuple[int, str]:
    """Add the Directors' trouble to a catalog check line (UNKNOWN stays UNKNOWN)."""
    live_code, message = live_trouble(rows, health)
    if not message:
        return code, line
    head, sep, perf = line.partition(" | ")
    worst = code if code == 3 else max(code, live_code)
    return worst, f"BACULA {NAGIOS[worst]} - {head.split(' - ', 1)[1]}; {message}{sep}{perf}"
