"""In-memory ticket backend and sink for unit tests."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.tickets.events.models import Event
from exporter.tickets.sinks.base import DeliveryError
from exporter.tickets.sinks.tickets import Ticket


@dataclass
class FakeIssue:
    """One ticket of the fake backend, with its history."""

    id: int
    key: str
    subject: str
    description: str
    severity: str
    open: bool = True
    closed_at: float | None = None
    notes: list[str] = field(default_factory=list)


class FakeTickets:
    """A ticket system in a list; the clock is injectable for the reopen window."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.issues: list[FakeIssue] = []
        self.clock = clock

    def _ticket(self, issue: FakeIssue) -> Ticket:
        """Return the rules' view of an issue."""
        return Ticket(issue.id, issue.open, issue.closed_at)

    def find(self, key: str) -> Ticket | None:
        """Return the newest issue with this key."""
        found = [i for i in self.issues if i.key == key]
        return self._ticket(found[-1]) if found else None

    def create(self, key: str, subject: str, description: str, severity: str) -> Ticket:
        """File an open issue."""
        issue = FakeIssue(len(self.issues) + 1, key, subject, description, severity)
        self.issues.append(issue)
        return self._ticket(issue)

    def update(self, ticket: Ticket, note: str, close: bool | None) -> None:
        """Add a note and change the status."""
        issue = self.issues[ticket.id - 1]
        if note:
            issue.notes.append(note)
        if close is True:
            issue.open, issue.closed_at = False, self.clock()
        elif close is False:
            issue.open = True

    def noted(self, ticket: Ticket, marker: str) -> bool:
        """Tell whether the description or a note contains the marker."""
        issue = self.issues[ticket.id - 1]
        return any(marker in text.splitlines() for text in [issue.description, *issue.notes])

    def close(self) -> None:
        """Nothing to release."""


class FakeSink:
    """A sink that records events; `fail` makes the next deliveries raise, `fail_for` of one id."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.delivered: list[Event] = []
        self.fail: list[DeliveryError] = []
        self.fail_for: dict[str, list[DeliveryError]] = {}

    def deliver(self, event: Event) -> None:
        """Record the event, or raise the next queued failure."""
        if self.fail_for.get(event.id):
            raise self.fail_for[event.id].pop(0)
        if self.fail:
            raise self.fail.pop(0)
        self.delivered.append(event)

    def close(self) -> None:
        """Nothing to release."""
