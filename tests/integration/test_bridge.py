"""The Alertmanager receiver: auth, limits, codes, identity; via the outbox to tickets."""

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, CollectorRegistry

from exporter.catalog.codes import StatusClass
from exporter.tickets.bridge import Bridge, build_bridge
from exporter.tickets.config import (
    AlertmanagerConfig,
    AppriseSinkConfig,
    BridgeKeys,
    RedmineSinkConfig,
)
from exporter.tickets.events import AlertmanagerPayload, alert_event, group_identity
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.receiver import router
from exporter.tickets.sinks.tickets import TicketRules, TicketSink
from exporter.tickets.store import SqliteStore
from tests.fake_sink import FakeTickets
from tests.redmine.samples import T0, alert, finished

TOKEN = "t0k3n-for-tests"
HOUR = 3600.0


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, auth: dict[str, Any] | str, max_body: int = 1 << 20,
         rules: TicketRules | None = None) -> tuple[TestClient, Outbox, FakeTickets, Clock]:
    """Return a client of an app with the receiver, its outbox and the fake tickets behind it."""
    clock = Clock()
    tickets = FakeTickets(clock)
    sink = TicketSink("tickets", tickets, rules or TicketRules(), clock)
    outbox = Outbox(SqliteStore(tmp_path / "outbox.sqlite3"), [Route(sink)])
    secret = tmp_path / "secret"
    secret.write_text(TOKEN + "\n")
    if isinstance(auth, dict):
        key = "token_file" if auth["type"] == "bearer" else "password_file"
        auth = {**auth, key: str(secret)}
    cfg = AlertmanagerConfig.model_validate({"auth": auth, "max_body_bytes": max_body})
    app = FastAPI()
    app.state.bridge = Bridge(outbox, cfg)
    app.include_router(router)
    return TestClient(app), outbox, tickets, clock


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def basic(user: str, password: str) -> dict[str, str]:
    """Return a basic-auth header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def requests_with(code: int) -> float:
    """Return the receiver's request counter for one code."""
    value = REGISTRY.get_sample_value(
        "bacula_exporter_alertmanager_requests_total", {"code": str(code)})
    return value or 0.0


AUTH_CASES = [
    ("bearer ok", {"type": "bearer"}, BEARER, 200),
    ("bearer wrong", {"type": "bearer"}, {"Authorization": "Bearer nope"}, 401),
    ("bearer missing", {"type": "bearer"}, {}, 401),
    ("bearer as basic", {"type": "bearer"}, basic("am", TOKEN), 401),
    ("basic ok", {"type": "basic", "username": "am"}, basic("am", TOKEN), 200),
    ("basic wrong user", {"type": "basic", "username": "am"}, basic("x", TOKEN), 401),
    ("basic wrong password", {"type": "basic", "username": "am"}, basic("am", "x"), 401),
    ("basic garbage", {"type": "basic", "username": "am"}, {"Authorization": "Basic %%%"}, 401),
    ("none", "none", {}, 200),
]


@pytest.mark.parametrize(("name", "auth", "headers", "code"), AUTH_CASES,
                         ids=[c[0] for c in AUTH_CASES])
def test_auth(tmp_path: Path, name: str, auth: Any, headers: dict[str, str], code: int) -> None:
    client, outbox, _, _ = make(tmp_path, auth)
    before = requests_with(code)
    response = client.post("/alertmanager", json=alert(), headers=headers)
    assert response.status_code == code
    assert requests_with(code) - before == 1
    assert len(outbox.store.states()) == (1 if code == 200 else 0)
    assert TOKEN not in response.text


@pytest.mark.parametrize(("body", "code"), [
    (b"{not json", 400),
    (json.dumps({"version": "3", "alerts": []}).encode(), 422),
    (json.dumps({**alert(), "alerts": []}).encode(), 422),
    (json.dumps({**alert(), "status": "burning"}).encode(), 422),
    (json.dumps(alert()).ljust(5000).encode(), 413),
])
def test_bad_payloads(tmp_path: Path, body: bytes, code: int) -> None:
    client, outbox, _, _ = make(tmp_path, {"type": "bearer"}, max_body=4096)
    response = client.post("/alertmanager", content=body,
                           headers={**BEARER, "Content-Type": "application/json"})
    assert response.status_code == code
    assert "error" in response.json()
    assert outbox.store.states() == {}


def test_503_when_the_outbox_cannot_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    client, outbox, _, _ = make(tmp_path, {"type": "bearer"})

    def broken(*args: Any) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(outbox, "add", broken)
    response = client.post("/alertmanager", json=alert(), headers=BEARER)
    assert response.status_code == 503
    assert "error" in response.json()


def test_identity_ignores_group_key_and_label_order() -> None:
    a = alert_event(AlertmanagerPayload.model_validate(alert(group_key="route-1")))
    b = alert_event(AlertmanagerPayload.model_validate(alert(group_key="route-2-edited")))
    assert a.id == b.id and a.key == b.key
    assert group_identity("r", {"a": "1", "b": "2"}) == group_identity("r", {"b": "2", "a": "1"})
    assert group_identity("r", {"a": "1"}) != group_identity("other", {"a": "1"})


# (name, [(hours to advance the clock, payload)], final tickets: (open, notes))
TABLE: list[tuple[str, list[tuple[float, dict[str, Any]]], list[tuple[bool, int]]]] = [
    ("new alert", [(0, alert())], [(True, 0)]),
    ("repeat and HA duplicate", [(0, alert()), (0, alert()), (4, alert())], [(True, 0)]),
    ("resolved", [(0, alert()), (1, alert(status="resolved"))], [(False, 1)]),
    ("reopened within the window",
     [(0, alert()), (1, alert(status="resolved")), (3, alert(starts="2026-11-18T04:00:00Z"))],
     [(True, 2)]),
    ("new ticket after the window",
     [(0, alert()), (1, alert(status="resolved")), (50, alert(starts="2026-11-20T03:00:00Z"))],
     [(False, 1), (True, 0)]),
    ("two groups, two tickets",
     [(0, alert()), (0, alert(group={"alertname": "BaculaJobFailed", "client": "fd2"}))],
     [(True, 0), (True, 0)]),
]


@pytest.mark.parametrize(("name", "steps", "final"), TABLE, ids=[t[0] for t in TABLE])
def test_notifications_become_tickets(tmp_path: Path, name: str,
                                      steps: list[tuple[float, dict[str, Any]]],
                                      final: list[tuple[bool, int]]) -> None:
    client, outbox, tickets, clock = make(tmp_path, {"type": "bearer"})
    for hours, payload in steps:
        clock.now = T0 + hours * HOUR
        response = client.post("/alertmanager", json=payload, headers=BEARER)
        assert response.status_code == 200
        outbox.deliver_due("tickets")
    assert [(i.open, len(i.notes)) for i in tickets.issues] == final


@pytest.mark.parametrize(("status", "is_open"), [
    (StatusClass.OK, False), (StatusClass.WARNING, True), (StatusClass.ERROR, True),
    (StatusClass.CANCELED, True),
])
def test_job_results_become_tickets(tmp_path: Path, status: StatusClass, is_open: bool) -> None:
    _, outbox, tickets, _ = make(tmp_path, "none")
    outbox.listener("main", [finished(12, status)], 12)
    outbox.listener("main", [finished(12, status)], 12)  # handed over again after a restart
    outbox.deliver_due("tickets")
    assert [(i.key, i.open) for i in tickets.issues] == [("main:12", is_open)]


def test_build_bridge_from_the_config_keys(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k")
    settings = BridgeKeys.model_validate({
        "state_dir": str(tmp_path / "state"),
        "sinks": [{"name": "helpdesk", "type": "redmine", "url": "http://127.0.0.1:1",
                   "api_key_file": str(key), "project": "backups", "external_id_field": 1}],
        "alertmanager": {"auth": "none"},
        "backfill": "2d",
    })
    registry = CollectorRegistry()
    bridge = build_bridge(settings, registry)
    assert bridge is not None and bridge.alertmanager is not None
    assert settings.backfill == 2 * 86400
    assert (tmp_path / "state" / "outbox.sqlite3").exists()
    assert build_bridge(BridgeKeys()) is None
    # The bridge's metrics are on the registry it was given, not the process's.
    app = FastAPI()
    app.state.bridge = bridge
    app.include_router(router)
    before = requests_with(200)
    assert TestClient(app).post("/alertmanager", json=alert()).status_code == 200
    assert registry.get_sample_value("bacula_exporter_alertmanager_requests_total",
                                     {"code": "200"}) == 1
    assert registry.get_sample_value("bacula_exporter_outbox_pending",
                                     {"sink": "helpdesk"}) == 1
    assert requests_with(200) == before
    bridge.outbox.store.close()


def settings(tmp_path: Path, **keys: Any) -> BridgeKeys:
    """Validate the bridge keys of a config."""
    return BridgeKeys.model_validate(keys)


@pytest.mark.parametrize(("keys", "message"), [
    ({"alertmanager": {}}, "auth"),
    ({"alertmanager": {"auth": "off"}}, "auth"),
    ({"alertmanager": {"auth": {"type": "bearer", "token_file": "/nonexistent"}}},
     "cannot read"),
    ({"sinks": [{"name": "h", "type": "redmine", "url": "http://127.0.0.1:1", "project": "p",
                 "external_id_field": 1}]}, "exactly one of api_key_file or api_key_env"),
    ({"sinks": [{"name": "h", "type": "redmine", "url": "http://127.0.0.1:1", "project": "p",
                 "external_id_field": 1, "api_key_env": "NO_SUCH_VARIABLE_HERE"}]}, "not set"),
    ({"sinks": [{"name": "h", "type": "webhook", "url": "ftp://x"}]}, "url"),
    ({"sinks": [{"name": "h", "type": "pager", "url": "http://x"}]}, "type"),
    ({"sinks": [{"name": "h", "type": "webhook", "url": "http://x", "events": ["backup"]}]},
     "events"),
    ({"sinks": [{"name": "h", "type": "webhook", "url": "http://x", "colour": "red"}]},
     "colour"),
    ({"backfill": "soon"}, "backfill"),
    *(({"sinks": [{"name": "h", "type": "redmine", "url": "http://127.0.0.1:1", "project": "p",
                   "external_id_field": 1, "api_key_env": "PATH", "restore_ack": True,
                   **narrow}]}, "restore_ack needs")
      for narrow in ({"events": ["alert"]}, {"job_types": ["B", "C"]},
                     {"status": ["error", "warning"]})),
])
def test_bad_bridge_config(tmp_path: Path, keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(tmp_path, **keys)


def test_restore_ack_reaches_the_ticket_rules(tmp_path: Path) -> None:
    from exporter.tickets.sinks.redmine import redmine_sink

    base = {"name": "h", "type": "redmine", "url": "http://127.0.0.1:1", "project": "p",
            "external_id_field": 1, "api_key_env": "PATH"}
    plain, acked, restores = settings(tmp_path, sinks=[
        base, {**base, "name": "a", "restore_ack": True},
        {**base, "name": "r", "restore_ack": True, "job_types": ["R"], "status": ["ok"]},
    ]).sinks
    assert isinstance(plain, RedmineSinkConfig) and not plain.restore_ack
    assert isinstance(acked, RedmineSinkConfig) and isinstance(restores, RedmineSinkConfig)
    for cfg, expected in ((plain, False), (acked, True), (restores, True)):
        sink = redmine_sink(cfg)
        assert sink.rules.restore_ack is expected
        sink.close()


def test_cross_checks(tmp_path: Path) -> None:
    from exporter.tickets.config import bridge_problems

    hook = {"name": "h", "type": "webhook", "url": "http://x", "events": ["job_result"]}
    config = settings(tmp_path, sinks=[hook, hook], alertmanager={"auth": "none"})
    assert bridge_problems(None, None, config.sinks, config.alertmanager) == [
        "sinks.1.name: sink name 'h' is used twice",
        "state_dir: sinks and alertmanager need a state_dir (or a state_database) for the "
        "outbox",
        "alertmanager: no sink takes `alert` events",
    ]
    both = settings(tmp_path, sinks=[hook], state_dir=str(tmp_path),
                    state_database={"url": "postgresql://h/state"})
    assert bridge_problems(both.state_dir, both.state_database, both.sinks, None) == [
        "state_database: give state_dir or state_database, not both"]
    assert bridge_problems(None, both.state_database, both.sinks, None) == []


def test_secrets_never_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    urls = tmp_path / "urls"
    urls.write_text("ntfy://user:hunter2@ntfy.invalid/topic\n# a comment\n")
    monkeypatch.setenv("REDMINE_KEY", "hunter3")
    config = settings(tmp_path, sinks=[
        {"name": "p", "type": "apprise", "urls_file": str(urls)},
        {"name": "r", "type": "redmine", "url": "http://127.0.0.1:1", "project": "p",
         "external_id_field": 1, "api_key_env": "REDMINE_KEY"},
    ])
    pager, helpdesk = config.sinks
    assert isinstance(pager, AppriseSinkConfig) and isinstance(helpdesk, RedmineSinkConfig)
    assert [u.get() for u in pager.urls()] == ["ntfy://user:hunter2@ntfy.invalid/topic"]
    assert "hunter" not in repr(pager.urls()) + repr(config)
    assert helpdesk.api_key().get() == "hunter3"
    assert str(helpdesk.api_key()) == "<secret>"
