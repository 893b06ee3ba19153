"""The running exporter: one poller per catalog, their background loops, and the exposition."""

import logging
import threading
from collections.abc import Iterator

from exporter.config import Config
from exporter.metrics import Exposition
from exporter.poller import CatalogPoller, Listener, Resume
from exporter.status import MaxAge, sla_max_age

log = logging.getLogger(__name__)

SCRAPE_WAIT = 5.0  # longest a scrape waits for a poll under way before serving what it has


class Exporter:
    """Owns the pollers and renders /metrics from them."""

    def __init__(
        self, config: Config, listener: Listener | None = None, resume: Resume | None = None,
        backfill: float = 0.0,
    ) -> None:
        self.config = config
        self.pollers = [
            CatalogPoller(c, listener, resume, backfill, config.sla) for c in config.catalogs
        ]
        self.exposition = Exposition()
        self.max_age: MaxAge = sla_max_age(config.sla)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one background poll loop per catalog."""
        for poller in self.pollers:
            thread = threading.Thread(
                target=self._loop, args=(poller,), name=f"poll-{poller.cfg.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _loop(self, poller: CatalogPoller) -> None:
        """Poll at poll_interval until stopped (maybe_poll honours the failure backoff)."""
        tick = min(1.0, max(0.05, self.config.poll_interval / 4))
        while not self._stop.is_set():
            poller.maybe_poll(self.config.poll_interval, wait=tick)
            # Assemble and compress here, not in the next scrape, after a change.
            self.exposition.rebuild([p.rendered for p in self.pollers])
            self._stop.wait(tick)

    def stop(self) -> None:
        """Stop the loops and close the catalog connections."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for poller in self.pollers:
            poller.close()

    def ready(self) -> bool:
        """Tell whether every catalog had its first poll (good or bad)."""
        return all(p.attempted.is_set() for p in self.pollers)

    def refresh(self) -> None:
        """Poll first where the last poll is older than scrape_min_interval (single flight)."""
        for poller in self.pollers:
            poller.maybe_poll(self.config.scrape_min_interval, wait=SCRAPE_WAIT)

    def stream(self, gzip: bool = False) -> Iterator[bytes]:
        """Yield the exposition, polling first where the last poll is older than allowed."""
        self.refresh()
        return self.exposition.render(
            [p.rendered for p in self.pollers], [p.health() for p in self.pollers],
            [q for p in self.pollers for q in p.quiet], gzip=gzip,
        )

    def metrics(self) -> bytes:
        """Return the whole exposition as one piece (for tests and tools)."""
        return b"".join(self.stream())
