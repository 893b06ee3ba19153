"""Golden exposition of a hand-built state, and the render cache."""

import gzip
import math
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.catalog.codes import StatusClass
from exporter.catalog.media import Lifecycle, PoolRules, Volume
from exporter.catalog.model import CatalogModel, Check, Client, JobRecord, Pool, Run, Series
from exporter.catalog.restore_points import Coverage
from exporter.exposition.block import Exposition
from exporter.exposition.incremental import compress
from exporter.exposition.metrics import (
    HEALTH_FAMILIES,
    STATE_FAMILIES,
    Health,
    assemble,
    render_health,
    render_quiet,
    render_sla,
    render_state,
)
from exporter.exposition.sla import SlaConfig
from exporter.exposition.text import escape, number
from tests.promtext import samples

GOLDEN = Path(__file__).parent / "golden" / "exposition.prom"


def hand_state() -> CatalogModel:
    """A small state built field by field, covering every state family."""
    s = CatalogModel()
    s.clients = {1: Client("web01-fd", "9.6.7"), 2: Client('we"ird\\fd', "x\ny")}
    s.series[("web01-fd", "Backup-web01", "full")] = Series(
        last_run=Run(10, 1790000000.0, StatusClass.ERROR, 0, 0, 5.0),
        last_success=Run(9, 1789900000.0, StatusClass.WARNING, 123456789012, 4321, 1800.5,
                         encrypted=True),
        last_failure=Run(10, 1790000000.0, StatusClass.ERROR, 0, 0, 5.0),
        runs=7, failures=2, last_copy=1789900000.0, last_migration=1789000000.0,
    )
    s.series[("web01-fd", "Backup-web01", "incremental")] = Series(runs=1, failures=1, last_run=(
        Run(11, 1790001000.0, StatusClass.CANCELED, 0, 0, 0.0)))
    s.active[12] = JobRecord(12, "Backup-web01.x", "Backup-web01", "B", "I", 1, "R",
                             start_time=1790002000.0)
    s.restores[("web01-fd", "ok")] = 3
    s.pools = {"Full": Pool({"append": 2, "full": 5}, 999, 10, 5_000_000_000),
               "Empty": Pool({}, 0, 0)}
    s.media = {"Full": Lifecycle({"now": 1, "1d": 2, "7d": 4}, 1, {"Autochanger1": 3},
                                 {"Autochanger1": 1}, 2,
                                 {"append": 2, "recyclable": 1, "scratch": 3, "new": math.inf})}
    s.volumes = [Volume("Full", "full", 1789000000.0, 30 * 86400.0, True, 0, True, "Autochanger1",
                        "", name="Full-0001", bytes=5_000_000),
                 Volume("Full", "append", None, 30 * 86400.0, True, 0, True, "Autochanger1",
                        "", name="Full-0002")]
    s.pool_rules = {1: PoolRules(1, "Full", 10, 7, True, "Scratch", "Offsite"),
                    2: PoolRules(2, "Offsite", 0, 0, False, "", "")}
    s.series[("web01-fd", "Backup-web01", "full")].last_run.pool_id = 1  # type: ignore[union-attr]
    s.skipped["unknown_status"] = 1
    s.checks = {
        ("verify", "web01-fd", "Verify-web01", "verify-volume-to-catalog"): Check(
            Run(20, 1790002500.0, StatusClass.DIFFERENCES, 0, 4321, 60.0), 1789500000.0, 3, 1),
        ("admin", "", "CatalogMaintenance", ""): Check(
            Run(21, 1790002600.0, StatusClass.OK, 0, 0, 2.0), 1790002600.0, 5, 0),
        ("migration", "web01-fd", "MigrateToTape", ""): Check(
            Run(23, 1790002800.0, StatusClass.CANCELED, 0, 0, 3.0), 1789916400.0, 6, 2),
        ("consolidate", "bareos-fd", "Consolidate", ""): Check(
            Run(22, 1790002700.0, StatusClass.ERROR, 0, 0, 30.0), 1789916300.0, 4, 1),
    }
    s.coverage = {("web01-fd", "Backup-web01"): Coverage(1789000000.0, 1789900000.0, 9, 3,
                                                         456789),
                  ("web01-fd", "Backup-gone"): None}  # nothing left to restore
    return s


# A policy that sets everything, so every bacula_sla_* family has a sample.
SLA = SlaConfig.model_validate({"policies": [{
    "match": {"client": "web01-fd"}, "max_copy_lag": "1d", "max_runtime": "6h",
    "retention": "30d", "require_encryption": True, "max_verify_age": "7d",
    "max_migration_lag": "8d",
    "quiet_hours": [{"from": "08:00", "to": "18:00", "timezone": "UTC"}],
    "expected_jobs": [{"catalog": "main", "client": "web01-fd", "job": "Backup-web01-db"}],
}]})
NOON = datetime(2026, 11, 30, 12, tzinfo=UTC)  # inside the quiet hours


def golden_text() -> str:
    """Render the hand state with its SLA limits, and a fixed health block."""
    health = Health("main", True, "postgresql", 1026, "bacula", 0.25, 1790003000.0,
                    {"success": 5, "failure": 1})
    state = hand_state()
    limits, quiet = render_sla("main", state, SLA)
    return (assemble(STATE_FAMILIES, [{**render_state("main", state), **limits}])
            + assemble(HEALTH_FAMILIES, [render_health([health]), render_quiet(quiet, NOON)]))


def test_golden_exposition() -> None:
    """Exact bytes, so any change of names, labels or formatting is a visible diff."""
    text = golden_text()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
        # Rewriting is never a pass: review the diff, then run again without UPDATE_GOLDEN.
        pytest.fail(f"{GOLDEN} rewritten; review `git diff` and run without UPDATE_GOLDEN")
    assert text == GOLDEN.read_text()
    samples(text)  # and Prometheus' own parser accepts it


def test_golden_covers_every_family() -> None:
    """Every state and health family has at least one sample in the golden file."""
    found = {name for name, _ in samples(GOLDEN.read_text())}
    for family in (*STATE_FAMILIES, *HEALTH_FAMILIES):
        # Counters' samples carry the _total suffix.
        assert {family, f"{family}_total"} & found, f"{family} has no sample in {GOLDEN.name}"


def test_two_catalogs_share_each_family_block() -> None:
    """The text format wants one block per family, whatever the number of catalogs."""
    text = assemble(STATE_FAMILIES, [render_state("a", hand_state()),
                                     render_state("b", hand_state())])
    assert text.count("# TYPE bacula_job_runs_total counter") == 1
    found = samples(text, "bacula_job_runs_total")
    assert {dict(k[1])["catalog"] for k in found} == {"a", "b"}


def test_render_cache_reuses_until_a_rendering_changes() -> None:
    """The state block is rebuilt only when a catalog's rendering object changes."""
    exp = Exposition()
    lines = compress(render_state("main", hand_state()))
    first = exp.rebuild([lines])
    assert exp.rebuild([lines]) is first
    assert exp.rebuild([compress(render_state("main", hand_state()))]) is not first
    assert b"bacula_job_runs_total" in b"".join(first.plain())


def test_gzip_stream_equals_the_plain_exposition() -> None:
    """The precompressed head plus a compressed tail is one valid gzip of the plain text."""
    exp = Exposition()
    state, limits = hand_state(), render_sla("main", hand_state(), SLA)[0]
    states = [compress({**render_state("main", state), **limits}),
              compress(render_state("other", state))]
    plain = b"".join(exp.render(states, []))
    packed = b"".join(exp.render(states, [], gzip=True))
    assert gzip.decompress(packed).split(b"# HELP python_")[0] == plain.split(b"# HELP python_")[0]
    assert len(packed) < len(plain)
    # And the state part is exactly what the whole text renders to.
    whole = assemble(STATE_FAMILIES, [{**render_state("main", state), **limits},
                                      render_state("other", state)])
    assert plain.startswith(whole.encode())
    assert plain[len(whole) :].startswith(b"# HELP bacula_exporter_build_info")


def test_escaping_and_numbers() -> None:
    """Label escaping and value formatting follow the text format."""
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert [number(1.0), number(2.5), number(7), number(1e20)] == ["1", "2.5", "7", "1e+20"]


def test_every_family_is_documented() -> None:
    """docs/metrics.md (or docs/director.md for the live view) names every family we export."""
    from exporter.director.render import FAMILIES as DIRECTOR_FAMILIES

    docs = Path(__file__).resolve().parents[2] / "docs"
    text = (docs / "metrics.md").read_text() + (docs / "director.md").read_text()
    missing = [f for f in (*STATE_FAMILIES, *HEALTH_FAMILIES, *DIRECTOR_FAMILIES) if f not in text]
    assert missing == []
