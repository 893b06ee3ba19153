"""Failures that resolve themselves: a job's failure is kept until a later success covers it.

Runs inside the outbox's storing transaction (tickets/store.py), so a failure, the success that
resolves it and the resolution's delivery rows are stored together or not at all. A resolution
is an event of its own (`<failure id>:resolved-by:<JobId>`) with the failure's ticket key: it is
delivered once, after the failure, to the sinks that took the failure. A failure of a job whose
last failure was resolved takes that failure's key, so a ticket sink can reopen its ticket.
"""

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import Any, Protocol

from exporter.catalog.codes import RESTORE
from exporter.tickets.events.models import Event

FAILED = ("error", "canceled")
SUCCEEDED = ("ok", "warning")  # a warning counts as a success, as for last_success
RANK = {"incremental": 1, "differential": 2, "full": 3}  # a full covers all, a diff covers incr

Routes = Callable[[Event], Collection[str]]


class Executes(Protocol):
    """A connection inside a write transaction (sqlite3 and psycopg both fit)."""

    def execute(self, sql: str, params: Sequence[Any], /) -> Any: ...


def covers(success: str, failure: str) -> bool:
    """Tell whether a success at one level makes good a failure at another."""
    if success in RANK and failure in RANK:
        return RANK[success] >= RANK[failure]
    return success == failure


def _job(event: Event) -> str | None:
    """Return the identity of the job a result is about; None for what is not tracked."""
    body = event.body
    # A restore is reviewed by a person (restore_ack), not resolved by the next restore.
    if event.kind != "job_result" or event.job_type == RESTORE or "job_id" not in body:
        return None
    return json.dumps([body.get("catalog"), body.get("client"), body.get("job")])


def lineage(db: Executes, fix: Callable[[str], str], event: Event) -> Event:
    """Give a failure the key of its job's last failure at that level, if that one is resolved."""
    job = _job(event)
    if job is None or event.status not in FAILED:
        return event
    row = db.execute(fix("SELECT key, resolved_by FROM failure WHERE job = %s AND level = %s "
                         "ORDER BY job_id DESC LIMIT 1"),
                     (job, event.body.get("level", ""))).fetchone()
    return replace(event, key=row[0]) if row is not None and row[1] else event


def follow(db: Executes, fix: Callable[[str], str], event: Event, routes: Routes | None
           ) -> list[tuple[Event, list[str]]]:
    """Record a newly stored result; return the resolutions it brings, each with its sinks."""
    job = _job(event)
    if job is None:
        return []
    level = str(event.body.get("level", ""))
    if event.status in FAILED:
        db.execute(fix("INSERT INTO failure (event_id, key, job, level, job_id) "
                       "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING"),
                   (event.id, event.key, job, level, int(event.body["job_id"])))
        return []
    if event.status not in SUCCEEDED:
        return []
    # Only failures that started before: JobIds grow with start time.
    found = db.execute(fix("SELECT event_id, key, level FROM failure WHERE job = %s AND "
                           "resolved_by = '' AND job_id < %s ORDER BY job_id"),
                       (job, int(event.body["job_id"]))).fetchall()
    out = []
    for failure_id, key, failed_level in found:
        if not covers(level, failed_level):
            continue
        # Two replicas storing two successes at once: the second finds it resolved.
        if db.execute(fix("UPDATE failure SET resolved_by = %s WHERE event_id = %s AND "
                          "resolved_by = ''"), (event.id, failure_id)).rowcount != 1:
            continue
        resolution = resolution_event(event, failure_id, key)
        took = [s for (s,) in db.execute(fix("SELECT sink FROM delivery WHERE event_id = %s "
                                             "ORDER BY sink"), (failure_id,)).fetchall()]
        wanted = set(routes(resolution)) if routes is not None else set(took)
        out.append((resolution, [s for s in took if s in wanted]))
    return out


def resolution_event(success: Event, failure_id: str, key: str) -> Event:
    """Return the event telling that a success resolved a failure."""
    body = success.body
    title = (f"Resolved by JobId {body.get('job_id')} ({body.get('job_name')}, "
             f"{body.get('level')}, {body.get('status_text')}): {success.title}")
    return Event(
        id=f"{failure_id}:resolved-by:{body.get('job_id')}", kind="resolution", key=key,
        title=title, severity="info", status="resolved",
        body={**body, "kind": "resolution", "resolved_by": success.id},
        job_type=success.job_type, resolves=failure_id,
    )
