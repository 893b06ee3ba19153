"""The narrow interface every sink implements, its errors, and the per-sink event filter."""

from typing import Protocol

import httpx

from exporter.tickets.config import SinkBase
from exporter.tickets.events.models import Event

# httpx logs every request URL at INFO; a webhook URL may carry a token, and one line per
# delivery says nothing the deliveries counter does not.


class DeliveryError(Exception):
    """A delivery that did not succeed; `retry` tells whether trying again can help."""

    retry = True


class RetryableError(DeliveryError):
    """The backend is down, slow or overloaded: try again later."""


class PermanentError(DeliveryError):
    """The backend refused the event for good: dead-letter it."""

    retry = False


class Sink(Protocol):
    """Delivers one event; raises DeliveryError when it did not."""

    name: str

    def deliver(self, event: Event) -> None:
        """Deliver the event; delivering the same event twice must have the effect of once."""

    def close(self) -> None:
        """Release connections."""


def accepts(cfg: SinkBase, event: Event) -> bool:
    """Tell whether a sink's filter takes an event."""
    if event.kind == "resolution":
        # Only sinks that took the failure are asked (tickets/resolution.py): not its status.
        return "job_result" in cfg.events and cfg.resolutions
    if event.kind not in cfg.events:
        return False
    if event.kind == "job_result":
        if cfg.status is not None and event.status not in cfg.status:
            return False
        if cfg.job_types is not None and event.job_type not in cfg.job_types:
            return False
    return not (
        event.kind == "alert" and cfg.severities is not None
        and event.severity not in cfg.severities
    )


def check_response(response: httpx.Response, what: str) -> None:
    """Raise for a response that is not 2xx: 408, 429 and 5xx retry, other codes are final."""
    code = response.status_code
    if 200 <= code < 300:
        return
    # Only the code and the backend's short error go into the message: never the request.
    detail = response.text[:200].replace("\n", " ") if code == 422 else ""
    message = f"{what}: HTTP {code} {detail}".rstrip()
    if code in (408, 429) or code >= 500:
        raise RetryableError(message)
    raise PermanentError(message)


def transport_error(exc: httpx.HTTPError, what: str) -> RetryableError:
    """Return the retryable error of a connection failure, without the URL (it may hold a key)."""
    return RetryableError(f"{what}: {type(exc).__name__}")
