"""A generic HTTP webhook: the event as JSON, with an Idempotency-Key equal to the event id."""

import httpx

from exporter import __version__
from exporter.tickets.config import WebhookSinkConfig
from exporter.tickets.events.models import Event
from exporter.tickets.sinks.base import check_response, transport_error
from exporter.tickets.template import render


class WebhookSink:
    """POSTs each event; 2xx is success, 408/429/5xx and connection errors retry."""

    def __init__(self, cfg: WebhookSinkConfig,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.client = httpx.Client(timeout=cfg.timeout, transport=transport)

    def deliver(self, event: Event) -> None:
        """POST the event."""
        headers = {"User-Agent": f"bacula-exporter/{__version__}", **self.cfg.headers}
        headers.update({k: v.get() for k, v in self.cfg.secret_headers().items()})
        headers["Idempotency-Key"] = event.id
        headers["Content-Type"] = "application/json"
        try:
            body = (render(self.cfg.body_template, event) if self.cfg.body_template
                    else event.to_json())
            response = self.client.post(self.cfg.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc, f"webhook {self.name}") from None
        check_response(response, f"webhook {self.name}")

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

