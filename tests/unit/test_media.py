"""The media lifecycle rules: retention edges, Recycle, RecyclePool, errors, the changer."""

import math

from exporter.catalog.media import PoolRules, Volume, headroom, lifecycle, recyclable_at

NOW = 1_800_000_000.0
DAY = 86400.0


def vol(status: str = "full", written: float | None = NOW - 10 * DAY, retention: float = 30 * DAY,
        recycle: bool = True, pool: str = "Full", **extra: object) -> Volume:
    """A volume with defaults: Full, written ten days ago, 30 days' retention."""
    base: dict[str, object] = dict(pool=pool, status=status, last_written=written,
                                   retention=retention, recycle=recycle, errors=0,
                                   in_changer=False, storage="", recycle_pool="")
    base.update(extra)
    return Volume(**base)  # type: ignore[arg-type]


def test_retention_edges() -> None:
    """Recyclable from the very second LastWritten + VolRetention is reached, not before."""
    edge = vol(written=NOW - 30 * DAY)
    assert recyclable_at(edge, NOW) and not recyclable_at(edge, NOW - 1)
    assert [recyclable_at(vol(written=NOW - 30 * DAY + s), NOW) for s in (0, 1)] == [True, False]
    assert not recyclable_at(vol(recycle=False, written=NOW - 99 * DAY), NOW)
    assert not recyclable_at(vol(status="append", written=NOW - 99 * DAY), NOW)
    assert not recyclable_at(vol(written=None), NOW + 99 * DAY)  # never written
    assert recyclable_at(vol(status="purged", written=NOW), NOW)
    assert recyclable_at(vol(status="recycle", written=None), NOW)
    assert recyclable_at(vol(status="used", written=NOW - 29.5 * DAY), NOW + DAY)


def test_lifecycle_per_pool() -> None:
    """Horizons are cumulative; a RecyclePool receives the volume; errors and the changer."""
    figures = lifecycle([
        vol(written=NOW - 31 * DAY),  # recyclable now
        vol(written=NOW - 29.5 * DAY),  # within a day
        vol(written=NOW - 25 * DAY),  # within seven days
        vol(written=NOW - DAY),  # not within seven days
        vol(written=NOW - 40 * DAY, recycle_pool="Scratch"),  # goes back to Scratch
        vol(status="error", in_changer=True, storage="Changer1"),
        vol(status="append", written=NOW, errors=2, in_changer=True, storage="Changer1"),
        vol(status="append", written=NOW, in_changer=True, storage="Changer2", pool="Inc"),
    ], NOW)
    full = figures["Full"]
    assert full.recyclable == {"now": 1, "1d": 2, "7d": 3}
    assert figures["Scratch"].recyclable == {"now": 1, "1d": 1, "7d": 1}
    assert full.errors == 2  # Error status, and VolErrors > 0
    assert full.in_changer == {"Changer1": 2} and full.in_changer_appendable == {"Changer1": 1}
    assert figures["Inc"].in_changer_appendable == {"Changer2": 1}
    assert figures["Scratch"].errors == 0 and figures["Scratch"].in_changer == {}


def rules(name: str, max_volumes: int = 0, volumes: int = 0, labels: bool = False,
          scratch: str = "", pool_id: int = 1) -> PoolRules:
    """A pool's rules with defaults: no MaxVols, no LabelFormat, no scratch pool."""
    return PoolRules(pool_id, name, max_volumes, volumes, labels, scratch, "")


def test_headroom_follows_bacula_volume_choice() -> None:
    """Append, recyclable now, scratch and new volumes; MaxVols bounds scratch and new."""
    media = lifecycle([
        vol(status="append", written=NOW),
        vol(status="append", written=NOW, enabled=False),  # disabled: never picked
        vol(written=NOW - 31 * DAY),  # recyclable now
        vol(written=NOW - 31 * DAY, recycle=False),  # Recycle = no: stays full
        vol(status="purged", enabled=False),  # disabled: not recycled either
        vol(status="append", written=None, pool="Scratch"),
        vol(status="purged", pool="Scratch"),
        vol(written=NOW - 31 * DAY, pool="Scratch"),
        vol(written=NOW - 31 * DAY, pool="Tape", recycle_pool="Scratch"),  # back to Scratch
        vol(status="full", pool="Tape"),
    ], NOW)
    headroom([
        rules("Full", scratch="Scratch"),  # no MaxVols, no LabelFormat: all of Scratch
        rules("Tape", max_volumes=3, volumes=2, scratch="Scratch"),  # room for one more
        rules("Disk", labels=True),  # labels its own volumes without a limit
        rules("Capped", max_volumes=5, volumes=5, labels=True, scratch="Scratch"),  # at MaxVols
        rules("Scratch", scratch="Scratch"),  # its own scratch pool does not count twice
    ], media)
    assert media["Full"].headroom == {"append": 1, "recyclable": 1, "scratch": 4, "new": 0}
    assert media["Tape"].headroom == {"append": 0, "recyclable": 0, "scratch": 1, "new": 0}
    assert media["Disk"].headroom == {"append": 0, "recyclable": 0, "scratch": 0,
                                      "new": math.inf}
    assert media["Capped"].headroom == {"append": 0, "recyclable": 0, "scratch": 0, "new": 0}
    assert media["Scratch"].headroom == {"append": 1, "recyclable": 3, "scratch": 0, "new": 0}


def test_new_volumes_fill_the_room_scratch_leaves() -> None:
    """Below MaxVols a labeling pool takes scratch volumes first, then labels the rest."""
    media = lifecycle([vol(status="append", written=None, pool="Scratch")], NOW)
    headroom([rules("Full", max_volumes=4, volumes=1, labels=True, scratch="Scratch")], media)
    assert media["Full"].headroom == {"append": 0, "recyclable": 0, "scratch": 1, "new": 2}
