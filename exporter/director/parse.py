"""Read bconsole's answers: split a transcript by command, then `.api 2` key=value records.

The framing differs between releases (reference: 9.6.7 has no `scheduled:` title and no trailer;
15.0.3 adds titles, a `]` after lists and an `error=`/`errmsg=` trailer), so the parser keeps only
what both share: records of key=value lines, each starting at a known first key. Anything else
that is neither framing nor a record is returned as an unparsed line, never raised.
"""

import re
from dataclasses import dataclass, field

from exporter.catalog.codes import LEVEL_NAMES

# Lines of the `.api 2` framing that carry no data (either release).
FRAMING = {"running:", "scheduled:", "header:", "terminated:", "devices:", "autochanger: [",
           "device: [", "[", "]", "You have messages."}
# The Director's job status letter (src/jcr.h) -> the `state` label.
STATES = {
    "R": "running", "a": "running", "i": "running", "l": "running", "L": "running",
    "m": "media", "M": "mount", "s": "storage", "S": "storage", "q": "storage",
    "c": "client", "F": "client", "j": "max_jobs", "d": "max_jobs", "p": "priority",
    "B": "operator",
}
STATE_NAMES = ("running", "media", "mount", "storage", "client", "max_jobs", "priority",
               "operator", "other")
FINISHED = set("TWEefIAD")  # a job that ended may still be listed for a moment
# The unique Job name is the resource name plus `.YYYY-MM-DD_HH.MM.SS_NN`.
UNIQUE_SUFFIX = re.compile(r"\.\d{4}-\d\d-\d\d_\d\d\.\d\d\.\d\d_\d+$")
DEVICE_LINE = re.compile(r'^Device\b[^"]*"([^"]+)"')
SHOWN_CLIENT = re.compile(r"^\s*-->\s*Client:\s*Name=(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class LiveJob:
    """A job the Director holds now: running, or waiting for something."""

    job_id: int
    name: str
    client: str
    level: str
    status: str
    state: str
    bytes: int
    start: float  # Unix seconds; for a job that has not started yet, when it was queued


@dataclass(frozen=True)
class Scheduled:
    """One scheduled run within the next 24 hours."""

    name: str
    level: str
    at: float


@dataclass(frozen=True)
class Device:
    """A Storage daemon's device as the Director relayed it."""

    storage: str
    name: str
    type: str
    media_type: str
    mounted: bool
    volume: str
    blocked: bool
    free: int | None
    size: int | None


@dataclass
class Parsed:
    """What one poll's answers said; `unparsed` holds the lines nobody understood."""

    version: str = ""
    started: float | None = None
    jobs: list[LiveJob] = field(default_factory=list)
    scheduled: list[Scheduled] = field(default_factory=list)
    started_jobs: dict[str, float] = field(default_factory=dict)  # name -> latest start seen
    storages: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)


def split(text: str, commands: list[str]) -> dict[str, list[str]]:
    """Return the lines bconsole printed after each command, keyed by the command it echoed."""
    out: dict[str, list[str]] = {}
    pending = list(commands)
    current: list[str] | None = None
    for line in text.splitlines():
        line = line.rstrip()
        if pending and line == pending[0]:
            current = out[pending.pop(0)] = []
        elif current is not None:
            current.append(line)
    return out


def records(lines: list[str], first: str | None, unparsed: list[str]) -> list[dict[str, str]]:
    """Return the key=value records (a record starts at `first`; None: one record of all)."""
    found: list[dict[str, str]] = [{}] if first is None else []
    for line in lines:
        text = line.strip()
        if not text or text in FRAMING:
            continue
        key, sep, value = text.partition("=")
        if not sep or not key or " " in key:
            unparsed.append(text)
        elif key == "errmsg":
            continue
        elif key == "error":
            if value.strip() not in ("", "0"):
                unparsed.append(text)
        elif key == first:
            found.append({key: value})
        elif not found:
            unparsed.append(text)
        else:
            found[-1][key] = value
    return found


def number(value: str | None, default: int = 0) -> int:
    """Return an integer field, or the default when it is missing or not a number."""
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def level_name(letter: str) -> str:
    """Spell a level letter out, as the catalog series do (admin jobs have none: empty)."""
    return LEVEL_NAMES.get(letter, letter.strip().lower())


def read_director(sections: dict[str, list[str]], parsed: Parsed) -> None:
    """Fill the Director's part: header, running and scheduled jobs, recent ends, storages."""
    bad = parsed.unparsed
    header = records(sections.get(".status dir header", []), None, bad)[0]
    parsed.version = header.get("version", "").split(" ")[0]
    started = number(header.get("started_epoch"))
    parsed.started = float(started) if started else None
    for rec in records(sections.get(".status dir running", []), "jobid", bad):
        status = rec.get("status", "")
        name = rec.get("name", "")
        if not name or status in FINISHED:
            continue
        start = float(number(rec.get("starttime_epoch")) or number(rec.get("schedtime_epoch")))
        parsed.jobs.append(LiveJob(
            job_id=number(rec.get("jobid")), name=name, client=rec.get("clientname", ""),
            level=level_name(rec.get("level", "")), status=status,
            state=STATES.get(status, "other"), bytes=number(rec.get("jobbytes")), start=start,
        ))
        # Queued for its slot: schedtime is the slot's time even before it starts.
        seen = max(start, float(number(rec.get("schedtime_epoch"))))
        parsed.started_jobs[name] = max(parsed.started_jobs.get(name, 0.0), seen)
    # Every type: a copy or admin job that never starts is as missed as a backup.
    for rec in records(sections.get(".status dir scheduled", []), "name", bad):
        at = number(rec.get("schedtime_epoch"))
        if at:
            parsed.scheduled.append(Scheduled(rec["name"], level_name(rec.get("level", "")), at))
    for rec in records(sections.get(".status dir terminated", []), "jobid", bad):
        name = UNIQUE_SUFFIX.sub("", rec.get("job", ""))
        start = float(number(rec.get("starttime_epoch")))
        if name and start:
            parsed.started_jobs[name] = max(parsed.started_jobs.get(name, 0.0), start)
    parsed.storages = [line.strip() for line in sections.get(".storage", [])
                       if line.strip() and "=" not in line and line.strip() not in FRAMING]


def shown_client(lines: list[str]) -> str | None:
    """Return the Client a `show job=X` answer names (its first `--> Client:` line)."""
    for line in lines:
        match = SHOWN_CLIENT.match(line)
        if match:
            return match.group(1)
    return None


def blocked_devices(lines: list[str]) -> set[str]:
    """Return the devices whose text status says `Device is BLOCKED` (the API record does not)."""
    blocked: set[str] = set()
    device = ""
    for line in lines:
        match = DEVICE_LINE.match(line)
        if match:
            device = match.group(1)
        elif device and "Device is BLOCKED" in line:
            blocked.add(device)
    return blocked


def read_devices(storage: str, api: list[str], text: list[str], unparsed: list[str]
                 ) -> list[Device]:
    """Return the devices one Storage resource's daemon reported."""
    blocked = blocked_devices(text)
    devices = []
    for rec in records(api, "name", unparsed):
        name = rec["name"]
        total = number(rec.get("total_space"))
        volume = rec.get("volume", "")
        devices.append(Device(
            storage=storage, name=name, type=rec.get("type", ""),
            media_type=rec.get("media_type", ""),
            mounted=rec.get("mounted", "0") not in ("", "0") and bool(volume), volume=volume,
            blocked=name in blocked,
            free=number(rec.get("free_space")) if total else None, size=total or None,
        ))
    return devices
