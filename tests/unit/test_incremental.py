"""Incremental rendering against a full render, after random sequences of changes."""

import gzip
import random
import zlib

import pytest

from exporter.catalog.media import Lifecycle, PoolRules, Volume
from exporter.catalog.model import CatalogModel, Client, JobRecord, Pool
from exporter.catalog.restore_points import Coverage
from exporter.exposition import block as block_module
from exporter.exposition import incremental, pieces
from exporter.exposition.block import build_block
from exporter.exposition.metrics import STATE_FAMILIES, assemble, render_state, state_rendering
from exporter.exposition.pieces import GZIP_HEADER, Piece, crc32_combine, gzip_end
from tests.promtext import samples

STATUSES = "TTTTWEfAR"  # mostly good; R keeps a job running
TYPES = "BBBBBCRVDMgO"  # backups mostly; copies, restores, checks, migrations, consolidation


def random_change(model: CatalogModel, rng: random.Random, next_id: list[int]) -> None:
    """Apply one random change of the kinds a poll makes."""
    what = rng.random()
    if what < 0.6:
        records = []
        for _ in range(rng.randint(1, 8)):
            job_id = rng.choice([*model.active, next_id[0]]) if model.active else next_id[0]
            next_id[0] += 1
            records.append(JobRecord(
                job_id, f"j{job_id}", f"Job{rng.randint(0, 30):02d}", rng.choice(TYPES),
                rng.choice("FIDV"), rng.randint(1, 12), rng.choice(STATUSES),
                errors=rng.choice([0, 0, 1]), files=rng.randint(0, 9), bytes=rng.randint(0, 10**9),
                start_time=1.79e9 + job_id, end_time=1.79e9 + job_id + rng.randint(0, 99),
                job_tdate=1_790_000_000 + job_id, encrypted=rng.choice([None, True, False]),
                pool_id=rng.randint(0, 3), prior_job_id=rng.choice([0, 0, 0, max(1, job_id - 5)])))
        model.apply(records)
    elif what < 0.7:
        new = {i: Client(f"c{i:02d}-fd", rng.choice(["9.6", "15.0"])) for i in
               rng.sample(range(1, 13), rng.randint(1, 3))}
        model.set_clients(new, replace=rng.random() < 0.3)
    elif what < 0.8:
        model.set_pools({f"P{i}": Pool({"append": rng.randint(0, 3)}, rng.randint(0, 99), 5)
                         for i in rng.sample(range(6), rng.randint(0, 4))})
    elif what < 0.85:
        rules = {i: PoolRules(i, f"P{i}", rng.randint(0, 5), rng.randint(0, 5), rng.random() < 0.5,
                              "Scratch", rng.choice(["", "P2"])) for i in range(1, 4)}
        volumes = [Volume(f"P{rng.randint(1, 3)}", rng.choice(["append", "full"]),
                          1.79e9 + rng.randint(0, 99), 86400.0, True, 0, False, "", "",
                          name=f"Vol{i}", bytes=rng.randint(0, 10**6))
                   for i in rng.sample(range(9), rng.randint(0, 4))]
        model.set_media({"P1": Lifecycle({"now": rng.randint(0, 2)}, rng.randint(0, 1),
                                         {"Changer": rng.randint(0, 3)},
                                         headroom={"append": rng.randint(0, 2),
                                                   "new": rng.choice([0.0, float("inf")])})},
                        rules, volumes)
    elif what < 0.95:
        model.set_coverage({(f"c{i:02d}-fd", f"Job{i:02d}"): rng.choice(
            [None, Coverage(1.7e9, 1.79e9 + rng.randint(0, 9), rng.randint(1, 5), 2)])
            for i in rng.sample(range(1, 13), rng.randint(0, 6))})
    else:
        model.skip(rng.choice(["unknown_status", "unknown_level"]))


def unzip(states: list[dict[str, Piece]]) -> str:
    """Return the text of the block of these compressed states, through a gzip stream."""
    block = build_block(states)
    body = block.gzip_head + gzip_end(block.crc, block.size, b"")
    assert b"".join(block.plain()) == gzip.decompress(body)
    return gzip.decompress(body).decode()


@pytest.mark.parametrize("seed", range(12))
def test_incremental_equals_full_render(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """After every random change, the incremental pieces give the full render's exact text."""
    rng = random.Random(seed)
    monkeypatch.setattr(incremental, "GROUP", rng.choice([1, 2, 3, 64]))  # splits and merges
    monkeypatch.setattr(incremental, "PAGE", rng.choice([1, 2, 16]))
    models = [CatalogModel(), CatalogModel()]
    for model in models:
        model.set_clients({i: Client(f"c{i:02d}-fd", "9.6") for i in range(1, 13)})
    renderings = [state_rendering("main"), state_rendering('we"ird')]
    next_id = [1]
    for _ in range(60):
        model = rng.choice(models)
        for _ in range(rng.randint(1, 3)):
            random_change(model, rng, next_id)
        if rng.random() < 0.05:  # a cold start: a new model, built from the start
            models[0] = model = CatalogModel()
        states = [r.update(m) for r, m in zip(renderings, models, strict=True)]
        full = assemble(STATE_FAMILIES, [render_state("main", models[0]),
                                         render_state('we"ird', models[1])])
        assert unzip(states) == full
    samples(full)  # and Prometheus' own parser accepts it


def test_nothing_changed_keeps_the_same_pieces() -> None:
    """A render without changes returns the very same object, so the block is not rebuilt."""
    model = CatalogModel()
    model.set_clients({1: Client("a-fd", "x")})
    rendering = state_rendering("main")
    first = rendering.update(model)
    assert rendering.update(model) is first
    model.apply([JobRecord(1, "j1", "Job", "B", "F", 1, "T", job_tdate=1_790_000_000)])
    assert rendering.update(model) is not first


@pytest.mark.parametrize("with_zlib", [True, False])
def test_crc32_combine(with_zlib: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Combined CRCs equal the CRC of the concatenation, with zlib's function and without."""
    if not with_zlib:
        monkeypatch.setattr(pieces, "_COMBINE", None)
    rng = random.Random(1)
    for _ in range(100):
        a, b = rng.randbytes(rng.randint(0, 5000)), rng.randbytes(rng.randint(0, 5000))
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_pieces_make_one_gzip_member() -> None:
    """Pieces compressed apart, joined, then ended with a tail, are one valid gzip member."""
    texts = [b"", b"a" * 70_000, b"bacula_job_running 1\n" * 99, bytes(range(256))]
    head = Piece.join(Piece.of(text) for text in texts)
    body = b"".join([GZIP_HEADER, *head.parts, gzip_end(head.crc, head.size, b"tail\n")])
    assert gzip.decompress(body) == b"".join(texts) + b"tail\n"


@pytest.mark.parametrize("keep", [0, 1 << 30])
def test_plain_text_kept_or_inflated_each_time(keep: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scrape without gzip gets the same text whether the block keeps it or inflates it."""
    monkeypatch.setattr(block_module, "PLAIN_KEEP", keep)
    model = CatalogModel()
    model.set_clients({i: Client(f"c{i:03d}-fd", "9.6") for i in range(300)})
    block = build_block([state_rendering("main").update(model)])
    text = assemble(STATE_FAMILIES, [render_state("main", model)]).encode()
    assert b"".join(block.plain()) == text == b"".join(block.plain())
    assert (block._plain is None) == (keep == 0)
