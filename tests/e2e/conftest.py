"""Fixtures: one real Bacula lab per catalog engine, run side by side, watched by the exporter.

The session fixture `e2e_runs` drives every engine's Director through the same scenario in its
own thread (the labs use distinct ports and databases) while an exporter polls its catalog, and
records what Bacula wrote and what the exporter said at each step. The tests then compare the
two. Every daemon and exporter is stopped by PID when the scenario ends, and again in the
fixture's finalizer in case a thread did not get that far.
"""

import fcntl
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.bacula import ENGINES, BaculaError, BaculaLab, JobRow, MediaRow, missing

ROOT = Path(__file__).resolve().parents[2]
IN_CI = bool(os.environ.get("CI"))
# One Director runs in a zone with DST and a large offset, the others in UTC: the exporter must
# turn wall-clock catalog times into true Unix times with the catalog's `timezone` setting.
ZONES = {"sqlite": "UTC", "postgresql": "America/New_York", "mysql": "UTC"}
LONG_SLEEP = 6  # seconds BackupLong sleeps before it saves anything: the window to see it run
SCENARIO_TIMEOUT = 240.0
# Two test sessions on one machine would fight over the ports and the two databases.
LOCK = Path(tempfile.gettempdir()) / "bacula-exporter-e2e.lock"


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


class ExporterProcess:
    """The exporter as a subprocess with a config for one lab's catalog."""

    def __init__(self, lab: BaculaLab, catalog: str, port: int, tag: str) -> None:
        self.lab = lab
        self.port = port
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
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start the exporter and wait until /readyz says every catalog was polled."""
        binary = ROOT / ".venv" / "bin" / "bacula-exporter"
        argv = [str(binary)] if binary.exists() else [sys.executable, "-m", "exporter"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*argv, "--config", str(self.config)], cwd=self.lab.root,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
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

    def stop(self) -> None:
        """Stop the exporter by PID: TERM, then KILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


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
    cold: Scrape | None = None  # a fresh exporter started on the finished catalog
    jobs: list[JobRow] = field(default_factory=list)
    clients: dict[int, tuple[str, str]] = field(default_factory=dict)
    pools: dict[int, str] = field(default_factory=dict)
    media: list[MediaRow] = field(default_factory=list)
    llist: dict[int, dict[str, str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def job(self, role: str) -> JobRow:
        """Return the final row of the job that played `role`."""
        return next(j for j in self.jobs if j.job_id == self.ids[role])


class Unavailable(Exception):
    """An engine's database server is not there (a skip locally, a failure in CI)."""


def run_scenario(lab: BaculaLab, exporters: list[ExporterProcess]) -> E2ERun:
    """Run every kind of job on one lab while an exporter watches; record both sides."""
    started = time.monotonic()
    run = E2ERun(lab=lab, catalog=f"e2e_{lab.engine}")
    try:
        lab.check_engine()
    except ConnectionError as exc:
        raise Unavailable(str(exc)) from exc
    lab.setup()
    lab.start()
    run.timings["setup"] = time.monotonic() - started
    watcher = ExporterProcess(lab, run.catalog, lab.ports.exporter, "watcher")
    exporters.append(watcher)
    watcher.start()
    run.empty = watcher.scrape()

    def finish(role: str, job_id: int, before: float) -> None:
        lab.wait(job_id)
        run.bounds[job_id] = (before, time.time())
        run.ids[role] = job_id
        # Scrape at once: with scrape_min_interval 0 this scrape is the first poll after the
        # job ended, so the job must show in it.
        run.after_job[job_id] = watcher.scrape()

    def backup(role: str, job: str, level: str | None = None) -> None:
        before = time.time()
        finish(role, lab.run(job, level), before)

    backup("full", "BackupGood", "Full")
    lab.change_data()
    backup("incremental", "BackupGood", "Incremental")
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
    run.timings["jobs"] = time.monotonic() - started

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
    lab.stop()  # the catalog is complete; the daemons are no longer needed
    watcher.stop()
    cold = ExporterProcess(lab, run.catalog, lab.ports.exporter + 1, "cold")
    exporters.append(cold)
    cold.start()
    run.cold = cold.scrape()
    cold.stop()
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
    """Run the scenario on every engine in parallel; map engine -> E2ERun or the exception."""
    reason = missing()
    if reason:
        if IN_CI:
            pytest.fail(f"Bacula is required in CI: {reason}")
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("bacula-e2e")
    labs = {e: BaculaLab(e, base / e, tz=ZONES[e], long_sleep=LONG_SLEEP) for e in ENGINES}
    exporters: dict[str, list[ExporterProcess]] = {e: [] for e in ENGINES}

    def stop(engine: str) -> None:
        for exporter in exporters[engine]:
            exporter.stop()
        labs[engine].stop()

    def one(engine: str) -> E2ERun:
        try:
            return run_scenario(labs[engine], exporters[engine])
        except BaculaError as exc:
            # The daemons' own words are what one needs to understand a failed run.
            lab = labs[engine]
            raise BaculaError(f"{exc}\n--- bacula.log ---\n{lab.tail('bacula.log')}") from exc
        finally:
            stop(engine)

    results: dict[str, Any] = {}
    with exclusive(LOCK):
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=len(ENGINES)) as pool:
                futures = {e: pool.submit(one, e) for e in ENGINES}
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
            results["_seconds"] = time.monotonic() - started
            yield results
        finally:
            for engine in ENGINES:
                stop(engine)
            # The lab folders stay under pytest's basetemp (it keeps the last three runs): their
            # logs and configs are what one reads after a failure.


@pytest.fixture(params=ENGINES)
def e2e(request: pytest.FixtureRequest, e2e_runs: dict[str, Any]) -> E2ERun:
    """One engine's finished run; skip (locally) when its database server was not there."""
    result = e2e_runs[request.param]
    if isinstance(result, Unavailable):
        if IN_CI:
            pytest.fail(f"{request.param} is required in CI: {result}")
        pytest.skip(str(result))
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, E2ERun)
    return result
