"""Conversion of the Director's zone-less wall-clock timestamps to Unix time."""

from datetime import datetime
from zoneinfo import ZoneInfo

_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")


def local_to_epoch(value: object, zone: ZoneInfo) -> float | None:
    """Return Unix seconds for a catalog timestamp, or None when it is unset or unreadable.

    The Director writes its local wall-clock time without an offset. In the hour that repeats when
    DST ends, the earlier instant is taken (fold=0): the catalog holds nothing to tell them apart.
    """
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "0", "0000-00-00 00:00:00"):
            return None
        for fmt in _FORMATS:
            try:
                value = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            return None
    if not isinstance(value, datetime):
        # SQLite stores the integer 0 for an unset time; anything else non-datetime is unusable.
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone, fold=0)
    return value.timestamp()
