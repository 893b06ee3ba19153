"""The event envelope stored in the outbox and handed to every sink."""

import json
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal["job_result", "alert"]  # also what a sink's `events:` may list
# A resolution tells the sinks that took a job's failure that a later success covers it.
AnyKind = Literal["job_result", "alert", "resolution"]


@dataclass(frozen=True)
class Event:
    """One thing to deliver; `id` is stable so a redelivery is recognised everywhere."""

    id: str  # "<catalog>:<JobId>" for job results; identity + notification hash for alerts
    kind: AnyKind
    key: str  # the ticket identity: the job result's id, or the alert group's identity
    title: str
    severity: str  # critical, warning or info
    status: str  # job results: the status class; alerts: firing or resolved
    body: dict[str, Any] = field(default_factory=dict)  # the JSON the webhook sends
    job_type: str = ""  # Bacula's Job.Type code, for the sink filters
    resolves: str = ""  # resolutions: the id of the failure's event
    thread: str = ""  # the first event stored with this key, when it is another one

    def to_json(self) -> str:
        """Serialise for the outbox."""
        data = {
            "id": self.id, "kind": self.kind, "key": self.key, "title": self.title,
            "severity": self.severity, "status": self.status, "body": self.body,
            "job_type": self.job_type,
        }
        # Only where they mean something: other payloads stay as they were.
        if self.resolves:
            data["resolves"] = self.resolves
        if self.thread:
            data["thread"] = self.thread
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Event":
        """Read back what to_json wrote."""
        data = json.loads(text)
        return cls(**data)
