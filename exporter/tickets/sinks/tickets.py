"""Ticket rules shared by every ticket backend: create, repeat, resolve, reopen within a window."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from exporter.catalog.codes import RESTORE
from exporter.tickets.events.models import Event

SUBJECT_MAX = 255
DESCRIPTION_MAX = 30000  # Redmine's text columns hold more; stay well below the usual 32k limits
ACK_NOTE = ("Acknowledgement required: this restore stays open until a second person has "
            "reviewed it and closes the ticket.")


@dataclass(frozen=True)
class Ticket:
    """What the rules need to know about an existing ticket."""

    id: int
    open: bool
    closed_at: float | None  # Unix seconds of the last close, when closed


class TicketBackend(Protocol):
    """A ticket system reduced to find / create / update."""

    def find(self, key: str) -> Ticket | None:
        """Return the newest ticket that carries this key, open or closed."""

    def create(self, key: str, subject: str, description: str, severity: str) -> Ticket:
        """File a new open ticket carrying the key."""

    def update(self, ticket: Ticket, note: str, close: bool | None) -> None:
        """Add a note; close (True), reopen (False) or leave the status (None)."""

    def noted(self, ticket: Ticket, marker: str) -> bool:
        """Tell whether the ticket's description or one of its notes has the marker as a line."""

    def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class TicketRules:
    """The choices of a ticket sink."""

    job_results: str = "all"  # or "not_ok", or "log": a note per result on a ticket per client
    log_issue: str = "client"  # or "client_month": with "log", a ticket per client per month
    close_on_resolve: bool = True
    reopen_window: float = 86400.0
    restore_ack: bool = False  # restores are always filed and never closed by the bridge


def cut(text: str, limit: int) -> str:
    """Shorten text to at most `limit` characters, saying so."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _marker(event: Event) -> str:
    """Return the line that names the event in a ticket or note."""
    return f"event: {event.id}"


def describe(event: Event, ack: bool = False) -> str:
    """Return a plain-text description of an event for a ticket; `ack` asks for a human close."""
    body = event.body
    if event.kind != "alert":
        fields = ("catalog", "client", "job", "job_name", "job_id", "type", "level",
                  "status", "status_code", "status_text", "start", "end", "duration_seconds",
                  "bytes", "files", "errors")
        restore = event.job_type == RESTORE
        lines = []
        if restore:
            lines += [f"Restore on client {body.get('client') or '?'} by job {body.get('job')}: "
                      f"{body.get('files')} files, {body.get('bytes')} bytes, "
                      f"{body.get('start')} to {body.get('end')}.", ""]
        lines += [f"{name}: {body.get(name)}" for name in fields]
        # Bacula 15 only: what its catalog adds about the run.
        lines += [f"{name}: {body[name]}" for name in ("status_info", "virtual_full", "encrypted")
                  if body.get(name) not in (None, "")]
        if body.get("log"):
            heading = "The restore's log lines:" if restore else "Last log lines:"
            lines += ["", heading, *(f"  {line}" for line in body["log"])]
        if ack:
            lines += ["", ACK_NOTE]
        lines += ["", _marker(event)]
    else:
        lines = [f"{event.status.upper()}: {event.title}", ""]
        for alert in body.get("alerts", []):
            lines.append(f"- [{alert.get('status')}] since {alert.get('startsAt')}")
            lines += [f"    {k}={v}" for k, v in sorted(alert.get("labels", {}).items())]
            lines += [f"    {k}: {v}" for k, v in sorted(alert.get("annotations", {}).items())]
        lines += ["", f"group: {json.dumps(body.get('groupLabels', {}), sort_keys=True)}",
                  f"key: {event.key}", _marker(event)]
    return cut("\n".join(lines), DESCRIPTION_MAX)


def log_ticket(event: Event, per: str) -> tuple[str, str, str]:
    """Return the key, subject and description of the log ticket a job result goes to."""
    catalog, client = event.body.get("catalog", ""), event.body.get("client") or "(no client)"
    key, where = f"log:{catalog}:{client}", f"[{catalog}] {client}"
    if per == "client_month":
        month = str(event.body.get("end") or event.body.get("start") or "")[:7]  # UTC
        key, where = f"{key}:{month}", f"{where} {month}"
    intro = (f"Every job result of {where}, one note each, as bacula-exporter delivers them. "
             "Failures also get an issue of their own.\n\n" f"key: {key}")
    return key, f"Job log: {where}", intro


class TicketSink:
    """A sink that turns events into tickets by the rules, on any TicketBackend."""

    def __init__(self, name: str, backend: TicketBackend, rules: TicketRules,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.backend = backend
        self.rules = rules
        self.clock = clock

    def deliver(self, event: Event) -> None:
        """Apply the event; each step looks at the ticket first, so a redelivery is a no-op."""
        if event.kind == "resolution":
            self._resolution(event)
        elif event.kind == "job_result":
            if event.key != event.id:
                self._failed_again(event)
            else:
                self._job_result(event)
            if self.rules.job_results == "log":
                self._log(event)
        elif event.status == "firing":
            self._firing(event)
        else:
            self._resolved(event)

    def _create(self, event: Event, ack: bool = False) -> Ticket:
        """File the ticket of an event."""
        return self.backend.create(
            event.key, cut(event.title, SUBJECT_MAX), describe(event, ack), event.severity
        )

    def _job_result(self, event: Event) -> None:
        """One ticket per job result; a good result is filed closed, as a record.

        With restore_ack, every restore is filed (whatever job_results says) and left open:
        a person closes it, which is the acknowledgement.
        """
        ack = self.rules.restore_ack and event.job_type == RESTORE
        if self.rules.job_results in ("not_ok", "log") and event.status == "ok" and not ack:
            return
        ticket = self.backend.find(event.key) or self._create(event, ack)
        if event.status == "ok" and ticket.open and not ack:
            self.backend.update(ticket, "", close=True)

    def _log(self, event: Event) -> None:
        """Append a job result to its client's log ticket as a note, once."""
        key, subject, intro = log_ticket(event, self.rules.log_issue)
        ticket = self.backend.find(key)
        if ticket is None:
            ticket = self.backend.create(key, cut(subject, SUBJECT_MAX), intro, "info")
        elif self.backend.noted(ticket, _marker(event)):
            return  # a redelivery: the note is there
        self.backend.update(ticket, f"{event.title}\n\n{describe(event)}", close=None)

    def _failed_again(self, event: Event) -> None:
        """A job failing again after its last failure was resolved: that ticket's key.

        Reopened within reopen_window, else a new ticket; the marker tells a redelivery.
        """
        ticket = self.backend.find(event.key)
        if ticket is None:
            self._create(event)
        elif self.backend.noted(ticket, _marker(event)):
            return
        elif ticket.open or (ticket.closed_at is not None and (
                self.clock() - ticket.closed_at <= self.rules.reopen_window)):
            self.backend.update(ticket, "Failed again.\n\n" + describe(event),
                                close=None if ticket.open else False)
        else:
            self._create(event)

    def _resolution(self, event: Event) -> None:
        """A later success made a failure good: note it once on the failure's ticket, close it."""
        ticket = self.backend.find(event.key)
        if ticket is None or self.backend.noted(ticket, _marker(event)):
            return
        # Note and close are one update: a crash leaves both done or neither.
        close = True if self.rules.close_on_resolve and ticket.open else None
        self.backend.update(ticket, f"{event.title}\n\n{describe(event)}", close=close)

    def _firing(self, event: Event) -> None:
        """New group: file; open ticket: nothing; closed lately: reopen; closed long ago: file."""
        ticket = self.backend.find(event.key)
        if ticket is None:
            self._create(event)
        elif ticket.open:
            return
        elif ticket.closed_at is not None and (
            self.clock() - ticket.closed_at <= self.rules.reopen_window
        ):
            self.backend.update(ticket, "Firing again.\n\n" + describe(event), close=False)
        else:
            self._create(event)

    def _resolved(self, event: Event) -> None:
        """Note the resolution on the open ticket and close it (unless configured to leave it)."""
        ticket = self.backend.find(event.key)
        if ticket is None or not ticket.open:
            return
        if self.rules.close_on_resolve:
            self.backend.update(ticket, "Resolved.\n\n" + describe(event), close=True)
        elif not self.backend.noted(ticket, _marker(event)):
            # The status cannot tell a redelivery here: the note carries the event id.
            self.backend.update(ticket, "Resolved.\n\n" + describe(event), close=None)

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()
