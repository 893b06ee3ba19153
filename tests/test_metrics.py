"""Golden exposition of a hand-built state, and the render cache."""

import gzip
import os
from pathlib import Path

from exporter.catalog.codes import StatusClass
from exporter.catalog.model import CatalogModel, Client, JobRecord, Pool, Run, Series
from exporter.exposition.metrics import (
    HEALTH_FAMILIES,
    STATE_FAMILIES,
    Exposition,
    Health,
    assemble,
    escape,
    number,
    render_health,
    render_state,
)
from tests.promtext import samples

GOLDEN = Path(__file__).parent / "golden" / "exposition.prom"


def hand_state() -> CatalogModel:
    """A small state built field by field, covering every state family."""
    s = CatalogModel()
    s.clients = {1: Client("web01-fd", "9.6.7"), 2: Client('we"ird\\fd', "x\ny")}
    s.series[("web01-fd", "Backup-web01", "full")] = Series(
        last_run=Run(10, 1790000000.0, StatusClass.ERROR, 0, 0, 5.0),
        last_success=Run(9, 1789900000.0, StatusClass.WARNING, 123456789012, 4321, 1800.5),
        last_failure=Run(10, 1790000000.0, StatusClass.ERROR, 0, 0, 5.0),
        runs=7, failures=2, last_copy=1789900000.0,
    )
    s.series[("web01-fd", "Backup-web01", "incremental")] = Series(runs=1, failures=1, last_run=(
        Run(11, 1790001000.0, StatusClass.CANCELED, 0, 0, 0.0)))
    s.active[12] = JobRecord(12, "Backup-web01.x", "Backup-web01", "B", "I", 1, "R",
                             start_time=1790002000.0)
    s.restores[("web01-fd", "ok")] = 3
    s.pools = {"Full": Pool({"append": 2, "full": 5}, 999, 10), "Empty": Pool({}, 0, 0)}
    s.skipped["unknown_status"] = 1
    return s


def golden_text() -> str:
    """Render the hand state and a fixed health block."""
    health = Health("main", True, "postgresql", 1026, "bacula", 0.25, 1790003000.0,
                    {"success": 5, "failure": 1})
    return (assemble(STATE_FAMILIES, [render_state("main", hand_state())])
            + assemble(HEALTH_FAMILIES, [render_health([health])]))


def test_golden_exposition() -> None:
    """Exact bytes, so any change of names, labels or formatting is a visible diff."""
    text = golden_text()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    samples(text)  # and Prometheus' own parser accepts it


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
    lines = render_state("main", hand_state())
    first = exp.rebuild([lines])
    assert exp.rebuild([lines]) is first
    assert exp.rebuild([render_state("main", hand_state())]) is not first
    assert b"bacula_job_runs_total" in b"".join(first.plain())


def test_gzip_stream_equals_the_plain_exposition() -> None:
    """The precompressed head plus a compressed tail is one valid gzip of the plain text."""
    exp = Exposition()
    states = [render_state("main", hand_state())]
    plain = b"".join(exp.render(states, []))
    packed = b"".join(exp.render(states, [], gzip=True))
    assert gzip.decompress(packed).split(b"# HELP python_")[0] == plain.split(b"# HELP python_")[0]
    assert len(packed) < len(plain)


def test_escaping_and_numbers() -> None:
    """Label escaping and value formatting follow the text format."""
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert [number(1.0), number(2.5), number(7), number(1e20)] == ["1", "2.5", "7", "1e+20"]
