"""Failures that resolve themselves: the outbox on both stores, the ticket rules, each sink."""

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from exporter.catalog.codes import StatusClass
from exporter.core.settings import StateDatabaseConfig
from exporter.tickets.config import RedmineSinkConfig, WebhookSinkConfig
from exporter.tickets.events import Event, job_result_event
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.resolution import covers
from exporter.tickets.sinks.base import accepts
from exporter.tickets.sinks.tickets import TicketRules, TicketSink
from exporter.tickets.store import PostgresStore, SqliteStore
from exporter.tickets.template import render
from tests.fake_sink import FakeSink, FakeTickets
from tests.integration.conftest import OpenStore
from tests.integration.test_sinks import apprise_sink, receiver  # noqa: F401 - a fixture
from tests.redmine.samples import finished, restore

ERROR, CANCELED, OK, WARNING = (StatusClass.ERROR, StatusClass.CANCELED, StatusClass.OK,
                                StatusClass.WARNING)


def drain(outbox: Outbox) -> None:
    """Deliver every due row of every sink."""
    for name in outbox.routes:
        while outbox.deliver_due(name):
            pass


def webhook_cfg(name: str, **extra: Any) -> WebhookSinkConfig:
    """Return a webhook sink's config (only its filter is used here)."""
    return WebhookSinkConfig.model_validate(
        {"name": name, "type": "webhook", "url": "http://127.0.0.1:9/", **extra})


def recording(*cfgs: WebhookSinkConfig) -> tuple[list[Route], dict[str, FakeSink]]:
    """Return routes with each config's filter to a recording sink."""
    sinks = {c.name: FakeSink(c.name) for c in cfgs}
    return [Route(sinks[c.name], lambda e, c=c: accepts(c, e)) for c in cfgs], sinks


def ids(sink: FakeSink) -> list[str]:
    """Return the ids a sink received, in order."""
    return [e.id for e in sink.delivered]


def test_a_success_resolves_the_failure_once_across_restarts(open_store: OpenStore) -> None:
    routes, sinks = recording(webhook_cfg("hook"))
    outbox = Outbox(open_store(), routes)
    outbox.listener("main", [finished(10, ERROR)], 10)
    drain(outbox)
    outbox.stop()

    routes, sinks = recording(webhook_cfg("hook"))
    outbox = Outbox(open_store(), routes)  # a restart between the failure and the success
    outbox.listener("main", [finished(11, OK)], 11)
    outbox.listener("main", [finished(11, OK)], 11)  # the same success again: no news
    outbox.listener("main", [finished(12, OK)], 12)  # a later success: nothing left to resolve
    drain(outbox)
    assert ids(sinks["hook"]) == ["main:11", "main:10:resolved-by:11", "main:12"]
    resolution = sinks["hook"].delivered[1]
    assert (resolution.kind, resolution.key, resolution.resolves) == (
        "resolution", "main:10", "main:10")
    assert resolution.status == "resolved"
    assert resolution.title.startswith("Resolved by JobId 11 (Backupfd1.2026-11-18_01.00.00_11,")
    sent = json.loads(resolution.to_json())
    assert sent["resolves"] == "main:10"
    assert sent["body"]["resolved_by"] == "main:11"
    assert "resolves" not in json.loads(sinks["hook"].delivered[0].to_json())
    assert json.loads(render('{"fixes": ${resolves}, "by": ${job_id}}', resolution)) == {
        "fixes": "main:10", "by": 11}
    outbox.stop()


@pytest.mark.parametrize(("failed", "succeeded", "resolved"), [
    ("incremental", "incremental", True),
    ("incremental", "differential", True),
    ("incremental", "full", True),
    ("differential", "incremental", False),
    ("full", "differential", False),
    ("full", "full", True),
])
def test_only_the_same_or_a_covering_level_resolves(tmp_path: Path, failed: str, succeeded: str,
                                                     resolved: bool) -> None:
    assert covers(succeeded, failed) is resolved
    routes, sinks = recording(webhook_cfg("hook"))
    outbox = Outbox(SqliteStore(tmp_path / "o.db"), routes)
    outbox.listener("main", [finished(1, ERROR, level=failed),
                             finished(2, OK, level=succeeded)], 2)
    drain(outbox)
    assert ("main:1:resolved-by:2" in ids(sinks["hook"])) is resolved
    outbox.stop()


def test_who_is_told(tmp_path: Path) -> None:
    """Only sinks that took the failure, and not those that asked for no resolutions."""
    routes, sinks = recording(
        webhook_cfg("all"), webhook_cfg("failures", status=["error", "canceled"]),
        webhook_cfg("good", status=["ok", "warning"]), webhook_cfg("quiet", resolutions=False),
        webhook_cfg("alerts", events=["alert"]))
    outbox = Outbox(SqliteStore(tmp_path / "o.db"), routes)
    other = finished(3, ERROR, client="fd2")
    outbox.listener("main", [finished(1, CANCELED), other, finished(2, WARNING),
                             restore(4, ERROR), restore(5)], 5)
    drain(outbox)
    assert ids(sinks["all"]) == ["main:1", "main:3", "main:2", "main:1:resolved-by:2",
                                 "main:4", "main:5"]
    assert ids(sinks["failures"]) == ["main:1", "main:3", "main:1:resolved-by:2", "main:4"]
    assert ids(sinks["good"]) == ["main:2", "main:5"]
    assert ids(sinks["quiet"]) == ["main:1", "main:3", "main:2", "main:4", "main:5"]
    assert ids(sinks["alerts"]) == []
    outbox.stop()


def test_two_failures_then_one_success_resolve_both(tmp_path: Path) -> None:
    routes, sinks = recording(webhook_cfg("hook"))
    outbox = Outbox(SqliteStore(tmp_path / "o.db"), routes)
    outbox.listener("main", [finished(1, ERROR), finished(2, ERROR), finished(3, OK)], 3)
    drain(outbox)
    assert [e.resolves for e in sinks["hook"].delivered if e.kind == "resolution"] == [
        "main:1", "main:2"]
    outbox.stop()


def ticket_outbox(tmp_path: Path, clock: Callable[[], float], **rules: Any
                  ) -> tuple[Outbox, FakeTickets]:
    """Return an outbox with one ticket sink on the fake ticket system."""
    tickets = FakeTickets(clock)
    sink = TicketSink("helpdesk", tickets, TicketRules(**rules), clock)
    return Outbox(SqliteStore(tmp_path / "o.db"), [Route(sink)]), tickets


def test_ticket_is_noted_and_closed_once(tmp_path: Path) -> None:
    outbox, tickets = ticket_outbox(tmp_path, lambda: 0.0)
    outbox.listener("main", [finished(1, ERROR), finished(2, OK)], 2)
    drain(outbox)
    failed = next(i for i in tickets.issues if i.key == "main:1")
    assert not failed.open
    assert len(failed.notes) == 1
    assert failed.notes[0].startswith("Resolved by JobId 2 (")
    # A redelivery (a crash after the update, before the outbox recorded it) changes nothing.
    (stored,) = [e for e in recorded_events(outbox) if e.kind == "resolution"]
    outbox.routes["helpdesk"].sink.deliver(stored)
    assert len(failed.notes) == 1
    outbox.stop()


def test_resolution_left_open_when_asked(tmp_path: Path) -> None:
    outbox, tickets = ticket_outbox(tmp_path, lambda: 0.0, close_on_resolve=False)
    outbox.listener("main", [finished(1, ERROR), finished(2, OK)], 2)
    drain(outbox)
    failed = next(i for i in tickets.issues if i.key == "main:1")
    assert failed.open and len(failed.notes) == 1


@pytest.mark.parametrize(("hours", "notes"), [
    # Reopened within the window.
    (2, [["Resolved by JobId 2", "Failed again.", "Resolved by JobId 4"]]),
    # After the window: a new ticket with the same key.
    (48, [["Resolved by JobId 2"], ["Resolved by JobId 4"]]),
])
def test_failing_again_reopens_within_the_window(tmp_path: Path, hours: float,
                                                 notes: list[list[str]]) -> None:
    now = [0.0]
    outbox, tickets = ticket_outbox(tmp_path, lambda: now[0], reopen_window=86400.0)
    outbox.listener("main", [finished(1, ERROR), finished(2, OK)], 2)
    drain(outbox)
    now[0] += hours * 3600
    outbox.listener("main", [finished(3, ERROR)], 3)
    drain(outbox)
    again = next(e for e in recorded_events(outbox) if e.id == "main:3")
    outbox.routes["helpdesk"].sink.deliver(again)  # a redelivery: no second note or ticket
    outbox.listener("main", [finished(4, OK)], 4)
    drain(outbox)
    found = [i for i in tickets.issues if i.key == "main:1"]
    assert [[n.split("\n", 1)[0].split(" (", 1)[0] for n in i.notes] for i in found] == notes
    assert not any(i.open for i in found)
    assert not [i for i in tickets.issues if i.key == "main:3"]
    outbox.stop()


def recorded_events(outbox: Outbox) -> list[Event]:
    """Return every event the outbox stored (read back from its SQLite file)."""
    assert isinstance(outbox.store, SqliteStore)
    with closing(sqlite3.connect(outbox.store.path)) as db:
        rows = db.execute("SELECT data FROM event WHERE data <> ''").fetchall()
    return [Event.from_json(data) for (data,) in rows]


def test_apprise_sends_a_success_notice(tmp_path: Path, receiver: Any) -> None:  # noqa: F811
    routes, sinks = recording(webhook_cfg("hook"))
    outbox = Outbox(SqliteStore(tmp_path / "o.db"), routes)
    outbox.listener("main", [finished(1, ERROR), finished(2, OK)], 2)
    drain(outbox)
    resolution = sinks["hook"].delivered[-1]
    apprise_sink(tmp_path, receiver.server_address[1]).deliver(resolution)
    (page,) = receiver.bodies
    assert page["type"] == "success"
    assert page["title"].startswith("Resolved by JobId 2")
    outbox.stop()


def test_the_redmine_option_reaches_the_rules() -> None:
    cfg = RedmineSinkConfig.model_validate({
        "name": "r", "type": "redmine", "url": "http://127.0.0.1:9", "api_key_env": "PATH",
        "project": "p", "external_id_field": 1, "close_on_resolve": False, "resolutions": False})
    assert not accepts(cfg, Event("x:1:resolved-by:2", "resolution", "x:1", "t", "info",
                                  "resolved", resolves="x:1"))


def test_a_success_that_started_before_the_failure_resolves_nothing(tmp_path: Path) -> None:
    routes, sinks = recording(webhook_cfg("hook"))
    outbox = Outbox(SqliteStore(tmp_path / "o.db"), routes)
    count = outbox.add([job_result_event(finished(2, ERROR)), job_result_event(finished(1, OK))])
    drain(outbox)
    assert count == 2  # the results given; a resolution the store makes is not counted
    assert ids(sinks["hook"]) == ["main:2", "main:1"]
    outbox.stop()


def test_two_replicas_storing_successes_at_once_resolve_once(state_database: str) -> None:
    """A replica whose success waits on another's resolution of the same failure skips it."""
    store = PostgresStore(StateDatabaseConfig(url=state_database))
    store.add([(job_result_event(finished(1, ERROR)), ["hook"])], None)
    done: list[tuple[int, set[str]]] = []
    with psycopg.connect(state_database) as other, \
            psycopg.connect(state_database, autocommit=True) as watch:
        # The other replica resolves the failure in a transaction still open...
        other.execute("UPDATE failure SET resolved_by = 'main:3' WHERE event_id = 'main:1' "
                      "AND resolved_by = ''")
        thread = threading.Thread(target=lambda: done.append(
            store.add([(job_result_event(finished(2, OK)), ["hook"])], None)))
        thread.start()
        deadline = time.monotonic() + 30
        while watch.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone() != (1,):
            assert time.monotonic() < deadline, "the second store never waited on the row"
            time.sleep(0.05)
        other.commit()  # ...and commits while this one waits on the row
    thread.join(timeout=30)
    assert done == [(1, {"hook"})]
    assert set(store.states()) == {("main:1", "hook"), ("main:2", "hook")}  # no resolution
    store.close()
