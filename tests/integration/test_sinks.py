"""Sinks: ticket rules on the in-memory fake, the webhook's status codes, Apprise to a receiver."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from exporter.catalog.codes import StatusClass
from exporter.tickets.config import AppriseSinkConfig, WebhookSinkConfig
from exporter.tickets.events import AlertmanagerPayload, Event, alert_event, job_result_event
from exporter.tickets.sinks.apprise_sink import AppriseSink
from exporter.tickets.sinks.base import DeliveryError, PermanentError, RetryableError
from exporter.tickets.sinks.tickets import ACK_NOTE, SUBJECT_MAX, TicketRules, TicketSink, cut
from exporter.tickets.sinks.webhook import WebhookSink
from tests.fake_sink import FakeTickets
from tests.redmine.samples import T0, alert, finished, restore

HOUR = 3600.0


def am(**kwargs: Any) -> Event:
    """Return the event of an Alertmanager payload."""
    return alert_event(AlertmanagerPayload.model_validate(alert(**kwargs)))


FIRING = am()
RESOLVED = am(status="resolved")
REFIRING = am(starts="2026-11-18T05:00:00Z")

# (name, [(hours to advance the clock before, event)], rules, final issues: (open, notes))
CASES: list[tuple[str, list[tuple[float, Event]], TicketRules, list[tuple[bool, int]]]] = [
    ("new alert", [(0, FIRING)], TicketRules(), [(True, 0)]),
    ("repeat", [(0, FIRING), (1, FIRING), (2, am())], TicketRules(), [(True, 0)]),
    ("resolved", [(0, FIRING), (1, RESOLVED)], TicketRules(), [(False, 1)]),
    ("resolved, left open", [(0, FIRING), (1, RESOLVED)],
     TicketRules(close_on_resolve=False), [(True, 1)]),
    ("resolved without a ticket", [(0, RESOLVED)], TicketRules(), []),
    ("reopened within the window", [(0, FIRING), (1, RESOLVED), (2, REFIRING)],
     TicketRules(reopen_window=24 * HOUR), [(True, 2)]),
    ("new ticket after the window", [(0, FIRING), (1, RESOLVED), (30, REFIRING)],
     TicketRules(reopen_window=24 * HOUR), [(False, 1), (True, 0)]),
    ("job result ok", [(0, job_result_event(finished(7)))], TicketRules(), [(False, 0)]),
    ("job result failed", [(0, job_result_event(finished(8, StatusClass.ERROR)))],
     TicketRules(), [(True, 0)]),
    ("job result ok, not_ok only", [(0, job_result_event(finished(7)))],
     TicketRules(job_results="not_ok"), []),
    ("job result failed, not_ok only", [(0, job_result_event(finished(8, StatusClass.ERROR)))],
     TicketRules(job_results="not_ok"), [(True, 0)]),
    ("restore ok", [(0, job_result_event(restore(9)))], TicketRules(), [(False, 0)]),
    ("restore ok, ack required", [(0, job_result_event(restore(9)))],
     TicketRules(restore_ack=True), [(True, 0)]),
    ("restore ok, ack required, not_ok only", [(0, job_result_event(restore(9)))],
     TicketRules(job_results="not_ok", restore_ack=True), [(True, 0)]),
    ("restore failed, ack required", [(0, job_result_event(restore(9, StatusClass.ERROR)))],
     TicketRules(restore_ack=True), [(True, 0)]),
    ("backup ok, ack required", [(0, job_result_event(finished(7)))],
     TicketRules(restore_ack=True), [(False, 0)]),
    ("backup ok, ack required, not_ok only", [(0, job_result_event(finished(7)))],
     TicketRules(job_results="not_ok", restore_ack=True), []),
]


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def run(steps: list[tuple[float, Event]], rules: TicketRules, times: int) -> FakeTickets:
    """Deliver each event `times` times (a redelivery) and return the tickets."""
    clock = Clock()
    tickets = FakeTickets(clock)
    sink = TicketSink("fake", tickets, rules, clock)
    for hours, event in steps:
        clock.now = T0 + hours * HOUR
        for _ in range(times):
            sink.deliver(event)
    return tickets


@pytest.mark.parametrize("times", [1, 2], ids=["once", "redelivered"])
@pytest.mark.parametrize(("name", "steps", "rules", "final"), CASES, ids=[c[0] for c in CASES])
def test_ticket_rules(name: str, steps: list[tuple[float, Event]], rules: TicketRules,
                      final: list[tuple[bool, int]], times: int) -> None:
    tickets = run(steps, rules, times)
    assert [(i.open, len(i.notes)) for i in tickets.issues] == final


def test_job_ticket_carries_the_reason_and_the_priority() -> None:
    log = ("fd1 JobId 8: Fatal error: Network error with FD during Backup",)
    event = job_result_event(finished(8, StatusClass.ERROR, log=log))
    tickets = run([(0, event)], TicketRules(), 1)
    issue = tickets.issues[0]
    assert issue.key == "main:8"
    assert issue.severity == "critical"
    assert "Network error with FD" in issue.description
    assert "Fatal error" in issue.subject


def test_restore_ticket_stands_out_and_tells_what_the_catalog_knows() -> None:
    log = ("e2e-dir JobId 9: Start Restore Job RestoreFiles.2026-11-18_03.00.00_09",
           "e2e-dir JobId 9: Restore Client:         fd1",
           "e2e-dir JobId 9: Where:                  /srv/restore")
    event = job_result_event(restore(9, log=log))
    assert event.title.startswith("Restore: [main] fd1 RestoreFiles: Restore OK")
    assert event.job_type == "R"
    body = event.body
    assert {k: body[k] for k in ("type", "client", "job", "files", "bytes", "start", "end")} == {
        "type": "restore", "client": "fd1", "job": "RestoreFiles", "files": 5,
        "bytes": 171_000, "start": "2026-11-18T13:06:40+00:00",
        "end": "2026-11-18T13:07:10+00:00"}
    assert body["log"] == list(log)
    tickets = run([(0, event)], TicketRules(restore_ack=True), 2)
    (issue,) = tickets.issues
    assert issue.open and issue.subject.startswith("Restore: ")
    assert issue.description.startswith("Restore on client fd1 by job RestoreFiles: 5 files")
    assert "The restore's log lines:" in issue.description
    assert "Where:                  /srv/restore" in issue.description
    assert ACK_NOTE in issue.description
    assert ACK_NOTE not in run([(0, event)], TicketRules(), 1).issues[0].description
    # A backup keeps its level in the title and no prefix.
    assert not job_result_event(finished(7)).title.startswith("Restore")


def test_subject_is_cut_to_255() -> None:
    event = am(group={"alertname": "X" * 400})
    tickets = run([(0, event)], TicketRules(), 1)
    assert len(tickets.issues[0].subject) == SUBJECT_MAX
    assert cut("abc", 10) == "abc"


# --- webhook --------------------------------------------------------------------------------

WEBHOOK_CASES = [
    (200, None), (201, None), (204, None),
    (408, RetryableError), (429, RetryableError), (500, RetryableError), (503, RetryableError),
    (400, PermanentError), (401, PermanentError), (404, PermanentError), (422, PermanentError),
]


def webhook(tmp_path: Path, handler: Any) -> WebhookSink:
    """Return a webhook sink over a mock transport, with a secret header from a file."""
    secret = tmp_path / "headers"
    secret.write_text("Authorization: Bearer s3cr3t-token\n")
    cfg = WebhookSinkConfig(name="hook", type="webhook", url="http://127.0.0.1:9/hook",
                            headers={"X-Source": "bacula"}, headers_file=secret)
    return WebhookSink(cfg, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(("code", "error"), WEBHOOK_CASES)
def test_webhook_status_codes(tmp_path: Path, code: int, error: type[DeliveryError] | None
                              ) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(code, text="nope")

    sink = webhook(tmp_path, handler)
    event = job_result_event(finished(3))
    if error is None:
        sink.deliver(event)
    else:
        with pytest.raises(error) as info:
            sink.deliver(event)
        assert "s3cr3t" not in str(info.value)
    request = seen[0]
    assert request.headers["Idempotency-Key"] == "main:3"
    assert request.headers["Authorization"] == "Bearer s3cr3t-token"
    assert request.headers["X-Source"] == "bacula"
    body = json.loads(request.content)
    assert body["id"] == "main:3"
    assert body["body"]["status"] == "ok"
    sink.close()


def test_webhook_connection_error_retries(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sink = webhook(tmp_path, handler)
    with pytest.raises(RetryableError) as info:
        sink.deliver(job_result_event(finished(3)))
    assert "127.0.0.1" not in str(info.value)


def test_webhook_body_template_fills_json_values_safely(tmp_path: Path) -> None:
    """A template decides the shape; values are JSON-encoded, so quotes cannot break out."""
    seen: list[httpx.Request] = []
    template = ('{"text": ${title}, "host": ${client}, "bytes": ${bytes}, "log": ${log}, '
                '"missing": ${no_such_name}, "id": ${id}}')
    cfg = WebhookSinkConfig(name="hook", type="webhook", url="http://127.0.0.1:9/hook",
                            body_template=template)
    sink = WebhookSink(cfg, transport=httpx.MockTransport(
        lambda request: seen.append(request) or httpx.Response(200)))
    event = job_result_event(finished(3))
    event.body["client"] = 'evil", "injected": "1'
    sink.deliver(event)
    body = json.loads(seen[0].content)
    assert body == {"text": event.title, "host": 'evil", "injected": "1',
                    "bytes": event.body["bytes"], "log": event.body["log"], "missing": None,
                    "id": "main:3"}
    sink.close()


@pytest.mark.parametrize(("template", "problem"), [
    ('{"a": ${title}', "not JSON once filled"),
    ('{"a": "$"}', "bad placeholder"),
])
def test_webhook_body_template_is_checked_at_load(template: str, problem: str) -> None:
    """A template that cannot give JSON is a config error naming the key."""
    with pytest.raises(ValidationError) as info:
        WebhookSinkConfig(name="hook", type="webhook", url="http://127.0.0.1:9/hook",
                          body_template=template)
    assert problem in str(info.value) and "body_template" in str(info.value)


# --- apprise ----------------------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    """Collects POSTed JSON bodies; answers with the server's `code`."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        server: Any = self.server
        server.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(server.code)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A local HTTP server on loopback that records what Apprise sends."""
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.bodies, server.code = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def apprise_sink(tmp_path: Path, port: int) -> AppriseSink:
    """Return an Apprise sink whose URL (a secret) points at the receiver."""
    urls = tmp_path / "apprise"
    urls.write_text(f"json://127.0.0.1:{port}/page\n")
    return AppriseSink(AppriseSinkConfig(name="pager", type="apprise", urls_file=urls))


def test_apprise_page_arrives(tmp_path: Path, receiver: Any) -> None:
    sink = apprise_sink(tmp_path, receiver.server_address[1])
    sink.deliver(am())
    assert len(receiver.bodies) == 1
    page = receiver.bodies[0]
    assert page["title"].startswith("BaculaJobFailed")
    assert "FIRING" in page["message"]
    assert page["type"] == "failure"


def test_apprise_failure_is_retried(tmp_path: Path, receiver: Any) -> None:
    receiver.code = 500
    sink = apprise_sink(tmp_path, receiver.server_address[1])
    with pytest.raises(RetryableError) as info:
        sink.deliver(am())
    assert "127.0.0.1" not in str(info.value)
