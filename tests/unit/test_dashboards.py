"""Dashboards: generated equals committed, and their structure holds."""

import json
from pathlib import Path
from typing import Any

from dashboards.generate import render

DIR = Path(__file__).resolve().parents[2] / "dashboards"


def load() -> dict[str, dict[str, Any]]:
    """Return the committed dashboards by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DIR.glob("*.json"))}


def test_committed_json_is_what_the_code_generates() -> None:
    """Run `python dashboards/generate.py` after changing it; this fails until then."""
    generated = render()
    assert sorted(generated) == sorted(load())
    for name, text in generated.items():
        assert (DIR / name).read_text() == text, name


def test_structure() -> None:
    """Stable unique uids, unique panel ids, every query bound to the datasource variable."""
    dashboards = load()
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids) and all(uids)
    for name, d in dashboards.items():
        names = [v["name"] for v in d["templating"]["list"]]
        assert names == ["datasource", "catalog", "client"], name
        ids = [p["id"] for p in d["panels"]]
        assert len(set(ids)) == len(ids), name
        for panel in d["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]
                assert target["expr"] and target["refId"], panel["title"]
