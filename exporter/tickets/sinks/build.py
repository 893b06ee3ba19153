"""Build the sink of a config entry."""

from exporter.tickets.config import (
    AppriseSinkConfig,
    EmailSinkConfig,
    RedmineSinkConfig,
    SinkConfig,
    WebhookSinkConfig,
)
from exporter.tickets.sinks.base import Sink


def build_sink(cfg: SinkConfig) -> Sink:
    """Return the sink a config entry describes (imports are lazy: apprise is slow to load)."""
    if isinstance(cfg, RedmineSinkConfig):
        from exporter.tickets.sinks.redmine import redmine_sink

        return redmine_sink(cfg)
    if isinstance(cfg, WebhookSinkConfig):
        from exporter.tickets.sinks.webhook import WebhookSink

        return WebhookSink(cfg)
    if isinstance(cfg, EmailSinkConfig):
        from exporter.tickets.sinks.mail import EmailSink

        return EmailSink(cfg)
    assert isinstance(cfg, AppriseSinkConfig)
    from exporter.tickets.sinks.apprise_sink import AppriseSink

    return AppriseSink(cfg)
