"""The text format's small pieces: label escaping, numbers, label sets."""

import math

Lines = dict[str, list[str]]


def escape(value: str) -> str:
    """Escape a label value for the text format."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    """Format a sample value the shortest exact way."""
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def labels(**pairs: str) -> str:
    """Return a label set such as catalog="main",client="c1"."""
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs.items())
