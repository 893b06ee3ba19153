"""`job_results: log` on the ticket rules: a log ticket per client, a note per result, once."""

from dataclasses import replace

import pytest

from exporter.catalog.codes import StatusClass
from exporter.tickets.config import RedmineSinkConfig
from exporter.tickets.events import job_result_event
from exporter.tickets.sinks.tickets import TicketRules, TicketSink, describe, log_ticket
from tests.fake_sink import FakeTickets
from tests.redmine.samples import finished, restore


def log_sink(**rules: str | bool) -> tuple[TicketSink, FakeTickets]:
    """Return a ticket sink in log mode on the fake ticket system."""
    tickets = FakeTickets(lambda: 0.0)
    return TicketSink("helpdesk", tickets, TicketRules(job_results="log", **rules)), tickets


def test_each_result_is_one_note_on_its_clients_ticket() -> None:
    sink, tickets = log_sink()
    events = [job_result_event(finished(i, client=f"fd{i % 2}")) for i in range(1, 7)]
    for event in events + events:  # every event delivered twice
        sink.deliver(event)
    assert [(i.key, i.subject, i.open) for i in tickets.issues] == [
        ("log:main:fd1", "Job log: [main] fd1", True),
        ("log:main:fd0", "Job log: [main] fd0", True)]
    assert [len(i.notes) for i in tickets.issues] == [3, 3]
    first = tickets.issues[0].notes[0]
    assert first == f"{events[0].title}\n\n{describe(events[0])}"
    assert "bytes: 1234" in first and first.endswith("event: main:1")


def test_failures_get_their_own_ticket_too() -> None:
    sink, tickets = log_sink(restore_ack=True)
    failed = job_result_event(finished(1, StatusClass.ERROR))
    for event in (failed, failed, job_result_event(restore(2)), job_result_event(finished(3))):
        sink.deliver(event)
    assert [(i.key, i.open, len(i.notes)) for i in tickets.issues] == [
        ("main:1", True, 0), ("log:main:fd1", True, 3), ("main:2", True, 0)]


def test_a_ticket_per_client_per_month() -> None:
    sink, tickets = log_sink(log_issue="client_month")
    november = job_result_event(finished(1))
    december = replace(november, id="main:2", key="main:2",
                       body={**november.body, "end": "2026-12-01T00:30:00+00:00"})
    for event in (november, december, november):
        sink.deliver(event)
    assert [(i.key, i.subject, len(i.notes)) for i in tickets.issues] == [
        ("log:main:fd1:2026-11", "Job log: [main] fd1 2026-11", 1),
        ("log:main:fd1:2026-12", "Job log: [main] fd1 2026-12", 1)]


def test_a_job_without_a_client() -> None:
    event = job_result_event(finished(1, client=""))
    assert log_ticket(event, "client")[0] == "log:main:(no client)"


@pytest.mark.parametrize(("value", "problem"), [
    ({"job_results": "diary"}, "job_results"), ({"log_issue": "month"}, "log_issue")])
def test_config_errors_name_the_key(value: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RedmineSinkConfig.model_validate({
            "name": "r", "type": "redmine", "url": "http://127.0.0.1:9", "api_key_env": "PATH",
            "project": "p", "external_id_field": 1, **value})
