"""Two replicas on one PostgreSQL state database: one polls, both deliver, none twice.

The store is tested directly (two outboxes on one database, claiming with SKIP LOCKED), then
as it runs: two exporter processes with one catalog, one webhook and one state database, while
job results stream into the catalog and Alertmanager notifications arrive at either replica.
The leader is SIGKILLed half-way; the standby must take over the polling, and every job result
and alert must reach the webhook, each under its own Idempotency-Key.
"""

import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from exporter.catalog.config import CatalogConfig
from exporter.core.db import StoreError
from exporter.core.settings import StateDatabaseConfig
from exporter.exposition.block import Exposition
from exporter.ha.leader import Leadership
from exporter.service.poller import CatalogPoller
from exporter.tickets.events import Event, job_result_event
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.store import PostgresStore
from tests import scenario
from tests.promtext import samples, value
from tests.proxy import Proxy
from tests.redmine.samples import alert, finished
from tests.server import free_port, start_logged, stop
from tests.webhook import Recording

pytestmark = pytest.mark.integration

STREAM = 300  # job results written while the replicas run; the leader dies half-way
ALERTS = 100  # Alertmanager notifications, spread over both replicas


class Shared:
    """A sink standing for one ticket system that two replicas deliver to."""

    def __init__(self, name: str, replica: str, log: list[tuple[str, str]],
                 lock: threading.Lock) -> None:
        self.name, self.replica, self.log, self.lock = name, replica, log, lock

    def deliver(self, event: Event) -> None:
        """Record the event and which replica delivered it; take a moment, as a backend does."""
        time.sleep(0.002)
        with self.lock:
            self.log.append((event.id, self.replica))

    def close(self) -> None:
        """Nothing to release."""


def test_two_outboxes_claim_each_row_once(state_database: str) -> None:
    cfg = StateDatabaseConfig(url=state_database)
    log: list[tuple[str, str]] = []
    lock = threading.Lock()
    outboxes = [Outbox(PostgresStore(cfg), [Route(Shared("t", name, log, lock))])
                for name in ("a", "b")]
    # 40 ticket keys with 5 events each, stored in order through both outboxes at once.
    events = [job_result_event(finished(job, catalog=f"k{key}"))
              for job in range(1, 6) for key in range(40)]
    for outbox in outboxes:
        outbox.start()
    try:
        adders = [threading.Thread(target=o.add, args=(events[i::2],))
                  for i, o in enumerate(outboxes)]
        for thread in adders:
            thread.start()
        for thread in adders:
            thread.join()
        # Both add the same events again, as two replicas hearing the same notification.
        assert outboxes[0].add(events) + outboxes[1].add(events) == 0
        # Nothing pending in the shared store: every row is settled, so no delivery is left to
        # happen, duplicate or not (a row is posted while it is pending, then settled).
        wait_until(lambda: not outboxes[0].store.pending(), 30, "every row settled")
    finally:
        for outbox in outboxes:
            outbox.stop()
    delivered = Counter(event_id for event_id, _ in log)
    by_replica = Counter(replica for _, replica in log)
    print(f"\ntwo outboxes: {len(log)} deliveries of {len(events)} events, by replica "
          f"{dict(by_replica)}")
    assert delivered == Counter(e.id for e in events)  # every event, each exactly once
    assert set(outboxes[0].store.states().values()) == {"done"}
    # Events of one ticket key arrive in the order they were stored, whoever delivered them.
    for key in range(40):
        order = [int(i.rsplit(":", 1)[1]) for i, _ in log if i.startswith(f"k{key}:")]
        assert order == [1, 2, 3, 4, 5]


def test_the_checkpoint_never_goes_back(state_database: str) -> None:
    store = PostgresStore(StateDatabaseConfig(url=state_database))
    store.add([], ("main", 50))
    store.add([], ("main", 40))  # a replica that polled for a moment behind the other
    assert store.resume("main") == 50


def test_connections_are_bounded(state_database: str) -> None:
    store = PostgresStore(StateDatabaseConfig(url=state_database))
    done = threading.Barrier(41)

    def add(job: int) -> None:
        store.add([(job_result_event(finished(job)), ["t"])], None)
        done.wait(timeout=30)  # the thread lives on, as a server's worker threads do

    threads = [threading.Thread(target=add, args=(job,)) for job in range(40)]
    for thread in threads:
        thread.start()
    try:
        with psycopg.connect(state_database) as admin:
            deadline = time.monotonic() + 30
            while done.n_waiting < 40:
                assert time.monotonic() < deadline, "the adds did not finish"
                time.sleep(0.05)
            (opened,) = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'bacula-exporter outbox'").fetchone() or (0,)
    finally:
        done.wait(timeout=30)
        for thread in threads:
            thread.join()
    assert 1 <= opened <= PostgresStore.POOL  # 40 threads, a handful of connections
    assert len(store.states()) == 40


def test_one_leader_at_a_time(state_database: str) -> None:
    cfg = StateDatabaseConfig(url=state_database)
    first, second = Leadership(cfg), Leadership(cfg)
    try:
        assert first.check() and not second.check()
        assert first.check() and not second.check()  # held, not taken in turns
        first.close()  # the leader's session ends: its lock goes with it
        assert second.check() and not first.check()
    finally:
        first.close()
        second.close()


def test_unreachable_state_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_PW", "hunter7-state")
    cfg = StateDatabaseConfig(url=f"postgresql://x@127.0.0.1:{free_port()}/state",
                              password_env="STATE_PW", connect_timeout=1)
    leadership = Leadership(cfg)
    # Nobody can say who leads: poll rather than leave the catalogs unwatched.
    assert leadership.check() and leadership.reachable is False
    outbox = Outbox(PostgresStore(cfg), [Route(Shared("t", "a", [], threading.Lock()))])
    with pytest.raises(StoreError) as caught:
        outbox.add([job_result_event(finished(1))])
    assert "cannot connect to the state database" in str(caught.value)
    assert "hunter7" not in str(caught.value)


def replicas(tmp_path: Path, hook: Recording, state_url: str) -> dict[str, tuple[int, Path]]:
    """Write the config of replicas a and b (one stream catalog, one webhook, one state db)."""
    found = {}
    for name in ("a", "b"):
        port, config = free_port(), tmp_path / f"{name}.yml"
        config.write_text(json.dumps({
            "listen": f"127.0.0.1:{port}", "poll_interval": "0.2s", "scrape_min_interval": "0s",
            "state_database": {"url": state_url, "connect_timeout": "1s"},
            "catalogs": [{"name": "stream", "url": f"sqlite:///{tmp_path / 'bacula.db'}",
                          "timezone": scenario.ZONE}],
            "sinks": [{"name": "hook", "type": "webhook", "url": hook.url,
                       "events": ["job_result", "alert"],
                       "retry": {"initial": "0.1s", "max": "0.5s"}}],
            "alertmanager": {"auth": "none"},
        }))
        found[name] = (port, config)
    return found


@contextmanager
def two_replicas(tmp_path: Path, setup: dict[str, tuple[int, Path]]
                 ) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Start replica a, let it lead, then b; stop whichever still runs at the end."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with ExitStack() as logs:
        try:
            for name, (port, config) in setup.items():
                log = logs.enter_context((tmp_path / f"{name}.log").open("ab"))
                procs[name] = start_logged(config, port, log)
                if name == "a":
                    wait_until(lambda p=port: role(p) == "leader", 10, "a to lead")
            yield procs
        finally:
            for proc in procs.values():
                stop(proc, timeout=20)


def role(port: int) -> str:
    """Return what /readyz says this replica is, or 'down'."""
    try:
        return str(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()["role"])
    except httpx.TransportError:
        return "down"


def scrape(port: int) -> dict[Any, float]:
    """Return the samples a replica serves."""
    return samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)


def runs(found: dict[Any, float]) -> float:
    """Return the number of runs of the stream job a scrape counts."""
    return sum(v for (name, labels), v in found.items()
               if name == "bacula_job_runs_total" and ("job", "BackupStream") in labels)


def post_alert(port: int, i: int) -> dict[str, Any]:
    """Send the notification of alert group i; return the replica's answer."""
    payload = alert(group={"alertname": "BaculaJobFailed", "client": f"fd{i}"},
                    group_key=f'{{}}:{{client="fd{i}"}}')
    resp = httpx.post(f"http://127.0.0.1:{port}/alertmanager", json=payload, timeout=10)
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def pending(state_url: str) -> int:
    """Return the delivery rows still pending in the shared outbox (claimed ones included)."""
    with psycopg.connect(state_url) as db:
        row = db.execute("SELECT count(*) FROM delivery WHERE state = 'pending'").fetchone()
    return int(row[0]) if row else 0


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait for a condition, bounded in time; return how long it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def test_two_exporters_kill_the_leader(tmp_path: Path, state_database: str) -> None:
    db = tmp_path / "bacula.db"
    scenario.stream_catalog(db)
    hook = Recording().serve()
    setup = replicas(tmp_path, hook, state_database)
    ports = {name: port for name, (port, _) in setup.items()}
    expected = {f"stream:{job_id}" for job_id in range(100, 100 + STREAM)}
    alert_ids: set[str] = set()
    duplicates_refused = 0
    with two_replicas(tmp_path, setup) as procs, closing(sqlite3.connect(db)) as writer:
        assert role(ports["b"]) == "standby"
        standby = scrape(ports["b"])
        assert value(standby, "bacula_exporter_leader") == 0
        assert value(standby, "bacula_exporter_state_database_up") == 1
        assert value(standby, "bacula_catalog_up", catalog="stream") is None
        assert runs(standby) == 0  # the standby serves no catalog series
        assert "This replica stands by" in httpx.get(f"http://127.0.0.1:{ports['b']}/").text
        leader_runs = 0.0
        for n, job_id in enumerate(range(100, 100 + STREAM)):
            scenario.write_stream_job(writer, job_id)
            if n % (STREAM // ALERTS) == 0:
                i = n // (STREAM // ALERTS)
                alive = [r for r in ("a", "b") if procs[r].poll() is None]
                alert_ids.add(post_alert(ports[alive[i % len(alive)]], i)["id"])
                if i % 10 == 0:  # the same notification at the other replica: stored once
                    again = post_alert(ports[alive[(i + 1) % len(alive)]], i)
                    duplicates_refused += again["status"] == "duplicate"
            if n == STREAM // 2:
                delivered_before_kill = len(hook.keys())
                leader_runs = runs(scrape(ports["a"]))
                procs["a"].send_signal(signal.SIGKILL)
                procs["a"].wait(timeout=10)
                failover = wait_until(lambda: role(ports["b"]) == "leader", 30,
                                      "b to take over")
            time.sleep(0.01)
        wait_until(lambda: expected | alert_ids <= hook.keys(), 60, "every delivery")
        wait_until(lambda: not pending(state_database), 30, "every row settled")
        survivor = scrape(ports["b"])
    hook.shutdown()
    with hook.lock:
        posts = list(hook.posts)
    delivered = Counter(key for key, _ in posts)
    with psycopg.connect(state_database) as state:
        states = Counter(s for (s,) in state.execute("SELECT state FROM delivery"))
    reference = CatalogPoller(CatalogConfig(name="stream", url=f"sqlite:///{db}",
                                            timezone=scenario.ZONE))
    reference.maybe_poll(0, wait=10)
    fresh = samples(b"".join(Exposition().render([reference.rendered], [])).decode())
    reference.close()
    figures = {
        "job_results": STREAM, "alerts": len(alert_ids),
        "same_alert_at_both_refused": duplicates_refused, "posts": len(posts),
        "delivered_more_than_once": sorted(k for k, n in delivered.items() if n > 1),
        "seconds_from_kill_to_new_leader": round(failover, 2),
        "delivered_before_kill": delivered_before_kill, "outbox": dict(states),
    }
    print(f"\ntwo replicas: {figures}")
    assert all(key == body_id for key, body_id in posts)
    # Failures of the stream that a later success made good are told once more, as such.
    resolved = {k for k in delivered if k.rsplit(":", 2)[0] in expected and ":resolved-by:" in k}
    expected |= resolved
    assert set(delivered) == expected | alert_ids  # nothing lost, nothing unknown
    # Exactly once, but for the one row the leader may have been delivering when it died:
    # then the survivor sends it again under the same Idempotency-Key.
    assert sum(delivered.values()) - len(delivered) <= 1
    assert states == {"done": len(expected | alert_ids)}
    assert duplicates_refused == len(range(0, ALERTS, 10))
    # Metrics continue from the survivor: what a fresh read of the catalog gives, and no
    # counter went back from what the dead leader served.
    assert value(survivor, "bacula_exporter_leader") == 1
    assert value(survivor, "bacula_catalog_up", catalog="stream") == 1
    assert runs(survivor) == runs(fresh) >= leader_runs > 0


def test_state_database_outage(tmp_path: Path, state_database: str) -> None:
    """The state database goes away: both replicas poll, tickets wait, nothing is lost."""
    db = tmp_path / "bacula.db"
    scenario.stream_catalog(db)
    hook = Recording().serve()
    proxy = Proxy(5432)
    setup = replicas(tmp_path, hook, state_database.replace(":5432/", f":{proxy.port}/"))
    ports = {name: port for name, (port, _) in setup.items()}
    expected = {f"stream:{job_id}" for job_id in range(100, 120)}
    try:
        with two_replicas(tmp_path, setup), closing(sqlite3.connect(db)) as writer:
            before = runs(scrape(ports["a"]))

            proxy.cut()
            for port in ports.values():
                wait_until(lambda p=port: value(scrape(p), "bacula_exporter_state_database_up")
                           == 0, 20, "the outage to be seen")
            # Nobody can tell who leads: both poll, so the catalog stays watched.
            for port in ports.values():
                wait_until(lambda p=port: value(scrape(p), "bacula_catalog_up",
                                                catalog="stream") == 1, 20, "both to poll")
                assert value(scrape(port), "bacula_exporter_leader") == 1
            refused = [httpx.post(f"http://127.0.0.1:{port}/alertmanager", timeout=10,
                                  json=alert(group={"alertname": "BaculaJobFailed",
                                                    "client": f"fd{i}"})).status_code
                       for i, port in enumerate(ports.values())]
            assert refused == [503, 503]  # not stored, so not acknowledged: Alertmanager retries
            for job_id in range(100, 120):
                scenario.write_stream_job(writer, job_id)
            wait_until(lambda: runs(scrape(ports["b"])) == before + 20, 20,
                       "the metrics to follow the catalog during the outage")
            assert hook.keys() == set()  # nothing could be stored, so nothing was sent

            proxy.restore()
            wait_until(lambda: sorted(role(p) for p in ports.values()) == ["leader", "standby"],
                       30, "one leader again")
            alert_ids = {post_alert(port, i)["id"] for i, port in enumerate(ports.values())}
            wait_until(lambda: expected | alert_ids <= hook.keys(), 60, "every delivery")
            wait_until(lambda: not pending(state_database), 30, "every row settled")
    finally:
        proxy.close()
    hook.shutdown()
    delivered = Counter(key for key, _ in hook.posts)
    expected |= {k for k in delivered if ":resolved-by:" in k}
    print(f"\nstate database outage: {len(hook.posts)} posts, "
          f"{sum(n > 1 for n in delivered.values())} keys more than once")
    assert delivered == Counter(expected | alert_ids)  # each job result and alert exactly once
