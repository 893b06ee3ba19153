"""Where events go: webhook, Redmine, Apprise, and an in-memory fake for tests."""

from exporter.tickets.sinks.base import DeliveryError, PermanentError, RetryableError, Sink, accepts

__all__ = ["DeliveryError", "PermanentError", "RetryableError", "Sink", "accepts"]
