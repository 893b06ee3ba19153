"""Integration with a real Redmine: final issue states through its REST API, and delivery faults."""

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from exporter.catalog.codes import StatusClass
from exporter.demo import DEMO_ZONE, write_demo_catalog
from exporter.tickets.bridge import Bridge
from exporter.tickets.config import AlertmanagerConfig, RedmineSinkConfig, RetryConfig
from exporter.tickets.events import group_identity, job_result_event
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.receiver import router
from exporter.tickets.sinks.base import accepts
from exporter.tickets.sinks.redmine import redmine_sink
from exporter.tickets.sinks.tickets import ACK_NOTE
from exporter.tickets.store import SqliteStore
from tests.chain.harness import ALERTMANAGER, Daemon, require_binaries, running
from tests.redmine.harness import PROJECT, Redmine, RedmineError, install, installed
from tests.redmine.samples import alert, finished, restore
from tests.server import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
IN_CI = bool(os.environ.get("CI"))  # as tests/conftest.py: a missing Redmine fails in CI
FAST = RetryConfig(initial=0.2, max=1.0, max_attempts=1000)
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def redmine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redmine]:
    """A Redmine of its own for this module; missing Redmine fails in CI and skips elsewhere."""
    try:
        if not installed():
            install()
        server = Redmine(tmp_path_factory.mktemp("redmine"))
        server.prepare()
        server.start()
    except (RedmineError, OSError, subprocess.TimeoutExpired) as exc:
        if IN_CI:
            raise
        pytest.skip(f"no Redmine here: {exc}")
    yield server
    server.stop()


def sink_config(redmine: Redmine, tmp_path: Path, **extra: Any) -> RedmineSinkConfig:
    """Return the sink configuration for the test Redmine, the key in a secret file."""
    key = tmp_path / "redmine-key"
    key.write_text(redmine.api_key + "\n")
    return RedmineSinkConfig.model_validate({
        "name": "helpdesk", "type": "redmine", "url": redmine.url, "api_key_file": str(key),
        "project": PROJECT, "external_id_field": redmine.custom_field, **extra,
    })


def issues_of(redmine: Redmine, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Return the project's issues whose external id starts with a prefix, by external id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for issue in redmine.issues():
        key = redmine.key_of(issue)
        if key.startswith(prefix):
            out.setdefault(key, []).append(issue)
    return out


def wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Wait until a condition holds, bounded in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def pending(outbox: Outbox) -> int:
    """Return the number of pending deliveries."""
    return sum(state == "pending" for state in outbox.store.states().values())


def test_final_issue_states(redmine: Redmine, tmp_path: Path) -> None:
    cfg = sink_config(redmine, tmp_path, reopen_window="1d")
    outbox = Outbox(SqliteStore(tmp_path / "outbox.sqlite3"),
                    [Route(redmine_sink(cfg), lambda e: accepts(cfg, e), FAST)])
    app = FastAPI()
    app.state.bridge = Bridge(outbox, AlertmanagerConfig(auth="none"))
    app.include_router(router)
    client = TestClient(app)

    log_lines = ("fd1 JobId 2: Fatal error: Network error with FD during Backup: ERR=refused",)
    outbox.listener("final", [finished(1), finished(2, StatusClass.ERROR, catalog="final",
                                                     log=log_lines)], 2)
    outbox.listener("final", [finished(1, catalog="final")], 2)
    group = {"alertname": "BaculaJobFailed" + "X" * 300, "client": "final-fd"}
    for payload in (alert(group=group), alert(group=group),
                    alert(group=group, status="resolved"),
                    alert(group=group, starts="2026-11-18T05:00:00Z")):
        assert client.post("/alertmanager", json=payload).status_code == 200
        outbox.deliver_due("helpdesk")
    assert pending(outbox) == 0

    jobs = issues_of(redmine, "final:")
    assert sorted(jobs) == ["final:1", "final:2"]
    assert [len(v) for v in jobs.values()] == [1, 1]
    ok, failed = jobs["final:1"][0], jobs["final:2"][0]
    assert ok["status"]["id"] == 5  # filed as a record, closed
    assert failed["status"]["id"] == 1
    assert failed["priority"]["id"] == 4  # critical
    assert "Network error with FD" in failed["description"]

    tickets = issues_of(redmine, "am:")[group_identity("tickets", group)]
    assert len(tickets) == 1
    ticket = tickets[0]
    assert len(ticket["subject"]) == 255
    assert ticket["status"]["id"] == 1  # resolved, closed, then reopened within the window
    notes = [j["notes"] for j in redmine.journals(ticket["id"]) if j.get("notes")]
    assert [n.split("\n", 1)[0] for n in notes] == ["Resolved.", "Firing again."]


RESTORE_LOG = (
    "e2e-dir JobId 2: Start Restore Job RestoreFiles.2026-11-18_03.00.00_02",
    "e2e-dir JobId 2: Restore Client:         fd1",
    "e2e-dir JobId 2: Where:                  /srv/restore",
)


@pytest.mark.parametrize("job_results", ["all", "not_ok"])
def test_restore_tickets_wait_for_a_human(redmine: Redmine, tmp_path: Path,
                                          job_results: str) -> None:
    """restore_ack: every restore filed and left open; ok backups still filed-and-closed."""
    prefix = f"ack-{job_results.replace('_', '')}"
    cfg = sink_config(redmine, tmp_path, restore_ack=True, job_results=job_results)
    sink = redmine_sink(cfg)
    outbox = Outbox(SqliteStore(tmp_path / "outbox.sqlite3"),
                    [Route(sink, lambda e: accepts(cfg, e), FAST)])
    jobs = [finished(1, catalog=prefix), restore(2, catalog=prefix, log=RESTORE_LOG),
            restore(3, StatusClass.ERROR, catalog=prefix)]
    outbox.listener(prefix, jobs, 3)
    outbox.deliver_due("helpdesk")
    assert pending(outbox) == 0
    # A redelivery (a crash before the outbox recorded the delivery) changes nothing.
    for job in jobs:
        sink.deliver(job_result_event(job))

    found = issues_of(redmine, f"{prefix}:")
    expected = {f"{prefix}:2", f"{prefix}:3"} | ({f"{prefix}:1"} if job_results == "all" else set())
    assert set(found) == expected
    assert all(len(v) == 1 for v in found.values())
    if job_results == "all":
        assert found[f"{prefix}:1"][0]["status"]["id"] == 5  # a good backup: a closed record
    ok, failed = found[f"{prefix}:2"][0], found[f"{prefix}:3"][0]
    assert ok["status"]["id"] == 1 and failed["status"]["id"] == 1
    assert ok["subject"].startswith(f"Restore: [{prefix}] fd1 RestoreFiles: Restore OK")
    assert ok["priority"]["id"] == 2 and failed["priority"]["id"] == 4
    assert "Where:                  /srv/restore" in ok["description"]
    assert "5 files, 171000 bytes" in ok["description"]
    assert ACK_NOTE in ok["description"]

    # The second person closes the ticket; a later redelivery neither reopens nor refiles it.
    closed = httpx.put(f"{redmine.url}/issues/{ok['id']}.json", timeout=10,
                       headers={"X-Redmine-API-Key": redmine.api_key},
                       json={"issue": {"status_id": 5, "notes": "Reviewed: ok."}})
    assert closed.status_code in (200, 204)
    sink.deliver(job_result_event(jobs[1]))
    again = issues_of(redmine, f"{prefix}:2")[f"{prefix}:2"]
    assert [(i["id"], i["status"]["id"]) for i in again] == [(ok["id"], 5)]
    outbox.stop()


def test_redmine_down_while_50_events_queue(redmine: Redmine, tmp_path: Path) -> None:
    cfg = sink_config(redmine, tmp_path)
    outbox = Outbox(SqliteStore(tmp_path / "outbox.sqlite3"),
                    [Route(redmine_sink(cfg), retry=FAST)])
    redmine.stop()
    try:
        outbox.start()
        # The failures are another client's: no later success resolves them.
        jobs = [finished(i, StatusClass.ERROR, catalog="down", client="bad-fd") if i % 5 == 0
                else finished(i, catalog="down") for i in range(1, 51)]
        assert outbox.add([job_result_event(j) for j in jobs], ("down", 50)) == 50
        wait_for(lambda: any(outbox.store.states()) and _retried(outbox) > 0)
        assert pending(outbox) == 50
    finally:
        redmine.start()
    try:
        wait_for(lambda: pending(outbox) == 0)
    finally:
        outbox.stop()
    found = issues_of(redmine, "down:")
    figures = {"sent": 50, "delivered": len(found),
               "duplicates": sum(len(v) - 1 for v in found.values()),
               "dead": sum(s == "dead" for s in outbox.store.states().values())}
    log.warning("fault test, Redmine down: %s", figures)
    assert figures == {"sent": 50, "delivered": 50, "duplicates": 0, "dead": 0}
    assert sorted(found) == sorted(f"down:{i}" for i in range(1, 51))
    closed = {k for k, v in found.items() if v[0]["status"]["id"] == 5}
    assert closed == {f"down:{i}" for i in range(1, 51) if i % 5}


def _retried(outbox: Outbox) -> int:
    """Return how many deliveries have failed at least once."""
    assert isinstance(outbox.store, SqliteStore)
    with closing(sqlite3.connect(outbox.store.path)) as db:
        row = db.execute("SELECT count(*) FROM delivery WHERE attempts > 0").fetchone()
    return int(row[0])


@pytest.mark.parametrize("how", ["after a create", "from outside"])
def test_sigkill_mid_delivery_then_restart(redmine: Redmine, tmp_path: Path, how: str) -> None:
    prefix = "kill1" if how == "after a create" else "kill2"
    cfg = sink_config(redmine, tmp_path)
    sink_json = tmp_path / "sink.json"
    sink_json.write_text(json.dumps(cfg.model_dump(mode="json")))
    outbox_file = tmp_path / "outbox.sqlite3"
    queued = Outbox(SqliteStore(outbox_file), [Route(redmine_sink(cfg))])
    # The failures are another client's: no later success resolves them (test_redmine_lifecycle).
    jobs = [finished(i, StatusClass.ERROR, catalog=prefix, client="bad-fd") if i % 3 == 0
            else finished(i, catalog=prefix) for i in range(1, 51)]
    queued.add([job_result_event(j) for j in jobs], (prefix, 50))
    command = [sys.executable, "-m", "tests.redmine.deliver", str(sink_json), str(outbox_file)]
    env = {**os.environ, "KILL_AFTER_CREATES": "17" if how == "after a create" else "0"}

    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(issues_of(redmine, f"{prefix}:")) >= 17 or first.poll() is not None)
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    in_redmine = len(issues_of(redmine, f"{prefix}:"))
    done = sum(s == "done" for s in queued.store.states().values())
    second = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=300, check=False)
    assert second.returncode == 0, second.stderr[-2000:]

    found = issues_of(redmine, f"{prefix}:")
    figures = {"sent": 50, "issues_at_kill": in_redmine, "marked_done_at_kill": done,
               "delivered": len(found), "duplicates": sum(len(v) - 1 for v in found.values())}
    log.warning("fault test, SIGKILL %s: %s", how, figures)
    if how == "after a create":
        # The 17th issue exists but its delivery was not recorded: it is redelivered.
        assert (in_redmine, done) == (17, 16)
    assert Counter(queued.store.states().values()) == {"done": 50}
    assert figures["delivered"] == 50
    assert figures["duplicates"] == 0
    closed = {k for k, v in found.items() if v[0]["status"]["id"] == 5}
    assert closed == {f"{prefix}:{i}" for i in range(1, 51) if i % 3}


def finished_backups(db: Path) -> set[str]:
    """Return the event ids of the demo catalog's finished backup jobs."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT JobId FROM Job WHERE Type = 'B' AND JobStatus IN "
                            "('T', 'W', 'E', 'e', 'f', 'A')").fetchall()
    return {f"demo:{job_id}" for (job_id,) in rows}


def outbox_pending(url: str) -> float | None:
    """Return bacula_exporter_outbox_pending of the helpdesk sink from /metrics."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.TransportError:
        return None
    for line in text.splitlines():
        if line.startswith('bacula_exporter_outbox_pending{sink="helpdesk"}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_exporter_killed_mid_delivery(redmine: Redmine, tmp_path: Path) -> None:
    """The whole exporter: catalog -> outbox -> Redmine, SIGKILLed and restarted."""
    port = free_port()
    config = bridge_config(
        tmp_path, redmine, port, {"poll_interval": "1s", "backfill": "3650d"},
        job_types=["B"], retry={"initial": "0.2s", "max": "1s"},
    )
    db = tmp_path / "bacula.db"
    expected = finished_backups(db)
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "exporter", "--config", str(config)]
    with (tmp_path / "exporter.log").open("ab") as out:
        first = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: len(issues_of(redmine, "demo:")) >= 30 or first.poll() is not None)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        at_kill = len(issues_of(redmine, "demo:"))
        second = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: outbox_pending(url) == 0, timeout=300)
        finally:
            second.terminate()
            second.wait(timeout=20)
    found = issues_of(redmine, "demo:")
    figures = {"sent": len(expected), "issues_at_kill": at_kill, "delivered": len(found),
               "duplicates": sum(len(v) - 1 for v in found.values())}
    log.warning("fault test, exporter SIGKILL: %s", figures)
    assert set(found) == expected
    assert figures["duplicates"] == 0


def bridge_config(tmp_path: Path, redmine: Redmine, port: int,
                  top: dict[str, Any] | None = None, **sink: Any) -> Path:
    """Write an exporter config with the bridge: demo catalog, Redmine sink, bearer receiver."""
    db = tmp_path / "bacula.db"
    write_demo_catalog(db)
    key = tmp_path / "redmine-key"
    key.write_text(redmine.api_key + "\n")
    (tmp_path / "am-token").write_text("am-token-for-tests\n")
    config = tmp_path / "config.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "listen": f"127.0.0.1:{port}", "poll_interval": "1h",
        "state_dir": str(tmp_path / "state"),
        "catalogs": [{"name": "demo", "url": f"sqlite:///{db}", "timezone": DEMO_ZONE}],
        "sinks": [{"name": "helpdesk", "type": "redmine", "url": redmine.url,
                   "api_key_file": str(key), "project": PROJECT,
                   "external_id_field": redmine.custom_field, **sink}],
        "alertmanager": {"auth": {"type": "bearer",
                                  "token_file": str(tmp_path / "am-token")}},
        **(top or {}),
    }))
    return config


class BridgedAlertmanager(Daemon):
    """Debian's Alertmanager sending to the exporter's /alertmanager with a bearer token."""

    def __init__(self, workdir: Path, url: str, token_file: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "route": {"receiver": "bridge", "group_by": ["alertname", "client"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "bridge", "webhook_configs": [{
                "url": url, "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer",
                                                  "credentials_file": str(token_file)}},
            }]}],
        }
        (workdir / "alertmanager.yml").write_text(json.dumps(config))
        port = free_port()
        super().__init__("alertmanager", [
            ALERTMANAGER, "--config.file=alertmanager.yml",
            f"--storage.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=", "--log.level=info",
        ], workdir, port)

    def post(self, labels: dict[str, str], ends: datetime) -> None:
        """Send one alert through the API, firing until `ends`."""
        alert = {"labels": labels, "annotations": {"summary": "The last backup failed"},
                 "startsAt": (ends - timedelta(hours=2)).isoformat(),
                 "endsAt": ends.isoformat()}
        httpx.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()


def test_alertmanager_to_redmine(redmine: Redmine, tmp_path: Path) -> None:
    """The chain Debian Alertmanager -> exporter's receiver -> outbox -> Redmine."""
    require_binaries()
    port = free_port()
    config = bridge_config(tmp_path, redmine, port, events=["alert"])
    labels = {"alertname": "BaculaJobFailed", "client": "chain-fd", "severity": "critical"}
    key = group_identity("bridge", {"alertname": "BaculaJobFailed", "client": "chain-fd"})
    am = BridgedAlertmanager(tmp_path / "am", f"http://127.0.0.1:{port}/alertmanager",
                             tmp_path / "am-token")
    with (tmp_path / "exporter.log").open("ab") as out:
        exporter = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(config)],
                                    cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            with running(am):
                am.post(labels, datetime.now(UTC) + timedelta(hours=1))
                wait_for(lambda: key in issues_of(redmine, "am:"))
                am.post(labels, datetime.now(UTC))
                wait_for(lambda: issues_of(redmine, "am:")[key][0]["status"]["id"] == 5)
        finally:
            exporter.terminate()
            exporter.wait(timeout=20)
    (issue,) = issues_of(redmine, "am:")[key]
    assert issue["priority"]["id"] == 4
    notes = [j["notes"] for j in redmine.journals(issue["id"]) if j.get("notes")]
    assert [n.split("\n", 1)[0] for n in notes] == ["Resolved."]
