"""Alertmanager notifications (webhook payload version 4) and the identity of an alert group."""

import hashlib
import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from exporter.tickets.events.models import Event

SEVERITY_ORDER = ("critical", "warning", "info")


class _Model(BaseModel):
    """Alertmanager may add fields in later versions: ignore what we do not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Alert(_Model):
    """One alert of a notification."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime  # noqa: N815 - Alertmanager's spelling
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""


class AlertmanagerPayload(_Model):
    """The webhook body Alertmanager sends (version "4")."""

    version: Literal["4"]
    groupKey: str  # noqa: N815
    truncatedAlerts: int = Field(default=0, ge=0)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str]  # noqa: N815
    commonLabels: dict[str, str] = {}  # noqa: N815
    commonAnnotations: dict[str, str] = {}  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[Alert] = Field(min_length=1)


def group_identity(receiver: str, group_labels: dict[str, str]) -> str:
    """Return the ticket identity of an alert group: receiver and sorted group labels, hashed."""
    # Not groupKey: it changes whenever the route tree is edited, and would file new tickets.
    canonical = json.dumps([receiver, sorted(group_labels.items())], separators=(",", ":"))
    return "am:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _severity(payload: AlertmanagerPayload) -> str:
    """Return the most severe `severity` label among the alerts (unknown ones count as info)."""
    found = {a.labels.get("severity", "") for a in payload.alerts}
    return next((s for s in SEVERITY_ORDER if s in found), "info")


def alert_event(payload: AlertmanagerPayload) -> Event:
    """Turn one notification into its event; a repeat of the same notification gets the same id."""
    key = group_identity(payload.receiver, payload.groupLabels)
    # The same alerts in the same states (an HA peer's copy, a retry, a repeat_interval resend)
    # hash alike; a re-fire has a new startsAt and so a new id.
    states = sorted(
        (a.fingerprint or json.dumps(sorted(a.labels.items())), a.status, a.startsAt.isoformat())
        for a in payload.alerts
    )
    digest = hashlib.sha256(json.dumps([payload.status, states]).encode()).hexdigest()[:24]
    labels = ", ".join(f"{k}={v}" for k, v in sorted(payload.groupLabels.items()))
    name = payload.commonLabels.get("alertname") or payload.groupLabels.get("alertname", "alert")
    summary = payload.commonAnnotations.get("summary", "")
    title = f"{name}: {summary or labels}" if summary or labels else name
    return Event(
        id=f"{key}:{digest}", kind="alert", key=key, title=title, severity=_severity(payload),
        status=payload.status,
        body={"kind": "alert", **payload.model_dump(mode="json")},
    )
