"""Wall-clock catalog times to Unix time, across DST."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from exporter.catalog.times import local_to_epoch

NY = ZoneInfo("America/New_York")


def utc(*args: int) -> float:
    """Unix time of a UTC date."""
    return datetime(*args, tzinfo=UTC).timestamp()


def test_formats_and_unset_values() -> None:
    """Strings, bytes and datetimes convert; 0, NULL and zero dates are unset."""
    assert local_to_epoch("2026-01-15 10:00:00", NY) == utc(2026, 1, 15, 15)
    assert local_to_epoch(b"2026-07-15 10:00:00", NY) == utc(2026, 7, 15, 14)
    assert local_to_epoch(datetime(2026, 7, 15, 10), NY) == utc(2026, 7, 15, 14)
    for unset in (None, 0, "0", "", "0000-00-00 00:00:00", "garbage"):
        assert local_to_epoch(unset, NY) is None


def test_dst_transitions() -> None:
    """Spring forward: one real hour between 01:30 and 03:30; fall back: the first 01:30."""
    before = local_to_epoch("2026-03-08 01:30:00", NY)
    after = local_to_epoch("2026-03-08 03:30:00", NY)
    assert before is not None and after is not None and after - before == 3600
    assert local_to_epoch("2026-11-01 01:30:00", NY) == utc(2026, 11, 1, 5, 30)
