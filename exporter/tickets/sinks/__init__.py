"""Where events go: webhook, Redmine, Apprise (the in-memory fake lives in tests/)."""

from exporter.tickets.sinks.base import DeliveryError, PermanentError, RetryableError, Sink, accepts

__all__ = ["DeliveryError", "PermanentError", "RetryableError", "Sink", "accepts"]
