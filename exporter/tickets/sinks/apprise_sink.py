"""Apprise: pagers, chat and e-mail from URLs; the notify result is checked, a failure retried."""

import apprise

from exporter.tickets.config import AppriseSinkConfig
from exporter.tickets.events.models import Event
from exporter.tickets.sinks.base import PermanentError, RetryableError
from exporter.tickets.sinks.tickets import DESCRIPTION_MAX, cut, describe

NOTIFY_TYPE = {"critical": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING}


class AppriseSink:
    """Sends each event to the configured Apprise URLs."""

    def __init__(self, cfg: AppriseSinkConfig) -> None:
        self.name = cfg.name
        self.cfg = cfg

    def deliver(self, event: Event) -> None:
        """Notify; anything short of full success is retried (Apprise cannot tell which)."""
        notifier = apprise.Apprise()
        for url in self.cfg.urls():
            # Tags on add() select the URLs on notify(); an unparsable URL is a config mistake.
            if not notifier.add(url.get(), tag=self.cfg.tags or None):
                raise PermanentError(f"apprise {self.name}: a URL in the secret is not valid")
        if event.status in ("ok", "resolved"):
            kind = apprise.NotifyType.SUCCESS
        else:
            kind = NOTIFY_TYPE.get(event.severity, apprise.NotifyType.INFO)
        result = notifier.notify(
            body=cut(describe(event), DESCRIPTION_MAX), title=cut(event.title, 250),
            notify_type=kind, tag=self.cfg.tags or apprise.common.MATCH_ALL_TAG,
        )
        if not result:
            raise RetryableError(f"apprise {self.name}: notify failed ({len(notifier)} url(s))")

    def close(self) -> None:
        """Nothing held between deliveries."""
