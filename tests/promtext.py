"""Parse an exposition into comparable samples."""

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, frozenset[tuple[str, str]]]


def samples(text: str | bytes, prefix: str = "") -> dict[Sample, float]:
    """Return {(name, labels): value} for every sample whose name starts with prefix."""
    if isinstance(text, bytes):
        text = text.decode()
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith(prefix):
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[Sample, float], name: str, **labels: str) -> float | None:
    """Return one sample's value, None when absent."""
    return found.get((name, frozenset(labels.items())))
