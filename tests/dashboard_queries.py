"""The dashboards' panel queries with Grafana's variables filled in, for the live tests."""

import json
from pathlib import Path

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"
# Families only a real Director gives: tests/e2e/test_director.py proves those panels.
LIVE = ("bacula_director_", "bacula_storage_")


def is_live(expr: str) -> bool:
    """Tell whether a query reads the Director's live view."""
    return any(prefix in expr for prefix in LIVE)


def panel_queries(name: str, values: dict[str, str]) -> list[tuple[str, str]]:
    """Return (panel title, query) for every target of a dashboard, variables substituted."""
    model = json.loads((DASHBOARDS / name).read_text())
    out = []
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for key, val in values.items():
                expr = expr.replace(key, val)
            out.append((panel["title"], expr))
    return out
