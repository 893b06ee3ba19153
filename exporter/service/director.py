"""One poller per Director: bconsole runs, the live view, missed schedules; never crashes."""

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from exporter.config import Config
from exporter.director.config import DirectorConfig
from exporter.director.console import Console, ConsoleError, runtime_dir
from exporter.director.parse import (
    Device,
    Parsed,
    read_devices,
    read_director,
    records,
    shown_client,
    split,
)
from exporter.director.render import View, render
from exporter.director.schedule import Slots
from exporter.director.store import STORE_ERRORS, SlotStore, slot_store
from exporter.exposition.text import Lines

log = logging.getLogger(__name__)

DIRECTOR_COMMANDS = [".api 2", ".status dir header", ".status dir running",
                     ".status dir scheduled", ".status dir terminated", ".storage"]
SHOW_MAX = 20  # jobs of unknown client looked up per poll (`show job=X`)
LOGGED_MAX = 100  # distinct unparsed lines logged per Director; more are only counted
# The catalog's view of a Director's jobs: job -> client, and job -> latest start or end seen.
CatalogView = Callable[[], tuple[dict[str, str], dict[str, float]]]


def storage_commands(storage: str, header: bool) -> list[str]:
    """Return one Storage resource's commands: the text status first, then the API records."""
    return [f"status storage={storage}", ".api 2", f".status storage={storage} devices",
            *([f".status storage={storage} header"] if header else [])]


class DirectorPoller:
    """Keeps one Director's live view; an unreachable Director is a metric, never an error."""

    def __init__(self, cfg: DirectorConfig, folder: Path, store: SlotStore,
                 catalog_view: CatalogView | None = None) -> None:
        self.cfg = cfg
        self.console = Console(cfg, folder)
        self.store = store
        self.catalog_view = catalog_view
        self.view = View(cfg.name, cfg.catalog)
        self.slots = Slots(cfg.schedule_grace)
        self._loaded = False  # slots are saved only once the stored ones were read
        self._unsaved = False
        self._logged: set[str] = set()
        self.shown: dict[str, str] = {}  # job -> client, from `show job=X` (never-run jobs)
        # Storage resource -> its daemon's name, asked once: each question is a connection.
        self.daemons: dict[str, str] = {}
        self._stuck: set[str] = set()  # Storage resources whose last run found no answer
        self.cpu_seconds = 0.0  # bconsole's CPU time in the last poll
        self.rendered: Lines = render(self.view)
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the view and the slots (this replica stopped leading; the store has them)."""
        with self._lock:
            self.view = View(self.cfg.name, self.cfg.catalog)
            self.slots = Slots(self.cfg.schedule_grace)
            self._loaded = self._unsaved = False
            self.rendered = render(self.view)

    def poll(self) -> None:
        """Run one poll: the Director, then each Storage daemon; render the outcome."""
        with self._lock:
            started = time.monotonic()
            view = self.view
            try:
                self._poll_director(view)
            except ConsoleError as exc:
                if view.up or not view.polls["failure"]:
                    log.error("director %s: %s", self.cfg.name, exc)
                view.up, view.error = False, str(exc)
                view.polls["failure"] += 1
            except Exception as exc:
                # A bug or an answer we did not foresee: keep serving, say so, retry later.
                log.exception("director %s: poll failed unexpectedly", self.cfg.name)
                view.up, view.error = False, f"internal error: {type(exc).__name__}"
                view.polls["failure"] += 1
            else:
                if not view.up:
                    log.info("director %s answers (version %s)", self.cfg.name, view.version)
                view.up, view.error = True, ""
                view.polls["success"] += 1
                view.last_success = time.time()
            finally:
                view.poll_duration = time.monotonic() - started
                self.rendered = render(view)

    def _poll_director(self, view: View) -> None:
        """Ask the Director, then its Storage daemons; update the view and the slots."""
        answer = self.console.run(DIRECTOR_COMMANDS)
        cpu = answer.cpu_seconds
        parsed = Parsed()
        read_director(split(answer.text, [*DIRECTOR_COMMANDS, "quit"]), parsed)
        now = time.time()
        view.version, view.started = parsed.version, parsed.started
        old = view.since
        view.since = {}
        for job in parsed.jobs:
            key = (job.job_id, job.state)
            # A run that wrote nothing yet has been starting or waiting since it began; else
            # the first poll that saw it in this state is the best we know.
            view.since[key] = old.get(key, job.start if job.bytes == 0 else now)
        view.jobs, view.scheduled = parsed.jobs, parsed.scheduled
        clients, seen = self.catalog_view() if self.catalog_view else ({}, {})
        for job in parsed.jobs:
            clients.setdefault(job.name, job.client)
        cpu += self._show_clients({s.name for s in parsed.scheduled} - set(clients))
        view.clients = {**self.shown, **clients}
        for name, at in parsed.started_jobs.items():
            seen[name] = max(seen.get(name, 0.0), at)
        self._settle_slots(parsed, seen, now)
        view.missed = dict(self.slots.missed)
        cpu += self._poll_storages(view, self.cfg.storages or parsed.storages, parsed.unparsed)
        self.cpu_seconds = cpu
        self._count_unparsed(parsed.unparsed)

    def _poll_storages(self, view: View, storages: list[str], unparsed: list[str]) -> float:
        """Ask each Storage resource's daemon; set the view's storages and devices; CPU used."""
        storage_up: dict[str, bool] = {}
        devices: list[Device] = []
        taken: set[tuple[str, str]] = set()  # (Storage daemon, device): report each once
        cpu = 0.0
        # The ones that timed out last time go last; after one times out (a dead daemon, or the
        # Director gone mid-poll) the rest wait for the next poll: one timeout per poll at most.
        timed_out = False
        for storage in sorted(storages, key=lambda name: name in self._stuck):
            if timed_out:
                storage_up[storage] = False
                continue
            up, found, sd, cpu_used = self._poll_storage(storage, unparsed)
            cpu += cpu_used
            storage_up[storage] = up
            timed_out = storage in self._stuck
            for dev in found:
                if (sd, dev.name) not in taken:
                    taken.add((sd, dev.name))
                    devices.append(dev)
        view.storage_up, view.devices = storage_up, devices
        return cpu

    def _show_clients(self, jobs: set[str]) -> float:
        """Learn the Client of scheduled jobs the catalog has never seen; return CPU seconds."""
        wanted = sorted(jobs - set(self.shown))[:SHOW_MAX]
        if not wanted:
            return 0.0
        commands = [f"show job={name}" for name in wanted]
        try:
            answer = self.console.run(commands)
        except ConsoleError as exc:
            log.warning("director %s: cannot look up job clients: %s", self.cfg.name, exc)
            return 0.0
        sections = split(answer.text, [*commands, "quit"])
        for name, command in zip(wanted, commands, strict=True):
            client = shown_client(sections.get(command, []))
            if client:
                self.shown[name] = client
        return answer.cpu_seconds

    def _poll_storage(self, storage: str, unparsed: list[str]
                      ) -> tuple[bool, list[Device], str, float]:
        """Ask one Storage resource's daemon: (answered, devices, daemon name, CPU seconds)."""
        commands = storage_commands(storage, storage not in self.daemons)
        try:
            answer = self.console.run(commands)
        except ConsoleError as exc:
            if storage not in self._stuck:
                log.warning("director %s: storage %s: %s", self.cfg.name, storage, exc)
            self._stuck.add(storage)
            return False, [], "", 0.0
        self._stuck.discard(storage)
        sections = split(answer.text, [*commands, "quit"])
        devices = read_devices(storage, sections.get(commands[2], []),
                               sections.get(commands[0], []), unparsed)
        if storage not in self.daemons and devices:
            header = records(sections.get(commands[3], []), None, [])[0]
            self.daemons[storage] = header.get("name", storage)
        return bool(devices), devices, self.daemons.get(storage, storage), answer.cpu_seconds

    def _settle_slots(self, parsed: Parsed, seen: dict[str, float], now: float) -> None:
        """Update the slots; keep them in the store (retried next poll when it is down)."""
        if not self._loaded:
            try:
                self.slots.load(self.store.load(self.cfg.name))
                self._loaded = True
            except STORE_ERRORS as exc:
                log.warning("director %s: cannot read the kept slots yet: %s", self.cfg.name, exc)
        if self.slots.update(parsed.scheduled, seen, now):
            self._unsaved = True
        if self._loaded and self._unsaved:
            try:
                self.store.save(self.cfg.name, self.slots.saved())
                self._unsaved = False
            except STORE_ERRORS as exc:
                log.warning("director %s: cannot keep the slots yet: %s", self.cfg.name, exc)

    def _count_unparsed(self, lines: list[str]) -> None:
        """Count lines nobody understood; log each distinct one once."""
        self.view.parse_errors += len(lines)
        for line in lines:
            if line not in self._logged and len(self._logged) < LOGGED_MAX:
                self._logged.add(line)
                log.warning("director %s: cannot parse %r", self.cfg.name, line[:200])


def director_pollers(config: Config, jobs_seen: dict[str, CatalogView],
                     folder: Path | None = None, read_only: bool = False) -> list[DirectorPoller]:
    """Make one poller per Director, its jobs joined to its catalog's (jobs_seen by catalog).

    The console configs go in `folder`, by default a private runtime folder made here.
    """
    if not config.directors:
        return []
    store = slot_store(config.state_dir, config.state_database, read_only)
    folder = folder or runtime_dir()
    return [DirectorPoller(d, folder, store, jobs_seen[d.catalog]) for d in config.directors]
