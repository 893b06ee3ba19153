"""The benchmarks still run: each in its smallest form, checked for what it reports, not for speed.

Speed is read from their figures by people (bench/README.md); a benchmark that rots unnoticed
would leave the next measurement to fix it first.
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def bench(*args: str) -> list[dict[str, object]]:
    """Run a bench module; return the JSON objects it printed (one per line or one in all)."""
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = done.stdout.strip()
    try:
        return [json.loads(text)]
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_catalog_bench_smoke() -> None:
    (result,) = bench("bench.run", "--smoke")
    assert result["jobs"] >= 100_000 and result["tracked_series"] > 0
    for server in ("server_cached", "server_polling"):
        figures = result[server]
        assert isinstance(figures, dict) and figures["series"] > 0 and figures["scrapes"] > 0


def test_alertmanager_load_smoke(state_database: str) -> None:
    (result,) = bench("bench.load_alertmanager", "--rate", "40", "--duration", "2",
                      "--scrapers", "1", "--state-database", state_database,
                      "--replicas", "2")
    assert result["accepted"] == result["sent"] == 80
    assert result["lost"] == 0 and result["failed"] == 0 and result["webhook_redeliveries"] == 0


def test_outbox_backlog_smoke(state_database: str) -> None:
    results = bench("bench.outbox_backlog", "--backlog", "300", "--claims", "50",
                    "--state-database", state_database)
    assert [r["store"] for r in results] == ["sqlite", "postgresql"]


def test_auth_scrape_smoke() -> None:
    (result,) = bench("bench.auth_scrape", "--scrapes", "20", "--flood", "8", "--cost", "4")
    assert result["basic_auth_cold_ms"] > 0
    for case in ("no_auth", "basic_auth_warm"):
        figures = result[case]
        assert isinstance(figures, dict) and figures["p99_ms"] >= figures["p50_ms"] > 0
    flood = result["flood"]
    assert isinstance(flood, dict) and flood["valid_scrapes"] > 0
    assert flood["wrong_known_user_mean_ms"] > 0 and flood["wrong_unknown_user_mean_ms"] > 0


def test_director_poll_bench_smoke() -> None:
    """Both releases' Directors, two polls each setting: the figures are there and plausible."""
    from tests.e2e.bacula import RELEASES, missing

    reasons = [r for r in map(missing, RELEASES) if r]
    if reasons:
        pytest.skip(reasons[0])
    results = bench("bench.director_poll", "--polls", "2")
    assert [(r["release"], r["storages"] == 1) for r in results] == [
        ("9.6", False), ("9.6", True), ("15", False), ("15", True)]
    for result in results:
        # The two WaitMedia runs wait (BackupGood may have finished already).
        assert result["jobs_listed"] >= 2 and result["devices"] >= 3
        wall = result["wall_ms"]
        assert isinstance(wall, dict) and wall["p90"] >= wall["median"] > 0


def test_poll_change_smoke() -> None:
    (result,) = bench("bench.poll_change", "--jobs", "100000", "--polls", "2", "--new", "10")
    assert result["polls"] == 2 and result["jobs"] >= 100_000
    assert result["end_to_end_ms"] >= result["read_and_render_ms"] > 0


def test_ticket_latency_smoke() -> None:
    (result,) = bench("bench.ticket_latency", "--jobs", "10", "--duration", "1",
                      "--poll-interval", "1")
    assert result["delivered"] == result["jobs"] == 10 and result["posts"] == 10
    delay = result["delay_ms"]
    assert isinstance(delay, dict) and delay["max"] >= delay["p99"] >= delay["p50"] > 0


def test_many_catalogs_smoke() -> None:
    (result,) = bench("bench.many_catalogs", "--catalogs", "2", "--jobs", "100000",
                      "--limit", "2", "--polls", "4")
    assert result["catalogs"] == 2 and result["series"] > 0
    assert isinstance(result["poll_one_catalog"], dict)
    assert result["poll_one_catalog"]["poll100_median_ms"] > 0
    for case in ("scrape_1", "scrape_10", "scrape_plain"):
        figures = result[case]
        assert isinstance(figures, dict) and figures["scrapes"] > 0
