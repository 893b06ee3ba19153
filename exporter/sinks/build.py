"""Build the sink of a config entry."""

from exporter.bridge_config import (
    AppriseSinkConfig,
    RedmineSinkConfig,
    SinkConfig,
    WebhookSinkConfig,
)
from exporter.sinks.base import Sink


def build_sink(cfg: SinkConfig) -> Sink:
    """Return the sink a config entry describes (imports are lazy: apprise is slow to load)."""
    if isinstance(cfg, RedmineSinkConfig):
        from exporter.sinks.redmine import redmine_sink

        return redmine_sink(cfg)
    if isinstance(cfg, WebhookSinkConfig):
        from exporter.sinks.webhook import WebhookSink

        return WebhookSink(cfg)
    assert isinstance(cfg, AppriseSinkConfig)
    from exporter.sinks.apprise_sink import AppriseSink

    return AppriseSink(cfg)
