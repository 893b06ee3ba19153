"""The outbox on both stores: durable, idempotent by event id, retries, dead letters, metrics."""

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from exporter.catalog.codes import StatusClass
from exporter.tickets.config import RetryConfig
from exporter.tickets.events import AlertmanagerPayload, Event, alert_event, job_result_event
from exporter.tickets.outbox import Outbox, Route, backoff, outbox_metrics
from exporter.tickets.sinks.base import DeliveryError, PermanentError, RetryableError
from exporter.tickets.store import PostgresStore, SqliteStore, Store
from tests.fake_sink import FakeSink
from tests.integration.conftest import OpenStore
from tests.redmine.samples import alert, finished

FAST = RetryConfig(initial=0.001, max=0.002, max_attempts=3)


def run_sql(store: Store, sql: str) -> None:
    """Change the store's tables behind its back (to plant a broken row)."""
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as db, db:
            db.execute(sql)
    else:
        assert isinstance(store, PostgresStore)
        with psycopg.connect(store.cfg.url) as db:
            db.execute(sql.encode())


def sample(name: str, sink: str) -> float:
    """Return a per-sink gauge of the default registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, {"sink": sink}) or 0.0


def delivered(sink: str, result: str) -> float:
    """Return bacula_exporter_deliveries_total for a sink and result."""
    value = REGISTRY.get_sample_value(
        "bacula_exporter_deliveries_total", {"sink": sink, "result": result})
    return value or 0.0


def drain(outbox: Outbox, name: str) -> None:
    """Deliver until nothing is pending (retries are due within milliseconds here)."""
    deadline = time.monotonic() + 10
    while any(s == "pending" for (_, sink), s in outbox.store.states().items() if sink == name):
        outbox.deliver_due(name)
        assert time.monotonic() < deadline, "the outbox did not drain"
        time.sleep(0.002)


def test_events_are_stored_once_by_id(open_store: OpenStore) -> None:
    sink = FakeSink("a")
    outbox = Outbox(open_store(), [Route(sink)])
    event = job_result_event(finished(1))
    assert outbox.add([event, event]) == 1
    assert outbox.add([event]) == 0
    drain(outbox, "a")
    assert [e.id for e in sink.delivered] == ["main:1"]


def test_checkpoint_is_stored_with_the_events(open_store: OpenStore) -> None:
    outbox = Outbox(open_store(), [Route(FakeSink("a"))])
    assert outbox.store.resume("main") is None
    outbox.listener("main", [finished(4), finished(5, StatusClass.ERROR)], 5)
    assert outbox.store.resume("main") == 5
    assert set(outbox.store.states()) == {("main:4", "a"), ("main:5", "a")}


def test_pending_events_survive_a_restart(open_store: OpenStore) -> None:
    first = Outbox(open_store(), [Route(FakeSink("a"))])
    first.add([job_result_event(finished(1)), job_result_event(finished(2))])
    # No stop(): the process died. A new outbox on the same file delivers what was pending.
    sink = FakeSink("a")
    second = Outbox(open_store(), [Route(sink)])
    assert sample("bacula_exporter_outbox_pending", "a") == 2
    assert sample("bacula_exporter_outbox_oldest_pending_timestamp_seconds", "a") > 0
    drain(second, "a")
    assert [e.id for e in sink.delivered] == ["main:1", "main:2"]
    assert sample("bacula_exporter_outbox_pending", "a") == 0


def test_retry_then_success(open_store: OpenStore) -> None:
    sink = FakeSink("retry")
    sink.fail = [RetryableError("down"), RetryableError("down")]
    outbox = Outbox(open_store(), [Route(sink, retry=FAST)])
    before = delivered("retry", "retry"), delivered("retry", "success")
    outbox.add([job_result_event(finished(1))])
    drain(outbox, "retry")
    assert [e.id for e in sink.delivered] == ["main:1"]
    assert delivered("retry", "retry") - before[0] == 2
    assert delivered("retry", "success") - before[1] == 1


@pytest.mark.parametrize(("errors", "failure"), [
    ([PermanentError("400")], 1),
    ([RetryableError("500")] * 3, 0),  # max_attempts = 3
])
def test_dead_letters(open_store: OpenStore, errors: list[DeliveryError], failure: int) -> None:
    name = f"dead{failure}"
    sink = FakeSink(name)
    sink.fail_for["main:1"] = list(errors)
    outbox = Outbox(open_store(), [Route(sink, retry=FAST)])
    before = delivered(name, "dead"), delivered(name, "failure")
    outbox.add([job_result_event(finished(1)), job_result_event(finished(2))])
    drain(outbox, name)
    assert outbox.store.states() == {("main:1", name): "dead", ("main:2", name): "done"}
    assert delivered(name, "dead") - before[0] == 1
    assert delivered(name, "failure") - before[1] == failure


def test_filters_route_events(open_store: OpenStore) -> None:
    jobs, alerts = FakeSink("jobs"), FakeSink("alerts")
    outbox = Outbox(open_store(), [
        Route(jobs, lambda e: e.kind == "job_result"), Route(alerts, lambda e: e.kind == "alert"),
    ])
    outbox.add([job_result_event(finished(1)),
                alert_event(AlertmanagerPayload.model_validate(alert()))])
    drain(outbox, "jobs")
    drain(outbox, "alerts")
    assert [e.kind for e in jobs.delivered] == ["job_result"]
    assert [e.kind for e in alerts.delivered] == ["alert"]


def test_a_resolved_alert_never_overtakes_its_firing(open_store: OpenStore) -> None:
    sink = FakeSink("order")
    sink.fail = [RetryableError("down")]
    outbox = Outbox(open_store(), [Route(sink, retry=RetryConfig(initial=3600))])
    firing = alert_event(AlertmanagerPayload.model_validate(alert()))
    resolved = alert_event(AlertmanagerPayload.model_validate(alert(status="resolved")))
    other = job_result_event(finished(9))
    outbox.add([firing, resolved, other])
    outbox.deliver_due("order")  # the firing fails: the sink pauses
    outbox.deliver_due("order")
    # The firing waits an hour for its retry; the resolved waits behind it, the job goes on.
    assert [e.id for e in sink.delivered] == [other.id]
    # Nothing is due before the firing's retry: the worker sleeps until then, never spins.
    next_due = outbox.store.next_due("order")
    assert next_due is not None and next_due > time.time() + 1000


def test_workers_deliver_in_the_background(open_store: OpenStore) -> None:
    sink = FakeSink("bg")
    outbox = Outbox(open_store(), [Route(sink)])
    outbox.start()
    try:
        outbox.add([job_result_event(finished(i)) for i in range(1, 21)])
        wait_for(lambda: len(sink.delivered) == 20)
    finally:
        outbox.stop()
    assert [e.id for e in sink.delivered] == [f"main:{i}" for i in range(1, 21)]


def test_the_file_is_durable_sqlite(tmp_path: Path) -> None:
    outbox = Outbox(SqliteStore(tmp_path / "o.db"), [Route(FakeSink("a"))])
    outbox.add([job_result_event(finished(1))])
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        data = db.execute("SELECT data FROM event").fetchone()[0]
    assert Event.from_json(data) == job_result_event(finished(1))


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    retry = RetryConfig(initial=1, max=8)
    for attempt, high in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8), (100, 8)]:
        wait = backoff(retry, attempt)
        assert high / 2 <= wait <= high


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until a condition holds, bounded in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_an_unreadable_row_is_dead_not_fatal(open_store: OpenStore) -> None:
    sink = FakeSink("bad")
    store = open_store()
    outbox = Outbox(store, [Route(sink)])
    outbox.add([job_result_event(finished(1)), job_result_event(finished(2))])
    run_sql(store, "UPDATE event SET data = '{\"id\": \"main:1\"}' WHERE id = 'main:1'")
    drain(outbox, "bad")
    assert outbox.store.states() == {("main:1", "bad"): "dead", ("main:2", "bad"): "done"}


def test_history_is_remembered_not_sent(open_store: OpenStore) -> None:
    sink = FakeSink("history")
    outbox = Outbox(open_store(), [Route(sink)])
    outbox.listener("main", [finished(14)], 13, [16, 18])
    # After a restart the catch-up from 13 finds 16 again: seen at the first start, no news.
    assert outbox.add([job_result_event(finished(16))]) == 0
    drain(outbox, "history")
    assert [e.id for e in sink.delivered] == ["main:14"]
    assert outbox.store.resume("main") == 13


def test_metrics_go_to_the_registry_given(tmp_path: Path) -> None:
    """An outbox with its own registry counts there, exactly, and not on the process's."""
    registry = CollectorRegistry()
    sink = FakeSink("own-registry")
    sink.fail = [RetryableError("down")]
    outbox = Outbox(SqliteStore(tmp_path / "o.db"), [Route(sink, retry=FAST)],
                    outbox_metrics(registry))
    outbox.add([job_result_event(finished(1)), job_result_event(finished(2))])
    assert registry.get_sample_value("bacula_exporter_outbox_pending",
                                     {"sink": "own-registry"}) == 2
    drain(outbox, "own-registry")
    got = {r: registry.get_sample_value("bacula_exporter_deliveries_total",
                                        {"sink": "own-registry", "result": r})
           for r in ("success", "retry")}
    assert got == {"success": 2, "retry": 1}
    assert delivered("own-registry", "success") == 0  # nothing on the default registry


def test_stop_closes_the_store(open_store: OpenStore) -> None:
    """stop() closes the store's connections; a later use opens new ones."""
    store = open_store()
    outbox = Outbox(store, [Route(FakeSink("closing"))])
    outbox.start()
    outbox.add([job_result_event(finished(1))])
    outbox.stop()
    opened = store._opened
    assert opened == []
    assert store.resume("main") is None  # usable again, on a fresh connection
    store.close()
