"""Fixtures: a real Bacula lab per release and catalog engine, side by side, each watched.

The session fixture `e2e_runs` drives every lab's Director (Bacula 9.6 and 15 on each engine)
through the same scenario in its own thread (the labs use distinct ports and databases) while an
exporter polls its catalog, and records what Bacula wrote and what the exporter said at each
step. The tests then compare the two. Every daemon and exporter is stopped by PID when the
scenario ends, and again in the fixture's finalizer in case a thread did not get that far.

The exporters run the ticket bridge with a webhook sink pointing at a recording receiver on
127.0.0.1 (one per engine, one URL path per exporter), so the tests can count the tickets: every
job the Director ran must arrive exactly once, across restarts, backfill and downtime.
"""

import fcntl
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.bacula import (
    BACULA_15,
    ENGINES,
    RELEASES,
    BaculaError,
    BaculaLab,
    JobRow,
    MediaRow,
    Release,
    chroot_mounts,
    missing,
)
from tests.e2e.receiver import Post, Receiver
from tests.server import stop as stop_process

ROOT = Path(__file__).resolve().parents[2]
IN_CI = bool(os.environ.get("CI"))
# Every release runs on every engine, side by side: lab id -> (release, engine).
LABS: dict[str, tuple[Release, str]] = {
    (engine if release.name == "9.6" else f"{engine}-{release.name}"): (release, engine)
    for release in RELEASES for engine in ENGINES
}
# The exporter must turn wall-clock catalog times into true Unix times with the catalog's
# `timezone` setting: zones with DST and large offsets, one a half-hour off, beside UTC.
ZONES = {"sqlite": "UTC", "postgresql": "America/New_York", "mysql": "UTC",
         "sqlite-15": "Asia/Kolkata", "postgresql-15": "Europe/Berlin",
         "mysql-15": "America/Los_Angeles"}
LONG_SLEEP = 6  # seconds BackupLong sleeps before it saves anything: the window to see it run
# Bacula 15 keeps a job against a dead client "waiting for Client" for about 2 minutes.
SCENARIO_TIMEOUT = 480.0
# Two test sessions on one machine would fight over the ports and the two databases.
LOCK = Path(tempfile.gettempdir()) / "bacula-exporter-e2e.lock"
SINK = "hook"  # the webhook sink's name in every exporter's config
SETTLE_TIMEOUT = 20.0  # longest wait for an outbox to deliver what it holds
# The exporters of the bridge tests, by tag: (port offset from the lab's exporter port, backfill)
# watcher: watches every job; cold: restarted on the watcher's state_dir; fresh: a new state_dir
# without backfill; backfill: a new state_dir with a backfill window; resumed: the watcher's
# outbox as it was before BackupLong ran, i.e. an exporter that was down while that job ran.
LATE_EXPORTERS = {"cold": (1, None), "fresh": (2, None), "backfill": (3, "1d"),
                  "resumed": (-1, None)}


Labels = frozenset[tuple[str, str]]


class Scrape:
    """One /metrics answer, parsed: sample name -> {labels: value}."""

    def __init__(self, text: str, at: float) -> None:
        self.text = text
        self.at = at  # Unix time the answer arrived
        self.samples: dict[str, dict[Labels, float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                by_labels = self.samples.setdefault(sample.name, {})
                by_labels[frozenset(sample.labels.items())] = sample.value

    def series(self, name: str, **labels: str) -> dict[Labels, float]:
        """Return the samples of `name` whose labels include `labels`."""
        want = set(labels.items())
        return {k: v for k, v in self.samples.get(name, {}).items() if want <= k}

    def value(self, name: str, **labels: str) -> float | None:
        """Return the one sample of `name` with exactly these labels, or None."""
        return self.samples.get(name, {}).get(frozenset(labels.items()))


@dataclass(frozen=True)
class BridgeSetup:
    """The ticket bridge of one exporter: its outbox folder, webhook URL and backfill window."""

    state_dir: Path
    url: str
    backfill: str | None = None

    def yaml(self) -> str:
        """Return the bridge's top-level config keys."""
        return (
            f'state_dir: "{self.state_dir}"\n'
            + (f"backfill: {self.backfill}\n" if self.backfill else "")
            + "sinks:\n"
            f"  - name: {SINK}\n"
            "    type: webhook\n"
            f'    url: "{self.url}"\n'
            "    events: [job_result]\n"
            "    resolutions: false\n"  # these tests count one post per job
            "    timeout: 5s\n"
            "    retry: {initial: 0.2s, max: 1s}\n"
        )


class ExporterProcess:
    """The exporter as a subprocess with a config for one lab's catalog."""

    def __init__(self, lab: BaculaLab, catalog: str, port: int, tag: str,
                 bridge: BridgeSetup | None = None) -> None:
        self.lab = lab
        self.port = port
        self.tag = tag
        self.bridge = bridge
        self.config = lab.root / f"exporter-{tag}.yml"
        self.log = lab.logs / f"exporter-{tag}.log"
        self.config.write_text(
            f'listen: "127.0.0.1:{port}"\n'
            "poll_interval: 1s\n"
            "scrape_min_interval: 0s\n"  # every scrape polls first: 'one poll' is one scrape
            "catalogs:\n"
            f"  - name: {catalog}\n"
            f'    url: "{lab.catalog_url}"\n'
            f'    timezone: "{lab.tz}"\n'
            + (bridge.yaml() if bridge else "")
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start the exporter and wait until /readyz says every catalog was polled."""
        self.launch()
        self.ready(timeout)

    def launch(self) -> None:
        """Start the exporter process without waiting for it."""
        binary = ROOT / ".venv" / "bin" / "bacula-exporter"
        argv = [str(binary)] if binary.exists() else [sys.executable, "-m", "exporter"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*argv, "--config", str(self.config)], cwd=self.lab.root,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )

    def ready(self, timeout: float = 30) -> None:
        """Wait until /readyz says every catalog was polled (so job results are in the outbox)."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BaculaError(f"the exporter exited with {self.proc.returncode}:\n"
                                  + self.lab.tail(self.log.name))
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise BaculaError(f"the exporter was not ready after {timeout} s:\n"
                          + self.lab.tail(self.log.name))

    def scrape(self) -> Scrape:
        """GET /metrics (which polls the catalog first) and parse it."""
        answer = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=30)
        answer.raise_for_status()
        return Scrape(answer.text, time.time())

    def page(self) -> str:
        """GET the status page."""
        answer = httpx.get(f"http://127.0.0.1:{self.port}/", timeout=30)
        answer.raise_for_status()
        return answer.text

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until the outbox has nothing pending (read from its file: no extra polls)."""
        deadline = time.monotonic() + timeout
        while OutboxContent.read(self.outbox_file).deliveries.get("pending", 0):
            if time.monotonic() > deadline:
                raise BaculaError(f"exporter {self.tag}: outbox not empty after {timeout} s:\n"
                                  + self.lab.tail(self.log.name))
            time.sleep(0.05)

    @property
    def outbox_file(self) -> Path:
        """Return the outbox the exporter writes (with a bridge)."""
        assert self.bridge is not None
        return self.bridge.state_dir / "outbox.sqlite3"

    def stop(self) -> None:
        """Stop the exporter by PID: TERM, then KILL."""
        if self.proc is not None:
            stop_process(self.proc)


@dataclass
class E2ERun:
    """What one engine's Director wrote and what the exporter showed along the way."""

    lab: BaculaLab
    catalog: str
    ids: dict[str, int] = field(default_factory=dict)  # role -> JobId
    # JobId -> (Unix time just before `run`, just after `wait` returned): the true end time of
    # the job lies in between, measured by this process's clock, not read from the catalog.
    bounds: dict[int, tuple[float, float]] = field(default_factory=dict)
    empty: Scrape | None = None  # right after start, before any job
    after_job: dict[int, Scrape] = field(default_factory=dict)  # first scrape after each job
    during: Scrape | None = None  # while BackupLong runs
    running_row: JobRow | None = None  # BackupLong's row as read right after `during`
    after_long: Scrape | None = None  # first scrape after BackupLong ended
    final: Scrape | None = None  # the exporter that watched everything happen
    page: str = ""  # its status page at that moment
    cold: Scrape | None = None  # a fresh exporter started on the finished catalog
    jobs: list[JobRow] = field(default_factory=list)
    clients: dict[int, tuple[str, str]] = field(default_factory=dict)
    pools: dict[int, str] = field(default_factory=dict)
    media: list[MediaRow] = field(default_factory=list)
    llist: dict[int, dict[str, str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # The ticket bridge: what each exporter (by tag) sent to the receiver, its scrape once its
    # outbox was empty, and what its outbox held after it stopped.
    posts: dict[str, list[Post]] = field(default_factory=dict)
    settled: dict[str, Scrape] = field(default_factory=dict)
    outbox: dict[str, "OutboxContent"] = field(default_factory=dict)
    snapshot_ids: set[str] = field(default_factory=set)  # delivered when `resumed` was copied

    def job(self, role: str) -> JobRow:
        """Return the final row of the job that played `role`."""
        return next(j for j in self.jobs if j.job_id == self.ids[role])


@dataclass(frozen=True)
class OutboxContent:
    """The rows of one outbox file: stored event ids, delivery states, catalog checkpoints."""

    events: frozenset[str]
    deliveries: dict[str, int]  # state -> count
    checkpoints: dict[str, int]

    @classmethod
    def read(cls, path: Path) -> "OutboxContent":
        """Read an outbox file (its exporter has stopped, or is read without locking it)."""
        if not path.exists():
            return cls(frozenset(), {}, {})
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
            events = frozenset(r[0] for r in db.execute("SELECT id FROM event"))
            states = dict(db.execute("SELECT state, count(*) FROM delivery GROUP BY state"))
            points = dict(db.execute("SELECT catalog, job_id FROM checkpoint"))
        return cls(events, states, points)


def snapshot(source: Path, target: Path) -> None:
    """Copy a live outbox consistently (SQLite's online backup), as a restart would find it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source, timeout=10)) as src, \
            closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


class Unavailable(Exception):
    """An engine's database server is not there (a skip locally, a failure in CI)."""


def run_scenario(lab: BaculaLab, exporters: list[ExporterProcess], receiver: Receiver
                 ) -> E2ERun:
    """Run every kind of job on one lab while an exporter watches; record both sides."""
    started = time.monotonic()
    run = E2ERun(lab=lab, catalog="e2e_" + lab.root.name.replace("-", "_"))
    try:
        lab.check_engine()
    except ConnectionError as exc:
        raise Unavailable(str(exc)) from exc
    lab.setup()
    lab.start()
    run.timings["setup"] = time.monotonic() - started

    def bridge(tag: str, backfill: str | None = None) -> BridgeSetup:
        return BridgeSetup(lab.root / f"state-{tag}", receiver.url(tag), backfill)

    watcher = ExporterProcess(lab, run.catalog, lab.ports.exporter, "watcher", bridge("watcher"))
    exporters.append(watcher)
    watcher.start()
    run.empty = watcher.scrape()

    def finish(role: str, job_id: int, before: float, timeout: float = 120) -> None:
        lab.wait(job_id, timeout)
        run.bounds[job_id] = (before, time.time())
        run.ids[role] = job_id
        # Scrape at once: with scrape_min_interval 0 this scrape is the first poll after the
        # job ended, so the job must show in it.
        run.after_job[job_id] = watcher.scrape()

    def backup(role: str, job: str, level: str | None = None) -> None:
        before = time.time()
        finish(role, lab.run(job, level), before)

    modern = lab.release.modern
    if modern:
        # Bacula 15 holds this job about 2 minutes before it fails: the others overlap it.
        bad_before = time.time()
        bad = lab.run("BackupBad")
    backup("full", "BackupGood", "Full")
    if modern:
        backup("crypt", "BackupCrypt", "Full")
    lab.change_data()
    backup("incremental", "BackupGood", "Incremental")
    if not modern:
        backup("unreachable", "BackupBad")
    backup("warning", "BackupWarn")
    before = time.time()
    slow = lab.run("BackupSlow")
    lab.await_status(slow, "R")  # running its Run Before Job sleep
    lab.cancel(slow)
    finish("canceled", slow, before)
    backup("copy", "CopyToOffsite")
    before = time.time()
    finish("restore", lab.restore(), before)
    # Verify what was backed up (it must match), then a file changed on disk (it must not).
    backup("verify_ok", "VerifyVolume")
    lab.tamper()
    backup("verify_diff", "VerifyDisk")
    backup("admin", "AdminMaintenance")
    if modern:
        before = time.time()
        finish("crypt_restore", lab.restore("crypt-fd"), before)
        # After the restores: the Virtual Full lands in the Offsite pool, on the other device.
        backup("virtual_full", "BackupGood", "VirtualFull")
        finish("unreachable", bad, bad_before, timeout=300)
    run.timings["jobs"] = time.monotonic() - started
    # The outbox as an exporter stopped here would leave it: `resumed` starts from this copy at
    # the end, as if it had been down while BackupLong ran.
    lab.await_quiet()  # the copies too: the snapshot's checkpoint must lie past every job
    watcher.scrape()  # one poll after that: every job so far is in the outbox
    watcher.settle()
    run.snapshot_ids = set(receiver.keys("watcher"))
    snapshot(watcher.outbox_file, bridge("resumed").state_dir / "outbox.sqlite3")

    before = time.time()
    long_id = lab.run("BackupLong")
    lab.await_status(long_id, "R")
    run.during = watcher.scrape()
    run.running_row = next(j for j in lab.jobs() if j.job_id == long_id)
    finish("long", long_id, before)
    run.after_long = run.after_job[long_id]
    run.timings["long"] = time.monotonic() - started

    run.jobs = lab.jobs()
    run.clients = lab.clients()
    run.pools = lab.pools()
    run.media = lab.media()
    run.llist = lab.llist([j.job_id for j in run.jobs])
    run.final = watcher.scrape()
    run.page = watcher.page()
    lab.stop()  # the catalog is complete; the daemons are no longer needed
    watcher.settle()
    run.settled["watcher"] = watcher.scrape()
    watcher.stop()
    run.outbox["watcher"] = OutboxContent.read(watcher.outbox_file)
    run.timings["watched"] = time.monotonic() - started

    # The later exporters start side by side; `cold` shares the watcher's state_dir.
    late = {}
    for tag, (offset, backfill) in LATE_EXPORTERS.items():
        state_dir = bridge("watcher" if tag == "cold" else tag).state_dir
        setup = BridgeSetup(state_dir, receiver.url(tag), backfill)
        late[tag] = ExporterProcess(lab, run.catalog, lab.ports.exporter + offset, tag, setup)
        exporters.append(late[tag])
        late[tag].launch()
    for exporter in late.values():
        exporter.ready()
    run.timings["late_ready"] = time.monotonic() - started
    run.cold = late["cold"].scrape()
    for tag, exporter in late.items():
        exporter.settle()
        run.settled[tag] = exporter.scrape()
        exporter.stop()
        run.outbox[tag] = OutboxContent.read(exporter.outbox_file)
    run.posts = {tag: receiver.posts(tag) for tag in ("watcher", *LATE_EXPORTERS)}
    run.timings["total"] = time.monotonic() - started
    return run


@contextmanager
def exclusive(path: Path, timeout: float = 600) -> Iterator[None]:
    """Hold an exclusive lock on `path`, waiting for another session to finish first."""
    with path.open("a") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BaculaError(f"another test session holds {path}") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def e2e_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run the scenario on every lab in parallel; map lab id -> E2ERun or the exception."""
    for release in RELEASES:
        reason = missing(release)
        if reason:
            if IN_CI:
                pytest.fail(f"Bacula {release.name} is required in CI: {reason}")
            pytest.skip(reason)
    base = tmp_path_factory.mktemp("bacula-e2e")
    labs = {lid: BaculaLab(engine, base / lid, tz=ZONES[lid], long_sleep=LONG_SLEEP,
                           release=release) for lid, (release, engine) in LABS.items()}
    exporters: dict[str, list[ExporterProcess]] = {lid: [] for lid in LABS}
    # The watcher's first delivery is refused (503): the retry happens in the real process.
    receivers = {lid: Receiver(refuse_first={"/watcher"}) for lid in LABS}

    def stop(engine: str) -> None:
        for exporter in exporters[engine]:
            exporter.stop()
        labs[engine].stop()
        receivers[engine].close()

    def one(engine: str) -> E2ERun:
        try:
            return run_scenario(labs[engine], exporters[engine], receivers[engine])
        except BaculaError as exc:
            # The daemons' own words are what one needs to understand a failed run.
            lab = labs[engine]
            raise BaculaError(f"{exc}\n--- bacula.log ---\n{lab.tail('bacula.log')}") from exc
        finally:
            stop(engine)

    results: dict[str, Any] = {}
    with exclusive(LOCK), chroot_mounts(BACULA_15, base):
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=len(LABS)) as pool:
                futures = {lid: pool.submit(one, lid) for lid in LABS}
                for engine, future in futures.items():
                    try:
                        results[engine] = future.result(
                            timeout=max(1.0, started + SCENARIO_TIMEOUT - time.monotonic()))
                    except TimeoutError:
                        # Killing its daemons makes the thread's next bconsole call fail fast,
                        # so leaving the pool does not wait for a hung scenario.
                        stop(engine)
                        results[engine] = BaculaError(
                            f"{engine}: scenario still running after {SCENARIO_TIMEOUT} s")
                    except Exception as exc:
                        results[engine] = exc
            # Reported, not asserted (speed belongs to bench/): shown with -s or in CI's log.
            print(f"\nbacula e2e: {time.monotonic() - started:.1f} s for all labs in parallel")
            yield results
        finally:
            for lid in LABS:
                stop(lid)
            # The lab folders stay under pytest's basetemp (it keeps the last three runs): their
            # logs and configs are what one reads after a failure.


def finished_run(lab: str, e2e_runs: dict[str, Any]) -> E2ERun:
    """Return one lab's finished run; skip (locally) when its database server was not there."""
    result = e2e_runs[lab]
    if isinstance(result, Unavailable):
        if IN_CI:
            pytest.fail(f"{lab} is required in CI: {result}")
        pytest.skip(str(result))
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, E2ERun)
    return result


@pytest.fixture(params=list(LABS))
def e2e(request: pytest.FixtureRequest, e2e_runs: dict[str, Any]) -> E2ERun:
    """Every lab's finished run: each release on each engine."""
    return finished_run(request.param, e2e_runs)


@pytest.fixture(params=[lab for lab, (release, _) in LABS.items() if release.modern])
def e2e15(request: pytest.FixtureRequest, e2e_runs: dict[str, Any]) -> E2ERun:
    """The Bacula 15 labs' finished runs, for what only Bacula 15 writes."""
    return finished_run(request.param, e2e_runs)


@pytest.fixture(params=["watcher", "cold"])
def scrape(request: pytest.FixtureRequest, e2e: E2ERun) -> Scrape:
    """The final exposition of the exporter that watched the jobs happen, or of a fresh one."""
    result = e2e.final if request.param == "watcher" else e2e.cold
    assert result is not None
    return result
