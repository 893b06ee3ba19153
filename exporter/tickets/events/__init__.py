"""Events the bridge delivers: job results from the catalogs and Alertmanager notifications."""

from exporter.tickets.events.alerts import AlertmanagerPayload, alert_event, group_identity
from exporter.tickets.events.jobs import job_event_id, job_result_event
from exporter.tickets.events.models import Event

__all__ = ["AlertmanagerPayload", "Event", "alert_event", "group_identity", "job_event_id",
           "job_result_event"]
