"""The e-mail sink against a real MTA (Debian's exim4 on loopback, delivering to Maildirs)."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.catalog.codes import StatusClass
from exporter.config import ConfigError, parse_config
from exporter.tickets.config import EmailSinkConfig
from exporter.tickets.events import AlertmanagerPayload, alert_event, job_result_event
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.sinks.base import PermanentError, RetryableError
from exporter.tickets.sinks.mail import EmailSink, message_id
from exporter.tickets.store import SqliteStore
from tests.certs import Pair, authority, issue
from tests.mta.harness import DOMAIN, Exim, MtaError, installed
from tests.redmine.samples import alert, finished

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
IN_CI = bool(os.environ.get("CI"))
PASSWORD = "s3cret-smtp-pass"
RT, COPY = f"rt@{DOMAIN}", f"copy@{DOMAIN}"
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    """A test CA with a server certificate for 127.0.0.1, and a CA nobody uses."""
    folder = tmp_path_factory.mktemp("certs")
    ca = authority(folder, "ca")
    return {"ca": ca, "server": issue(ca, folder, "mta", server=True),
            "other": authority(folder, "other")}


@pytest.fixture
def mta(certs: dict[str, Pair]) -> Iterator[Exim]:
    """A fresh exim on loopback; missing exim fails in CI and skips elsewhere."""
    try:
        if not installed():
            subprocess.run([str(ROOT / "scripts" / "install-mta")], check=True, timeout=900)
        server = Exim(certs["server"], PASSWORD)
        server.start()
    except (MtaError, OSError, subprocess.SubprocessError) as exc:
        if IN_CI:
            raise
        pytest.skip(f"no MTA here: {exc}")
    yield server
    server.cleanup()


def sink_cfg(mta: Exim, certs: dict[str, Pair], tmp_path: Path, **extra: Any) -> EmailSinkConfig:
    """Return an e-mail sink's config: STARTTLS with the test CA and a password file."""
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    return EmailSinkConfig.model_validate({
        "name": "mail", "type": "email", "host": "127.0.0.1", "port": mta.port,
        "security": "starttls", "ca_file": str(certs["ca"].cert), "username": "bacula",
        "password_file": str(secret), "from": "bacula@exporter.test", "to": [RT], **extra})


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait until a condition holds, bounded in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_starttls_login_cc_and_html(mta: Exim, certs: dict[str, Pair], tmp_path: Path) -> None:
    cfg = sink_cfg(mta, certs, tmp_path, cc=[COPY], html=True)
    failed = job_result_event(finished(7, StatusClass.ERROR, log=("fd1: Fatal error: <refused>",)))
    EmailSink(cfg).deliver(failed)
    wait_for(lambda: len(mta.mailbox("rt")) == 1 and len(mta.mailbox("copy")) == 1)
    (got,) = mta.mailbox("rt")
    assert got["Message-ID"] == message_id("main:7", "exporter.test")
    assert got["Subject"] == failed.title
    assert (got["From"], got["To"], got["Cc"]) == ("bacula@exporter.test", RT, COPY)
    assert got["X-Bacula-Event-Id"] == "main:7" and got["In-Reply-To"] is None
    text = got.get_body(("plain",)).get_content()
    assert "bytes: 1234" in text and "fd1: Fatal error: <refused>" in text
    assert "event: main:7" in text.splitlines()
    page = got.get_body(("html",)).get_content()
    assert "<th align=\"left\">bytes</th><td>1234</td>" in page
    assert "Fatal error: &lt;refused&gt;" in page
    assert "esmtpsa" in mta.log_tail() and "A=plain:bacula" in mta.log_tail()  # TLS, logged in


def test_tls_on_connect(mta: Exim, certs: dict[str, Pair], tmp_path: Path) -> None:
    cfg = sink_cfg(mta, certs, tmp_path, security="tls", port=mta.tls_port)
    EmailSink(cfg).deliver(job_result_event(finished(8)))
    wait_for(lambda: len(mta.mailbox("rt")) == 1)


def test_an_unknown_ca_is_refused_and_retried(mta: Exim, certs: dict[str, Pair],
                                              tmp_path: Path) -> None:
    cfg = sink_cfg(mta, certs, tmp_path, ca_file=str(certs["other"].cert))
    with pytest.raises(RetryableError, match="SSLCertVerificationError"):
        EmailSink(cfg).deliver(job_result_event(finished(9)))


def test_a_wrong_password_is_retried_and_never_shown(mta: Exim, certs: dict[str, Pair],
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BX_TEST_SMTP", "not-" + PASSWORD)
    cfg = sink_cfg(mta, certs, tmp_path, password_env="BX_TEST_SMTP", password_file=None)
    with pytest.raises(RetryableError) as caught:
        EmailSink(cfg).deliver(job_result_event(finished(10)))
    assert "login refused (535)" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_refused_recipient_is_permanent(mta: Exim, certs: dict[str, Pair],
                                          tmp_path: Path) -> None:
    cfg = sink_cfg(mta, certs, tmp_path, to=["someone@elsewhere.test"])
    with pytest.raises(PermanentError, match="recipients refused"):
        EmailSink(cfg).deliver(job_result_event(finished(11)))


@pytest.mark.parametrize(("change", "named"), [
    ({"from": "nobody"}, "sinks.0.email.from: String should match pattern"),
    ({"username": "u"}, "sinks.0.email: username needs exactly one of password_file"),
    ({"security": "ssl"}, "sinks.0.email.security: Input should be 'starttls', 'tls' or 'none'"),
    ({"to": []}, "sinks.0.email.to: List should have at least 1 item"),
    ({"username": "u", "password_env": "PATH", "security": "none"},
     "sinks.0.email: username needs security starttls or tls"),
])
def test_config_errors_name_the_key(change: dict[str, Any], named: str) -> None:
    sink = {"name": "m", "type": "email", "host": "h", "from": "a@b.test", "to": [RT], **change}
    with pytest.raises(ConfigError) as caught:
        parse_config({"catalogs": [{"name": "c", "url": "sqlite:////tmp/x.db",
                                    "timezone": "UTC"}], "state_dir": "/tmp", "sinks": [sink]})
    assert any(p.startswith(named) for p in caught.value.problems), caught.value.problems


def test_resolutions_and_refires_thread_to_the_first_message(mta: Exim, certs: dict[str, Pair],
                                                             tmp_path: Path) -> None:
    sink = EmailSink(sink_cfg(mta, certs, tmp_path))
    outbox = Outbox(SqliteStore(tmp_path / "o.db"), [Route(sink)])
    outbox.listener("main", [finished(1, StatusClass.ERROR), finished(2)], 2)
    for payload in (alert(), alert(status="resolved"), alert(starts="2026-11-18T05:00:00Z")):
        outbox.add([alert_event(AlertmanagerPayload.model_validate(payload))])
    while outbox.deliver_due("mail"):
        pass
    wait_for(lambda: len(mta.mailbox("rt")) == 6)
    got = {m["X-Bacula-Event-Id"]: m for m in mta.mailbox("rt")}
    first_alert = alert_event(AlertmanagerPayload.model_validate(alert()))
    threads = {event_id: (m["In-Reply-To"], m["References"]) for event_id, m in got.items()}
    failure_mid = message_id("main:1", "exporter.test")
    alert_mid = message_id(first_alert.id, "exporter.test")
    assert threads == {
        "main:1": (None, None), "main:2": (None, None),
        "main:1:resolved-by:2": (failure_mid, failure_mid),
        first_alert.id: (None, None),
        **{i: (alert_mid, alert_mid) for i in got if i.startswith("am:") and i != first_alert.id},
    }
    assert got["main:1"]["Message-ID"] == failure_mid
    outbox.stop()


def test_100_results_through_5_sigkills(mta: Exim, certs: dict[str, Pair],
                                        tmp_path: Path) -> None:
    cfg = sink_cfg(mta, certs, tmp_path)
    sink_json = tmp_path / "sink.json"
    sink_json.write_text(json.dumps(cfg.model_dump(mode="json", by_alias=True)))
    outbox_file = tmp_path / "outbox.sqlite3"
    queued = Outbox(SqliteStore(outbox_file), [Route(EmailSink(cfg))])
    # A hundred results of twenty jobs, some failing: resolutions come on top of them.
    jobs = [finished(i, StatusClass.ERROR if i % 7 == 0 else StatusClass.OK, catalog="storm",
                     client=f"fd{i % 20}") for i in range(1, 101)]
    queued.listener("storm", jobs, 100)
    expected = set(queued.store.states())
    command = [sys.executable, "-m", "tests.mta.deliver", str(sink_json), str(outbox_file)]
    codes = []
    # Each process dies right after the MTA took its N-th message, before the outbox knew.
    for kill in ("9", "17", "4", "23", "11", ""):
        run = subprocess.run(command, cwd=ROOT, env={**os.environ, "KILL_AFTER_DELIVERIES": kill},
                             capture_output=True, timeout=300, check=False)
        codes.append(run.returncode)
    assert codes == [-signal.SIGKILL] * 5 + [0]
    wait_for(lambda: len(mta.mailbox("rt")) >= len(expected) + 5 and mta.queued() == 0)
    arrived = mta.mailbox("rt")
    by_event: dict[str, set[str]] = {}
    for message in arrived:
        by_event.setdefault(message["X-Bacula-Event-Id"], set()).add(message["Message-ID"])
    copies = Counter(m["Message-ID"] for m in arrived)
    figures = {"events": len(expected), "messages": len(arrived), "sigkills": 5,
               "arrived_twice": sum(n == 2 for n in copies.values()),
               "arrived_more": sum(n > 2 for n in copies.values())}
    log.warning("e-mail under 5 SIGKILLs: %s", figures)
    print(f"\ne-mail under 5 SIGKILLs: {figures}")
    assert set(by_event) == {event_id for event_id, _ in expected}  # every message arrived
    assert all(len(ids) == 1 for ids in by_event.values())  # a redelivery: the same Message-ID
    assert {e: ids.pop() for e, ids in by_event.items()} == {
        e: message_id(e, "exporter.test") for e in by_event}
    assert figures["arrived_twice"] == 5  # exactly the five messages sent when each kill came
    assert figures["arrived_more"] == 0
    assert Counter(queued.store.states().values()) == {"done": len(expected)}
