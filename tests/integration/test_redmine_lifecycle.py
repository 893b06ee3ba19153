"""A real Redmine: failures closed by the next success, under SIGKILL of the delivering process."""

import json
import logging
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from exporter.catalog.codes import StatusClass
from exporter.catalog.model import FinishedJob
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.sinks.redmine import redmine_sink
from exporter.tickets.store import SqliteStore
from tests.integration.test_redmine import (  # noqa: F401 - redmine is a fixture
    ROOT,
    issues_of,
    redmine,
    sink_config,
)
from tests.redmine.harness import Redmine
from tests.redmine.samples import finished

log = logging.getLogger(__name__)
ERROR, OK = StatusClass.ERROR, StatusClass.OK


def deliver_with_kills(tmp_path: Path, cfg_extra: dict[str, Any], jobs: list[FinishedJob],
                       catalog: str, kills: list[dict[str, str]], server: Redmine
                       ) -> tuple[Outbox, list[int]]:
    """Queue the jobs, run a delivering process per kill (each SIGKILLs itself), then one more."""
    cfg = sink_config(server, tmp_path, **cfg_extra)
    sink_json = tmp_path / "sink.json"
    sink_json.write_text(json.dumps(cfg.model_dump(mode="json")))
    outbox_file = tmp_path / "outbox.sqlite3"
    queued = Outbox(SqliteStore(outbox_file), [Route(redmine_sink(cfg))])
    queued.listener(catalog, jobs, max(j.record.job_id for j in jobs))
    command = [sys.executable, "-m", "tests.redmine.deliver", str(sink_json), str(outbox_file)]
    codes = []
    for kill in [*kills, {}]:
        run = subprocess.run(command, cwd=ROOT, env={**os.environ, **kill}, timeout=300,
                             capture_output=True, check=False)
        codes.append(run.returncode)
        assert run.returncode in (0, -signal.SIGKILL), run.stderr[-2000:]
    return queued, codes


def notes_of(server: Redmine, issue: dict[str, Any]) -> list[str]:
    """Return the first line of each journal note of an issue."""
    return [j["notes"].split("\n", 1)[0] for j in server.journals(issue["id"]) if j.get("notes")]


def test_a_success_closes_the_failures_issue_once_under_sigkill(redmine: Redmine,  # noqa: F811
                                                                tmp_path: Path) -> None:
    prefix = "heal"
    jobs = [finished(1, ERROR, catalog=prefix), finished(2, ERROR, catalog=prefix, client="fd2"),
            finished(3, OK, catalog=prefix), finished(4, OK, catalog=prefix, client="fd2")]
    # The first process dies right after Redmine took the first resolution (note and close):
    # before the outbox could record it, so the next process delivers it again.
    queued, codes = deliver_with_kills(tmp_path, {"job_results": "not_ok"}, jobs, prefix,
                                       [{"KILL_AFTER_UPDATES": "1"}], redmine)
    assert codes == [-signal.SIGKILL, 0]
    found = issues_of(redmine, f"{prefix}:")
    assert sorted(found) == [f"{prefix}:1", f"{prefix}:2"]
    notes = {key: notes_of(redmine, issue) for key, (issue,) in found.items()}
    figures = {"issues": len(found), "closed": sum(i[0]["status"]["id"] == 5
                                                   for i in found.values()),
               "resolution_notes": {k: len(v) for k, v in notes.items()}}
    log.warning("resolution under SIGKILL after the note and close: %s", figures)
    assert [i[0]["status"]["id"] for i in found.values()] == [5, 5]
    assert notes[f"{prefix}:1"] == [
        f"Resolved by JobId 3 (Backupfd1.2026-11-18_01.00.00_03, incremental, Backup OK): "
        f"[{prefix}] fd1 Backupfd1 incremental: Backup OK (Backupfd1.2026-11-18_01.00.00_03)"]
    assert len(notes[f"{prefix}:2"]) == 1
    assert notes[f"{prefix}:2"][0].startswith("Resolved by JobId 4 (")
    assert Counter(queued.store.states().values()) == {"done": 6}


def test_log_mode_keeps_one_note_per_result_through_a_sigkill_storm(redmine: Redmine,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    prefix = "journal"
    jobs = [finished(i, OK, catalog=prefix, client=f"fd{i % 5}") for i in range(1, 51)]
    # Five processes in a row, each SIGKILLed right after Redmine took its N-th note, before
    # the outbox could record it; a sixth finishes.
    kills = [{"KILL_AFTER_UPDATES": str(n)} for n in (7, 4, 9, 3, 6)]
    queued, codes = deliver_with_kills(tmp_path, {"job_results": "log"}, jobs, prefix, kills,
                                       redmine)
    assert codes == [-signal.SIGKILL] * 5 + [0]
    found = issues_of(redmine, f"log:{prefix}:")
    markers: Counter[str] = Counter()
    for issue in (i for issues in found.values() for i in issues):
        for journal in redmine.journals(issue["id"]):
            markers.update(line for line in (journal.get("notes") or "").splitlines()
                           if line.startswith("event: "))
    figures = {"results": len(jobs), "sigkills": codes.count(-signal.SIGKILL),
               "log_issues": sum(len(v) for v in found.values()),
               "notes": sum(markers.values()),
               "duplicate_notes": sum(n - 1 for n in markers.values())}
    log.warning("log mode under 5 SIGKILLs: %s", figures)
    assert sorted(found) == [f"log:{prefix}:fd{c}" for c in range(5)]
    assert [len(v) for v in found.values()] == [1] * 5
    assert set(markers) == {f"event: {prefix}:{i}" for i in range(1, 51)}
    assert figures["duplicate_notes"] == 0
    assert not issues_of(redmine, f"{prefix}:")  # good results get no issue of their own
    assert Counter(queued.store.states().values()) == {"done": 50}


def test_failing_again_reopens_the_closed_issue(redmine: Redmine, tmp_path: Path  # noqa: F811
                                                ) -> None:
    prefix = "flap"
    cfg = sink_config(redmine, tmp_path, job_results="not_ok", reopen_window="1d")
    outbox = Outbox(SqliteStore(tmp_path / "outbox.sqlite3"), [Route(redmine_sink(cfg))])
    for job in (finished(1, ERROR, catalog=prefix), finished(2, OK, catalog=prefix),
                finished(3, ERROR, catalog=prefix), finished(4, OK, catalog=prefix),
                finished(5, ERROR, catalog=prefix)):
        outbox.listener(prefix, [job], job.record.job_id)
        while outbox.deliver_due("helpdesk"):
            pass
    found = issues_of(redmine, f"{prefix}:")
    assert list(found) == [f"{prefix}:1"]  # every later failure went to the first one's issue
    (issue,) = found[f"{prefix}:1"]
    assert issue["status"]["id"] == 1  # reopened by the last failure
    assert [n.split(" (", 1)[0] for n in notes_of(redmine, issue)] == [
        "Resolved by JobId 2", "Failed again.", "Resolved by JobId 4", "Failed again."]
    outbox.stop()
