"""The Director's live view as it stands after a poll, and its exposition (docs/director.md)."""

from collections import Counter
from dataclasses import dataclass, field

from exporter.director.parse import STATE_NAMES, Device, LiveJob, Scheduled
from exporter.exposition.metrics import family_specs
from exporter.exposition.text import Lines, escape, labels, number

FAMILIES = family_specs(
    ("bacula_director_up", "gauge", "1 when the last poll reached the Director."),
    ("bacula_director_info", "gauge", "The Director's version."),
    ("bacula_director_start_timestamp_seconds", "gauge", "When the Director started."),
    ("bacula_director_poll_duration_seconds", "gauge", "Wall time of the last poll."),
    ("bacula_director_last_poll_success_timestamp_seconds", "gauge",
     "Time of the last good poll of the Director."),
    ("bacula_director_polls_total", "counter", "Polls of the Director by result."),
    ("bacula_director_parse_errors_total", "counter",
     "Lines of the Director's answers that the exporter did not understand."),
    ("bacula_director_jobs", "gauge", "Jobs the Director holds now, by state."),
    ("bacula_director_job_state", "gauge", "Runs of this job in this state now."),
    ("bacula_director_job_state_since_timestamp_seconds", "gauge",
     "Since when the longest-waiting run of this job is in this state."),
    ("bacula_director_job_bytes", "gauge", "Bytes the running runs of this job wrote so far."),
    ("bacula_director_next_run_timestamp_seconds", "gauge",
     "Next scheduled run of this job at this level (within 24 hours)."),
    ("bacula_director_schedule_missed", "gauge",
     "1 while a scheduled run did not start and no run of the job started since."),
    ("bacula_director_schedule_missed_slot_timestamp_seconds", "gauge",
     "The time of the scheduled run that was missed."),
    ("bacula_storage_up", "gauge", "1 when the Storage daemon answered through the Director."),
    ("bacula_storage_device_info", "gauge", "A Storage daemon device."),
    ("bacula_storage_device_mounted", "gauge", "1 when a volume is mounted in the device."),
    ("bacula_storage_device_volume_info", "gauge", "The volume mounted in the device."),
    ("bacula_storage_device_blocked", "gauge",
     "1 when the device is blocked: waiting for a volume, a mount or an operator."),
    ("bacula_storage_device_free_bytes", "gauge",
     "Free space where the device's daemon reports it (File devices)."),
    ("bacula_storage_device_size_bytes", "gauge", "Size of the device's file system."),
)


@dataclass
class View:
    """One Director as the last polls left it."""

    name: str
    catalog: str
    up: bool = False
    error: str = ""
    version: str = ""
    started: float | None = None
    poll_duration: float = 0.0
    last_success: float | None = None
    polls: Counter[str] = field(default_factory=Counter)
    parse_errors: int = 0
    jobs: list[LiveJob] = field(default_factory=list)
    since: dict[tuple[int, str], float] = field(default_factory=dict)  # (JobId, state) -> since
    scheduled: list[Scheduled] = field(default_factory=list)
    missed: dict[tuple[str, str], float] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)  # job -> client, from the catalog
    storage_up: dict[str, bool] = field(default_factory=dict)
    devices: list[Device] = field(default_factory=list)


def render(view: View) -> Lines:
    """Render one Director's families."""
    out: Lines = {name: [] for name in FAMILIES}
    base = labels(director=view.name, catalog=view.catalog)
    out["bacula_director_up"].append(f"{{{base}}} {int(view.up)}")
    if view.version:
        out["bacula_director_info"].append(f'{{{base},version="{escape(view.version)}"}} 1')
    if view.started:
        out["bacula_director_start_timestamp_seconds"].append(f"{{{base}}} {number(view.started)}")
    out["bacula_director_poll_duration_seconds"].append(
        f"{{{base}}} {number(round(view.poll_duration, 6))}")
    if view.last_success is not None:
        out["bacula_director_last_poll_success_timestamp_seconds"].append(
            f"{{{base}}} {number(view.last_success)}")
    for result in ("success", "failure"):
        out["bacula_director_polls_total"].append(
            f'{{{base},result="{result}"}} {view.polls.get(result, 0)}')
    out["bacula_director_parse_errors_total"].append(f"{{{base}}} {view.parse_errors}")
    if not view.up:
        return out  # what a Director said before it went away is not its state now
    states = Counter(job.state for job in view.jobs)
    for state in STATE_NAMES:
        out["bacula_director_jobs"].append(f'{{{base},state="{state}"}} {states[state]}')
    _render_jobs(view, base, out)
    _render_schedule(view, base, out)
    for storage, up in sorted(view.storage_up.items()):
        out["bacula_storage_up"].append(f'{{{base},storage="{escape(storage)}"}} {int(up)}')
    for dev in sorted(view.devices, key=lambda d: (d.storage, d.name)):
        key = f'{base},storage="{escape(dev.storage)}",device="{escape(dev.name)}"'
        out["bacula_storage_device_info"].append(
            f'{{{key},type="{escape(dev.type)}",media_type="{escape(dev.media_type)}"}} 1')
        out["bacula_storage_device_mounted"].append(f"{{{key}}} {int(dev.mounted)}")
        if dev.mounted:
            out["bacula_storage_device_volume_info"].append(
                f'{{{key},volume="{escape(dev.volume)}"}} 1')
        out["bacula_storage_device_blocked"].append(f"{{{key}}} {int(dev.blocked)}")
        if dev.free is not None and dev.size is not None:
            out["bacula_storage_device_free_bytes"].append(f"{{{key}}} {dev.free}")
            out["bacula_storage_device_size_bytes"].append(f"{{{key}}} {dev.size}")
    return out


def _job_key(base: str, client: str, job: str, level: str) -> str:
    """Return the label set of a job series, as the catalog series spell it."""
    return f'{base},client="{escape(client)}",job="{escape(job)}",level="{escape(level)}"'


def _render_jobs(view: View, base: str, out: Lines) -> None:
    """Render the running and waiting jobs, grouped by job, level and state."""
    count: Counter[tuple[str, str, str, str]] = Counter()
    since: dict[tuple[str, str, str, str], float] = {}
    written: Counter[tuple[str, str, str]] = Counter()
    for job in view.jobs:
        key = (job.client, job.name, job.level, job.state)
        count[key] += 1
        at = view.since.get((job.job_id, job.state), job.start)
        since[key] = min(since.get(key, at), at)
        written[(job.client, job.name, job.level)] += job.bytes
    for key, runs in sorted(count.items()):
        labels_ = f'{_job_key(base, *key[:3])},state="{key[3]}"'
        out["bacula_director_job_state"].append(f"{{{labels_}}} {runs}")
        out["bacula_director_job_state_since_timestamp_seconds"].append(
            f"{{{labels_}}} {number(since[key])}")
    for (client, name, level), total in sorted(written.items()):
        out["bacula_director_job_bytes"].append(
            f"{{{_job_key(base, client, name, level)}}} {total}")


def _render_schedule(view: View, base: str, out: Lines) -> None:
    """Render the next run per job and level, and the missed slots."""
    nearest: dict[tuple[str, str], float] = {}
    for run in view.scheduled:
        key = (run.name, run.level)
        nearest[key] = min(nearest.get(key, run.at), run.at)
    for (name, level), at in sorted(nearest.items()):
        text = _job_key(base, view.clients.get(name, ""), name, level)
        out["bacula_director_next_run_timestamp_seconds"].append(f"{{{text}}} {number(at)}")
    for name, level in sorted(set(nearest) | set(view.missed)):
        text = _job_key(base, view.clients.get(name, ""), name, level)
        missed = view.missed.get((name, level))
        out["bacula_director_schedule_missed"].append(f"{{{text}}} {int(missed is not None)}")
        if missed is not None:
            out["bacula_director_schedule_missed_slot_timestamp_seconds"].append(
                f"{{{text}}} {number(missed)}")
