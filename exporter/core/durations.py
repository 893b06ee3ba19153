"""Parsing of human-written durations such as "7d", "26h", "1h30m" or a number of seconds."""

import math
import re

UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0,
                           "w": 604800.0}
_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d|w)")
_WHOLE = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h|d|w))+")
_HINT = "expected seconds or a duration such as 90s, 90m, 26h, 7d or 1h30m"


def parse_duration(value: str | int | float) -> float:
    """Return the seconds of a duration string or a non-negative number of seconds."""
    # bool is an int subclass: `max_age: true` in YAML is a mistake, not one second.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"invalid duration {value!r}: {_HINT}")
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(_NUMBER, text):
            seconds = float(text)
        elif _WHOLE.fullmatch(text):
            seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(f"invalid duration {value!r}: {_HINT}")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
    return seconds
