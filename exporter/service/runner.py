"""The running exporter: one poller per catalog, their loops, leadership, and the exposition."""

import logging
import threading
from collections.abc import Callable, Iterator
from functools import partial

from prometheus_client import REGISTRY, CollectorRegistry

from exporter.config import Config
from exporter.director.render import FAMILIES as DIRECTOR_FAMILIES
from exporter.exposition.block import Exposition
from exporter.exposition.metrics import assemble
from exporter.ha.leader import Leadership, leader_gauge
from exporter.service.director import DirectorPoller, director_pollers
from exporter.service.overview import AgeLimit, sla_max_age
from exporter.service.poller import CatalogPoller, Listener, Resume

log = logging.getLogger(__name__)

SCRAPE_WAIT = 5.0  # longest a scrape waits for a poll under way before serving what it has
LEAD_INTERVAL = 1.0  # how often a replica checks or seeks leadership (the failover time)


class Exporter:
    """Owns the pollers and renders /metrics from them."""

    def __init__(
        self, config: Config, listener: Listener | None = None, resume: Resume | None = None,
        backfill: float = 0.0, leadership: Leadership | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.config = config
        self.leader = leader_gauge(registry)
        self.pollers = [
            CatalogPoller(c, listener, resume, backfill, config.sla) for c in config.catalogs
        ]
        self.directors = director_pollers(config, {p.cfg.name: p.jobs_seen for p in self.pollers})
        self.exposition = Exposition()
        self.max_age: AgeLimit = sla_max_age(config.sla)
        self.leadership = leadership
        self.leading = leadership is None  # a lone exporter always polls
        self.leader.set(int(self.leading))
        self.decided = threading.Event()  # set once this replica knows whether it leads
        if self.leading:
            self.decided.set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one background poll loop per catalog and Director (and the leadership check)."""
        if self.leadership is not None:
            self._run(self._lead, "leadership")
        for poller in self.pollers:
            self._run(partial(self._loop, poller), f"poll-{poller.cfg.name}")
        for director in self.directors:
            self._run(partial(self._watch, director), f"director-{director.cfg.name}")

    def _watch(self, director: DirectorPoller) -> None:
        """Poll a Director every poll_interval while this replica leads."""
        while not self._stop.is_set():
            if self.leading:
                director.poll()
            self._stop.wait(director.cfg.poll_interval)

    def _run(self, target: Callable[[], None], name: str) -> None:
        """Start a daemon thread that stop() waits for."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _lead(self) -> None:
        """Check leadership every LEAD_INTERVAL; a replica that stops leading forgets its state."""
        assert self.leadership is not None
        while not self._stop.is_set():
            leading = self.leadership.check()
            if leading != self.leading:
                log.info("this replica %s", "polls the catalogs now" if leading
                         else "stands by: another replica polls the catalogs")
                self.leading = leading
                self.leader.set(int(leading))
                if not leading:
                    # Forgotten, so that leading again starts from the stored checkpoint.
                    for poller in self.pollers:
                        poller.reset()
                    for director in self.directors:
                        director.reset()
                    self.exposition.rebuild([])
            self.decided.set()
            self._stop.wait(LEAD_INTERVAL)

    def active(self) -> list[CatalogPoller]:
        """Return the pollers whose catalogs this replica serves: all when it leads, else none."""
        return self.pollers if self.leading else []

    def active_directors(self) -> list[DirectorPoller]:
        """Return the Directors this replica watches: all when it leads, else none."""
        return self.directors if self.leading else []

    def _loop(self, poller: CatalogPoller) -> None:
        """Poll at poll_interval until stopped (maybe_poll honours the failure backoff)."""
        tick = min(1.0, max(0.05, self.config.poll_interval / 4))
        while not self._stop.is_set():
            if self.leading:
                poller.maybe_poll(self.config.poll_interval, wait=tick)
                # Assemble and compress here, not in the next scrape, after a change.
                self.exposition.rebuild([p.rendered for p in self.active()])
            self._stop.wait(tick)

    def stop(self) -> None:
        """Stop the loops, close the catalog connections and give up leadership."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for poller in self.pollers:
            poller.close()
        if self.leadership is not None:
            self.leadership.close()

    def ready(self) -> bool:
        """Tell whether the role is known and every catalog it serves was polled once."""
        return self.decided.is_set() and all(p.attempted.is_set() for p in self.active())

    def refresh(self) -> None:
        """Poll first where the last poll is older than scrape_min_interval (single flight)."""
        for poller in self.active():
            poller.maybe_poll(self.config.scrape_min_interval, wait=SCRAPE_WAIT)

    def stream(self, gzip: bool = False) -> Iterator[bytes]:
        """Yield the exposition, polling first where the last poll is older than allowed."""
        self.refresh()
        active = self.active()
        live = assemble(DIRECTOR_FAMILIES, [d.rendered for d in self.active_directors()])
        return self.exposition.render(
            [p.rendered for p in active], [p.health() for p in active],
            [q for p in active for q in p.quiet], gzip=gzip, extra=live.encode(),
        )

    def metrics(self) -> bytes:
        """Return the whole exposition as one piece (for tests and tools)."""
        return b"".join(self.stream())
