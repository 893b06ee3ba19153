"""The media lifecycle rules: retention edges, Recycle, RecyclePool, errors, the changer."""

from exporter.catalog.media import Volume, lifecycle, recyclable_at

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
