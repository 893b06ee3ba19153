"""Redmine over its native REST API: the key lives in a custom field, looked up before creating."""

from datetime import datetime
from typing import Any

import httpx

from exporter.tickets.config import RedmineSinkConfig
from exporter.tickets.sinks.base import PermanentError, check_response, transport_error
from exporter.tickets.sinks.tickets import Ticket, TicketRules, TicketSink


class RedmineTickets:
    """A TicketBackend on one Redmine project."""

    def __init__(self, cfg: RedmineSinkConfig,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.cfg = cfg
        self.client = httpx.Client(base_url=cfg.url.rstrip("/"), timeout=cfg.timeout,
                                   transport=transport)
        self._closed_statuses: set[int] | None = None

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request with the API key read now; map failures to delivery errors."""
        headers = {"X-Redmine-API-Key": self.cfg.api_key().get()}
        try:
            response = self.client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise transport_error(exc, f"redmine {method} {path}") from None
        check_response(response, f"redmine {method} {path}")
        return response

    def _closed(self) -> set[int]:
        """Return the ids of the statuses that count as closed (Redmine 5.0 issues do not say)."""
        if self._closed_statuses is None:
            data = self._call("GET", "/issue_statuses.json").json()
            self._closed_statuses = {s["id"] for s in data["issue_statuses"] if s.get("is_closed")}
        return self._closed_statuses

    def _ticket(self, issue: dict[str, Any]) -> Ticket:
        """Return the rules' view of a Redmine issue."""
        is_open = issue["status"]["id"] not in self._closed()
        closed_on = issue.get("closed_on")
        closed_at = datetime.fromisoformat(closed_on).timestamp() if closed_on else None
        return Ticket(int(issue["id"]), is_open, None if is_open else closed_at)

    def find(self, key: str) -> Ticket | None:
        """Return the newest issue whose external-id field equals the key, open or closed."""
        field = self.cfg.external_id_field
        params = {"project_id": self.cfg.project, "status_id": "*", f"cf_{field}": key,
                  "sort": "id:desc", "limit": "25"}
        issues = self._call("GET", "/issues.json", params=params).json().get("issues", [])
        # Redmine ignores an unknown filter and returns every open issue: check the field.
        matching = [
            i for i in issues
            if any(c.get("id") == field and c.get("value") == key
                   for c in i.get("custom_fields", []))
        ]
        if issues and not matching and not any(
            c.get("id") == field for i in issues for c in i.get("custom_fields", [])
        ):
            raise PermanentError(f"redmine: custom field {field} is not on the project's issues")
        return self._ticket(max(matching, key=lambda i: int(i["id"]))) if matching else None

    def create(self, key: str, subject: str, description: str, severity: str) -> Ticket:
        """File an open issue with the key in the external-id field."""
        priority = self.cfg.priorities.get(severity, self.cfg.default_priority)
        issue = {
            "project_id": self.cfg.project, "tracker_id": self.cfg.tracker_id,
            "subject": subject, "description": description, "priority_id": priority,
            "custom_fields": [{"id": self.cfg.external_id_field, "value": key}],
        }
        created = self._call("POST", "/issues.json", json={"issue": issue}).json()["issue"]
        return Ticket(int(created["id"]), True, None)

    def update(self, ticket: Ticket, note: str, close: bool | None) -> None:
        """Add a note; close or reopen."""
        change: dict[str, Any] = {}
        if note:
            change["notes"] = note
        if close is True:
            change["status_id"] = self.cfg.closed_status_id
        elif close is False:
            change["status_id"] = self.cfg.reopened_status_id
        if change:
            self._call("PUT", f"/issues/{ticket.id}.json", json={"issue": change})

    def noted(self, ticket: Ticket, marker: str) -> bool:
        """Tell whether the description or a journal note of the issue contains the marker."""
        issue = self._call("GET", f"/issues/{ticket.id}.json",
                           params={"include": "journals"}).json()["issue"]
        texts = [issue.get("description") or ""]
        texts += [j.get("notes") or "" for j in issue.get("journals", [])]
        # A whole line: "event: main:15" must not match "event: main:150".
        return any(marker in text.splitlines() for text in texts)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def redmine_sink(cfg: RedmineSinkConfig,
                 transport: httpx.BaseTransport | None = None) -> TicketSink:
    """Build the Redmine sink of a config entry (the transport is for tests)."""
    rules = TicketRules(cfg.job_results, cfg.log_issue, cfg.close_on_resolve, cfg.reopen_window,
                        cfg.restore_ack)
    return TicketSink(cfg.name, RedmineTickets(cfg, transport), rules)

