"""The Director's live view against real Directors: Bacula 9.6.7 and 15.0.3, side by side.

One scenario per release, both in threads at once (their slot waits overlap), each with a real
exporter polling the Director every 2 s through that release's own bconsole, and one real
Prometheus and Alertmanager over both exporters:
- a job waits for a volume (and others queue behind it) until a `label` clears it;
- the Director stops and starts again: down within a poll, catalog series untouched;
- a job scheduled a few minutes ahead shows as the next run; disabled, its slot is missed and
  BaculaScheduledJobMissed fires through Prometheus and Alertmanager;
- a wrong password, and a Director address that stops answering mid-answer, end in a clear
  error within the timeout, with no secret in any output.
The facts are gathered first, then each test checks its part; the note's figures are printed.
"""

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.director.config import ConsoleTLS, DirectorConfig
from exporter.director.store import MemorySlotStore
from exporter.service.director import DirectorPoller
from tests.certs import authority
from tests.chain.harness import (
    Alertmanager,
    Prometheus,
    Receiver,
    require_binaries,
    rule_files,
    running,
    shorten_for,
    wait_until,
)
from tests.dashboard_queries import is_live, panel_queries
from tests.e2e.bacula import RELEASES, Release, chroot_mounts, missing
from tests.e2e.director_lab import DirectorLab
from tests.promtext import samples, value
from tests.server import free_port, start_logged, stop

ZONES = {"9.6": "America/New_York", "15": "Asia/Kolkata"}
POLL = 2.0  # the exporters' Director poll interval
GRACE = 20  # schedule_grace, seconds
TIMEOUT = 5  # the Directors' bconsole timeout, seconds
SLOT_AFTER = 100  # the scheduled slot is at least this far after set-up
WAIT = 60.0  # longest wait for one expected change


@dataclass
class Facts:
    """What one release's scenario saw, and how long each change took to show."""

    release: str
    lab: DirectorLab
    seconds: dict[str, float] = field(default_factory=dict)
    scrapes: dict[str, dict[Any, float]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


def _until(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Return check()'s first truthy result; fail after `timeout` (WAIT by default)."""
    return wait_until(check, timeout, what)


class Dropper:
    """A proxy to the Director that passes the first bytes of its answer, then goes silent."""

    def __init__(self, target: int, passed: int = 60) -> None:
        self.target, self.passed = target, passed
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        """Accept connections and relay them, cutting the Director's side short."""
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.passed),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        """Copy bytes; after `limit` bytes keep reading but pass nothing on (a hung peer)."""
        sent = 0
        try:
            while data := source.recv(4096):
                if limit is None or sent < limit:
                    part = data if limit is None else data[: limit - sent]
                    sink.sendall(part)
                    sent += len(part)
        except OSError:
            pass

    def close(self) -> None:
        """Close the listener and every relayed connection."""
        self.server.close()
        for sock in self._open:
            sock.close()


def _exporter_config(lab: DirectorLab, port: int) -> Path:
    """Write the exporter's config: the lab's catalog and its Director, polled every 2 s."""
    password = lab.root / "console.pw"
    password.write_text(lab.console_password + "\n")
    password.chmod(0o600)
    path = lab.root / "exporter.yml"
    path.write_text(f"""
listen: "127.0.0.1:{port}"
poll_interval: 1s
scrape_min_interval: 0s
state_dir: {lab.root / "state"}
catalogs:
  - {{name: lab, url: "{lab.catalog_url}", timezone: {lab.tz}}}
directors:
  - name: {_director(lab)}
    catalog: lab
    address: 127.0.0.1
    port: {lab.ports.dir}
    password_file: {password}
    timeout: {TIMEOUT}s
    poll_interval: {POLL:g}s
    schedule_grace: {GRACE}s
    bconsole: {lab.bconsole()}
""")
    return path


def _director(lab: DirectorLab) -> str:
    """Return the lab's Director name in the exporter: one per release, so alerts stay apart."""
    return f"dir-{lab.release.name}"


def _poller(lab: DirectorLab, port: int, password: str, name: str, timeout: float = TIMEOUT,
            tls: ConsoleTLS | None = None) -> DirectorPoller:
    """Return an in-process poller for the lab's Director at `port` with this password."""
    secret = lab.root / f"{name}.pw"
    secret.write_text(password)
    cfg = DirectorConfig(name=name, catalog="lab", address="127.0.0.1", port=port,
                         password_file=secret, timeout=timeout, bconsole=lab.bconsole(), tls=tls)
    folder = lab.root / "run"
    folder.mkdir(exist_ok=True)
    return DirectorPoller(cfg, folder, MemorySlotStore())


def _scenario(facts: Facts, port: int, log_path: Path, receiver: Receiver,
              prom: Prometheus) -> None:
    """Drive one release's Director and record what its exporter said, and when."""
    lab = facts.lab
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> dict[Any, float]:
        return samples(httpx.get(url, timeout=10).text)

    def metric(name: str, **labels: str) -> Callable[[], float | None]:
        base = {"director": _director(lab), "catalog": "lab", **labels}
        return lambda: value(scrape(), name, **base)

    lab.setup()
    lab.start()
    with log_path.open("wb") as log:
        config = _exporter_config(lab, port)
        exporter = start_logged(config, port, log)
        try:
            _until(lambda: metric("bacula_director_up")() == 1, "the Director up")
            facts.scrapes["first"] = scrape()
            # A job that waits for media, a second run of it and another job behind it.
            queued = time.monotonic()
            ids = [lab.run("WaitMedia"), lab.run("WaitMedia"), lab.run("BackupGood")]
            media = metric("bacula_director_job_state", client="good-fd", job="WaitMedia",
                           level="full", state="media")
            _until(lambda: media() == 1, "WaitMedia waiting for media")
            facts.seconds["wait_to_metric"] = time.monotonic() - queued
            facts.scrapes["waiting"] = _until(
                lambda: (s := scrape()) and value(
                    s, "bacula_storage_device_blocked", director=_director(lab), catalog="lab",
                    storage=_blocked_storage(s), device="NoLabelDev") == 1 and s,
                "NoLabelDev blocked")
            facts.notes["panels"] = _live_panels(prom)
            facts.notes["page"] = httpx.get(f"http://127.0.0.1:{port}/", timeout=30).text
            facts.notes["status"] = subprocess.run(
                [sys.executable, "-m", "exporter", "status", "--config", str(config)],
                capture_output=True, text=True, timeout=120, check=False)
            facts.notes["label"] = lab.console(
                "label storage=NoLabel pool=EmptyPool volume=Vol-0001 yes")
            for job_id in ids:
                lab.wait(job_id)
            facts.notes["ended"] = {i: lab.status(i) for i in ids}
            _until(lambda: media() is None, "the media wait to clear")
            facts.scrapes["cleared"] = _until(
                lambda: (s := scrape()) and not [
                    k for k in s if k[0] == "bacula_director_job_state"] and s,
                "every job gone from the Director's list")
            # The Director stops: down within a poll, the catalog's series stay.
            lab.stop_director()
            stopped = time.monotonic()
            _until(lambda: metric("bacula_director_up")() == 0, "the Director down")
            facts.seconds["stop_to_metric"] = time.monotonic() - stopped
            facts.scrapes["down"] = scrape()
            lab.start_director()
            started = time.monotonic()
            _until(lambda: metric("bacula_director_up")() == 1, "the Director up again")
            facts.seconds["start_to_metric"] = time.monotonic() - started
            # After the restart (a restart enables every job again): the slot, then disable.
            facts.notes["next_run"] = _until(
                metric("bacula_director_next_run_timestamp_seconds", client="good-fd",
                       job="Sched", level="full"), "Sched's next run")
            facts.notes["disable"] = lab.console("disable job=Sched")
            _in_process_failures(facts)
            missed = metric("bacula_director_schedule_missed", client="good-fd", job="Sched",
                            level="full")
            due = lab.slot + GRACE
            _until(lambda: missed() == 1, "the missed slot",
                   timeout=max(0.0, due - time.time()) + WAIT)
            facts.seconds["missed_to_metric"] = time.time() - due
            facts.scrapes["missed"] = scrape()
            facts.notes["alert"] = _until(lambda: _missed_alert(receiver, facts), "the page")
            facts.seconds["missed_to_page"] = time.time() - due
        finally:
            stop(exporter)
            lab.stop()
    facts.notes["log"] = log_path.read_text(errors="replace")


def _live_panels(prom: Prometheus) -> dict[str, bool]:
    """Run every Director panel query of the overview dashboard: did each return data?"""
    queries = [(t, e) for t, e in panel_queries("overview.json",
                                               {"$catalog": "lab", "$client": ".*"}) if is_live(e)]
    # rate() and friends want a few scrapes; a job waits for media meanwhile.
    _until(lambda: prom.query("count_over_time(bacula_director_up[1m]) >= 4"), "four scrapes")
    return {f"{title}: {expr}": bool(prom.query(expr)) for title, expr in queries}


def _blocked_storage(found: dict[Any, float]) -> str:
    """Return the Storage resource the NoLabelDev device is reported under."""
    for (name, labels), _ in found.items():
        pairs = dict(labels)
        if name == "bacula_storage_device_info" and pairs.get("device") == "NoLabelDev":
            return pairs["storage"]
    return ""


def _in_process_failures(facts: Facts) -> None:
    """A wrong password and an answer cut short: clear errors, bounded, no secret shown."""
    lab = facts.lab
    wrong = "wrong-" + lab.console_password[:8]
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("exporter").addHandler(handler)
    try:
        # 9.6.7 says "authorization problem" only after 5 s: the default timeout covers it.
        bad = _poller(lab, lab.ports.dir, wrong, "bad-password", timeout=10)
        bad.poll()
        facts.notes["wrong_password"] = (bad.view.up, bad.view.error, bad.rendered,
                                         list(records), wrong)
        # Certificate TLS: with the Director's CA it logs in; with another CA it must not.
        assert lab.ca is not None and lab.console_cert is not None
        good = ConsoleTLS(ca_file=lab.ca.cert, cert_file=lab.console_cert.cert,
                          key_file=lab.console_cert.key)
        tls = _poller(lab, lab.ports.dir, lab.console_password, "tls", timeout=10, tls=good)
        tls.poll()
        other = authority(lab.root / "other-ca", "other-ca")
        wrong_ca = _poller(lab, lab.ports.dir, lab.console_password, "tls-wrong-ca", timeout=10,
                           tls=ConsoleTLS(ca_file=other.cert))
        wrong_ca.poll()
        facts.notes["tls"] = ((tls.view.up, tls.view.error, tls.view.version),
                              (wrong_ca.view.up, wrong_ca.view.error))
        dropper = Dropper(lab.ports.dir)
        try:
            cut = _poller(lab, dropper.port, lab.console_password, "cut-short")
            started = time.monotonic()
            thread = threading.Thread(target=cut.poll, daemon=True)
            thread.start()
            thread.join(timeout=TIMEOUT * 6)
            facts.notes["cut_short"] = (thread.is_alive(), cut.view.up, cut.view.error,
                                        time.monotonic() - started)
        finally:
            dropper.close()
    finally:
        logging.getLogger("exporter").removeHandler(handler)


@pytest.fixture(scope="module")
def director_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Facts]]:
    """Run both releases' scenarios at once; yield their facts by release name."""
    require_binaries()
    for release in RELEASES:
        reason = missing(release)
        if reason:
            pytest.skip(reason)
    base = tmp_path_factory.mktemp("director")
    ports = {r.name: free_port() for r in RELEASES}
    runs = {r.name: Facts(r.name, DirectorLab(base / f"lab-{r.name}", r, ZONES[r.name],
                                              SLOT_AFTER)) for r in RELEASES}
    modern = next(r for r in RELEASES if r.root is not None)
    with Receiver() as receiver, chroot_mounts(modern, base):
        am = Alertmanager(base / "am", receiver.url)
        prom = Prometheus(base / "prom", [f"127.0.0.1:{p}" for p in ports.values()],
                          shorten_for(rule_files(), base), alertmanager=am.url)
        with running(am, prom), ThreadPoolExecutor(len(runs)) as pool:
            def run(facts: Facts) -> None:
                try:
                    _scenario(facts, ports[facts.release], base / f"exporter-{facts.release}.log",
                              receiver, prom)
                except BaseException as exc:
                    facts.error = exc
                    facts.lab.stop()

            list(pool.map(run, runs.values()))
    for facts in runs.values():
        print(f"director {facts.release}: " + ", ".join(
            f"{k} {v:.1f}s" for k, v in facts.seconds.items()))
    yield runs


def _missed_alert(receiver: Receiver, facts: Facts) -> dict[str, Any] | None:
    """Return the BaculaScheduledJobMissed notification for this release's Director."""
    for alert in receiver.alerts():
        labels = alert["labels"]
        if (labels.get("alertname") == "BaculaScheduledJobMissed" and labels.get("job") == "Sched"
                and labels.get("director") == _director(facts.lab)
                and alert["status"] == "firing"):
            return alert
    return None


def _facts(runs: dict[str, Facts], release: Release) -> Facts:
    """Return one release's facts, raising what its scenario raised."""
    facts = runs[release.name]
    if facts.error is not None:
        raise facts.error
    return facts


RELEASE_IDS = [f"bacula-{r.name}" for r in RELEASES]


@pytest.mark.parametrize("release", RELEASES, ids=RELEASE_IDS)
def test_a_job_waiting_for_media_shows_and_clears(director_runs: dict[str, Facts],
                                                  release: Release) -> None:
    """WaitMedia waits for media, the others queue; a label clears it and every job ends OK."""
    facts = _facts(director_runs, release)
    waiting = facts.scrapes["waiting"]
    states = {dict(labels)["state"]: v for (name, labels), v in waiting.items()
              if name == "bacula_director_jobs"}
    assert states["media"] >= 1
    assert states["max_jobs"] >= 1, states  # the second WaitMedia: the Job allows one
    since = [v for (name, labels), v in waiting.items()
             if name == "bacula_director_job_state_since_timestamp_seconds"
             and dict(labels)["state"] == "media"]
    assert since and all(v <= time.time() for v in since)
    assert "3000 OK label" in facts.notes["label"]
    assert set(facts.notes["ended"].values()) == {"T"}
    cleared = facts.scrapes["cleared"]
    assert not [k for k in cleared if k[0] == "bacula_director_job_state"]
    assert value(cleared, "bacula_director_jobs", director=_director(facts.lab), catalog="lab",
                 state="media") == 0
    free = [v for (name, _), v in waiting.items() if name == "bacula_storage_device_free_bytes"]
    assert free and all(v > 0 for v in free)


@pytest.mark.parametrize("release", RELEASES, ids=RELEASE_IDS)
def test_a_stopped_director_is_down_and_the_catalog_stays(director_runs: dict[str, Facts],
                                                          release: Release) -> None:
    """Director down within a poll (plus the timeout); catalog series all still there."""
    facts = _facts(director_runs, release)
    down, before = facts.scrapes["down"], facts.scrapes["cleared"]
    assert value(down, "bacula_catalog_up", catalog="lab") == 1
    catalog_series = {k for k in before if k[0].startswith("bacula_job_last_success")}
    assert catalog_series and catalog_series <= set(down)
    assert not [k for k in down if k[0] == "bacula_director_jobs"]
    version = "9.6.7" if release.name == "9.6" else "15.0.3"
    assert value(facts.scrapes["first"], "bacula_director_info", director=_director(facts.lab),
                 catalog="lab", version=version) == 1


@pytest.mark.parametrize("release", RELEASES, ids=RELEASE_IDS)
def test_a_disabled_scheduled_job_is_missed_and_pages(director_runs: dict[str, Facts],
                                                      release: Release) -> None:
    """The slot shows as the next run; disabled, it is missed and the alert reaches Alertmanager."""
    facts = _facts(director_runs, release)
    assert facts.notes["next_run"] == facts.lab.slot
    assert "disabled" in facts.notes["disable"].lower()
    missed = facts.scrapes["missed"]
    assert value(missed, "bacula_director_schedule_missed_slot_timestamp_seconds",
                 director=_director(facts.lab), catalog="lab", client="good-fd", job="Sched",
                 level="full") == facts.lab.slot
    labels = facts.notes["alert"]["labels"]
    assert labels["director"] == _director(facts.lab) and labels["client"] == "good-fd"


@pytest.mark.parametrize("release", RELEASES, ids=RELEASE_IDS)
def test_bad_credentials_and_a_cut_answer_end_clearly(director_runs: dict[str, Facts],
                                                      release: Release) -> None:
    """A wrong password: a clear error, no secret anywhere; a cut answer: down, no hang."""
    facts = _facts(director_runs, release)
    up, error, rendered, logged, wrong = facts.notes["wrong_password"]
    assert not up and "refused the login" in error
    shown = [error, *logged, *(line for lines in rendered.values() for line in lines)]
    for secret in (wrong, facts.lab.console_password):
        assert not [text for text in shown if secret in text]
        assert secret not in facts.notes["log"]
    assert "bacula_director_up{" in "".join(f"bacula_director_up{x}"
                                             for x in rendered["bacula_director_up"])
    alive, up, error, _ = facts.notes["cut_short"]
    assert not alive and not up
    assert "within" in error or "cannot reach" in error, error


@pytest.mark.parametrize("release", RELEASES, ids=RELEASE_IDS)
def test_the_page_and_the_status_command_show_the_waiting_job(director_runs: dict[str, Facts],
                                                              release: Release) -> None:
    """Both name the Director, the job waiting for media, and the next run of Sched."""
    facts = _facts(director_runs, release)
    page = facts.notes["page"]
    assert f"Now, from the Directors: {_director(facts.lab)}" in page
    assert 'class="state k-waiting">waiting</span>' in page and "WaitMedia" in page
    assert "Sched" in page
    status = facts.notes["status"]
    # Critical already (no backup of these jobs ever succeeded); the wait adds its line.
    assert status.returncode == 2, status.stdout + status.stderr
    assert f"director {_director(facts.lab)} (catalog lab): up" in status.stdout
    assert "waiting  " in status.stdout and "WaitMedia" in status.stdout
    assert "need an operator" in status.stdout


@pytest.mark.parametrize("release", RELEASES, ids=RELEASE_IDS)
def test_every_director_panel_returns_data(director_runs: dict[str, Facts],
                                           release: Release) -> None:
    """The overview dashboard's Director row, queried while a job waits for media."""
    panels = _facts(director_runs, release).notes["panels"]
    assert len(panels) >= 8
    assert [query for query, found in panels.items() if not found] == []


@pytest.mark.parametrize("release", RELEASES, ids=RELEASE_IDS)
def test_certificate_tls_towards_the_director(director_runs: dict[str, Facts],
                                              release: Release) -> None:
    """`tls:` with the Director's CA logs in over TLS; with a stranger's CA the login fails."""
    (up, error, version), (wrong_up, wrong_error) = _facts(director_runs, release).notes["tls"]
    assert up and not error and version.startswith(release.name.split(".")[0])
    assert not wrong_up and wrong_error
