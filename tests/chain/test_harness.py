"""The chain harness itself: real Prometheus and Alertmanager over a stand-in exposition.

The real chain test (tests/chain, with the exporter over a real catalog) reuses this harness;
here a tiny HTTP target plays the exporter, so the rules' wiring (expressions, templates,
routing, resolve) is proven against the real daemons even before the exporter runs.
"""

import time
from pathlib import Path

import pytest

from tests.chain.harness import (
    Alertmanager,
    Exposition,
    Prometheus,
    Receiver,
    firing,
    require_binaries,
    rule_files,
    running,
    shorten_for,
)

pytestmark = pytest.mark.integration
DAY = 86400


class Catalog:
    """What the stand-in exporter shows: one client past its SLA, one failing, one healthy."""

    def __init__(self) -> None:
        self.fixed = False

    def render(self) -> str:
        """Return the exposition as the exporter would, with times relative to now."""
        now = time.time()
        late_success = now - 60 if self.fixed else now - 10 * DAY
        failing_status = "ok" if self.fixed else "error"
        failing_run = now - 60 if self.fixed else now - 600
        failing_success = now - 60 if self.fixed else now - 2 * 3600
        key = 'catalog="main",client="{c}",job="{c}-files",level="{lv}"'
        late = key.format(c="late-fd", lv="full")
        failing = key.format(c="failing-fd", lv="incremental")
        good = key.format(c="good-fd", lv="full")
        lines = [
            'bacula_catalog_up{catalog="main"} 1',
            f'bacula_catalog_last_poll_success_timestamp_seconds{{catalog="main"}} {now}',
            *(f'bacula_client_info{{catalog="main",client="{c}",uname="13.0.4"}} 1'
              for c in ("late-fd", "failing-fd", "good-fd")),
            f"bacula_job_last_success_timestamp_seconds{{{late}}} {late_success}",
            f"bacula_job_last_run_timestamp_seconds{{{late}}} {late_success}",
            f'bacula_job_last_run_status{{{late},status="ok"}} 1',
            f"bacula_sla_max_age_seconds{{{late}}} {7 * DAY}",
            f"bacula_job_last_success_timestamp_seconds{{{failing}}} {failing_success}",
            f"bacula_job_last_run_timestamp_seconds{{{failing}}} {failing_run}",
            f'bacula_job_last_run_status{{{failing},status="{failing_status}"}} 1',
            f"bacula_sla_max_age_seconds{{{failing}}} {26 * 3600}",
            f"bacula_job_last_success_timestamp_seconds{{{good}}} {now - 3600}",
            f"bacula_job_last_run_timestamp_seconds{{{good}}} {now - 3600}",
            f'bacula_job_last_run_status{{{good},status="ok"}} 1',
            f"bacula_sla_max_age_seconds{{{good}}} {7 * DAY}",
        ]
        return "\n".join(lines) + "\n"


def test_alerts_fire_reach_the_receiver_and_resolve(tmp_path: Path) -> None:
    require_binaries()
    catalog = Catalog()
    rules = shorten_for(rule_files(), tmp_path)
    with Receiver() as receiver, Exposition(catalog.render) as target:
        am = Alertmanager(tmp_path / "am", receiver.url)
        prom = Prometheus(tmp_path / "prom", [target.target], rules, alertmanager=am.url)
        with running(am, prom):
            started = time.monotonic()
            got = receiver.wait_for(
                lambda r: {"late-fd", "failing-fd"} <= set(firing(r)), 60,
                "BaculaBackupTooOld and BaculaJobFailed at the receiver",
            )
            fired_after = time.monotonic() - started
            alerts = firing(receiver)
            assert alerts["late-fd"]["labels"] == {
                "alertname": "BaculaBackupTooOld", "severity": "critical", "catalog": "main",
                "client": "late-fd", "job": "late-fd-files", "level": "full",
            }
            assert "the SLA allows 7d 0h 0m 0s" in alerts["late-fd"]["annotations"]["description"]
            assert alerts["failing-fd"]["labels"]["alertname"] == "BaculaJobFailed"
            assert alerts["failing-fd"]["labels"]["status"] == "error"
            assert "good-fd" not in {a["labels"].get("client") for a in receiver.alerts()}, got

            catalog.fixed = True
            started = time.monotonic()
            receiver.wait_for(
                lambda r: not {"late-fd", "failing-fd"} & set(firing(r)), 60,
                "both alerts to resolve at the receiver",
            )
            resolved_after = time.monotonic() - started
            # Alerts without a client (the exporter's own health) may come and go meanwhile.
            statuses = {a["labels"]["client"]: a["status"] for a in receiver.latest().values()
                        if "client" in a["labels"]}
            assert statuses == {"late-fd": "resolved", "failing-fd": "resolved"}
            assert not [a for a in prom.alerts() if a["state"] == "firing"]
    print(f"fired after {fired_after:.1f}s, resolved after {resolved_after:.1f}s")
