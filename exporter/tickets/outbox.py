"""The durable outbox: events stored before anything is acknowledged, delivered by workers.

The store (tickets/store.py: a SQLite file, or PostgreSQL shared by replicas) holds the events,
one delivery row per event and sink, and the catalog checkpoints. One worker thread per sink
delivers due rows in insertion order, never overtaking an earlier pending row of the same ticket
key, with exponential backoff and jitter; a permanent failure, or too many attempts, moves the
row to `dead` (logged and counted). A crash between delivering and marking `done` redelivers
later: sinks are idempotent by event id (Idempotency-Key, or the ticket key looked up first).
"""

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from exporter.catalog.model import FinishedJob
from exporter.tickets.config import RetryConfig
from exporter.tickets.events import Event, job_event_id, job_result_event
from exporter.tickets.sinks.base import DeliveryError, Sink
from exporter.tickets.store import STORE_ERRORS, Due, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxMetrics:
    """The outbox's own metrics, on a registry of the caller's choosing."""

    pending: Gauge
    oldest: Gauge
    deliveries: Counter


@functools.cache
def outbox_metrics(registry: CollectorRegistry) -> OutboxMetrics:
    """Return the outbox's metrics on a registry (made once per registry)."""
    return OutboxMetrics(
        Gauge("bacula_exporter_outbox_pending", "Events waiting for delivery to a sink.",
              ["sink"], registry=registry),
        Gauge("bacula_exporter_outbox_oldest_pending_timestamp_seconds",
              "When the oldest event still waiting for a sink was stored.", ["sink"],
              registry=registry),
        Counter("bacula_exporter_deliveries", "Delivery attempts by result: success, retry "
                "(will be tried again), failure (refused for good), dead (given up: moved to "
                "the dead letters).", ["sink", "result"], registry=registry),
    )



WORKER_BATCH = 20  # rows a worker delivers before it looks at the clock and the gauges again
IDLE_WAIT = 5.0  # longest a worker sleeps without being woken, so a missed wake-up costs little
HELD_WAIT = 0.2  # shortest sleep: a due row may be held by another replica's worker
RETENTION = 30 * 86400.0  # delivered events are kept this long to recognise redeliveries


@dataclass
class Route:
    """A sink, the filter of events it takes and its retry policy."""

    sink: Sink
    accepts: Callable[[Event], bool] = lambda _event: True
    retry: RetryConfig = field(default_factory=RetryConfig)


def backoff(retry: RetryConfig, attempts: int) -> float:
    """Return the wait before the next attempt: exponential, capped, with jitter."""
    delay = min(retry.max, retry.initial * 2 ** min(attempts - 1, 40))
    # Jitter in the upper half: sinks that failed together do not retry in lockstep.
    return random.uniform(delay / 2, delay)  # noqa: S311 - not for security


class Outbox:
    """Stores events durably and delivers them to the sinks."""

    def __init__(self, store: Store, routes: Sequence[Route],
                 metrics: OutboxMetrics | None = None) -> None:
        self.store = store
        self.metrics = metrics or outbox_metrics(REGISTRY)  # the process's /metrics
        self.routes = {r.sink.name: r for r in routes}
        self._stop = threading.Event()
        self._wake = {name: threading.Event() for name in self.routes}
        self._threads: list[threading.Thread] = []
        self._failures = dict.fromkeys(self.routes, 0)  # retryable failures in a row, per sink
        self._pause = dict.fromkeys(self.routes, 0.0)  # no attempts before this time, per sink
        self._gauges()

    def add(self, events: Sequence[Event], checkpoint: tuple[str, int] | None = None,
            seen: Sequence[str] = ()) -> int:
        """Store events (a checkpoint, ids seen but not news) durably; return how many were new."""
        rows = [(e, self._takers(e)) for e in events]
        new, touched = self.store.add(rows, checkpoint, seen, self._takers)
        for name in touched:
            self._wake[name].set()
        if touched:
            self._gauges()
        return new

    def _takers(self, event: Event) -> list[str]:
        """Return the names of the sinks whose filter takes an event."""
        return [name for name, r in self.routes.items() if r.accepts(event)]

    def listener(self, catalog: str, finished: list[FinishedJob], checkpoint: int,
                 history: Sequence[int] = ()) -> None:
        """The poller's listener: job results and the checkpoint in one durable transaction."""
        self.add([job_result_event(job) for job in finished], (catalog, checkpoint),
                 [job_event_id(catalog, job_id) for job_id in history])

    def start(self) -> None:
        """Start one delivery worker per sink."""
        try:
            self.store.prune(time.time() - RETENTION)
        except STORE_ERRORS as exc:
            log.warning("outbox: cannot prune delivered events now: %s", exc)
        for name in self.routes:
            thread = threading.Thread(target=self._work, args=(name,), name=f"sink-{name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers (an attempt under way finishes), close the sinks and the store."""
        self._stop.set()
        for wake in self._wake.values():
            wake.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        for route in self.routes.values():
            route.sink.close()
        self.store.close()

    def deliver_due(self, name: str) -> int:
        """Attempt the due rows of a sink in order; stop at the first that should be retried."""
        attempted = 0
        while attempted < WORKER_BATCH and not self._stop.is_set():
            with self.store.claim(name, time.time()) as due:
                if due is None:
                    break
                attempted += 1
                delivered = self._attempt(name, due)
            if not delivered:
                # The backend is likely down: probe it with one row per pause, not all of them.
                self._failures[name] += 1
                self._pause[name] = time.time() + backoff(
                    self.routes[name].retry, self._failures[name])
                break
            self._failures[name] = 0
        if attempted:
            self._gauges()
        return attempted

    def _work(self, name: str) -> None:
        """Deliver a sink's due rows until stopped."""
        while not self._stop.is_set():
            try:
                if (self._pause[name] <= time.time() and self.deliver_due(name)
                        and self._pause[name] <= time.time()):
                    continue
                due = max(self.store.next_due(name) or 0, self._pause[name]) or None
            except Exception:
                # The worker must outlive a locked or full disk, or a database that went away.
                log.exception("outbox: sink %s cannot use the outbox", name)
                due = None
            wait = IDLE_WAIT if due is None else min(IDLE_WAIT, max(HELD_WAIT, due - time.time()))
            self._wake[name].wait(wait)
            self._wake[name].clear()

    def _attempt(self, name: str, due: Due) -> bool:
        """Deliver one claimed row once and record the outcome; False when it should be retried."""
        route = self.routes[name]
        attempt = due.attempts + 1
        try:
            event = Event.from_json(due.data)
        except (ValueError, TypeError) as exc:
            self._give_up(name, due, attempt, f"unreadable: {exc}", False)
            return True
        try:
            route.sink.deliver(event)
        except DeliveryError as exc:
            error, retry = str(exc), exc.retry
        except Exception as exc:
            # A bug or a surprise from a backend: keep the event and try again later.
            log.exception("outbox: sink %s failed on %s unexpectedly", name, due.event_id)
            error, retry = f"internal error: {type(exc).__name__}", True
        else:
            self.store.settle(due.seq, "done", attempt, 0.0, "")
            self.metrics.deliveries.labels(name, "success").inc()
            return True
        if retry and attempt < route.retry.max_attempts:
            wait = backoff(route.retry, attempt)
            self.store.settle(due.seq, "pending", attempt, time.time() + wait, error)
            self.metrics.deliveries.labels(name, "retry").inc()
            log.warning("outbox: %s to %s failed (attempt %d), retry in %.0fs: %s",
                        due.event_id, name, attempt, wait, error)
            return False
        self._give_up(name, due, attempt, error, retry)
        return True

    def _give_up(self, name: str, due: Due, attempt: int, error: str, retry: bool) -> None:
        """Move a delivery to the dead letters, where people can look at it."""
        self.store.settle(due.seq, "dead", attempt, 0.0, error)
        if not retry:
            self.metrics.deliveries.labels(name, "failure").inc()
        self.metrics.deliveries.labels(name, "dead").inc()
        log.error("outbox: %s to %s is dead after %d attempt(s): %s",
                  due.event_id, name, attempt, error)

    def _gauges(self) -> None:
        """Refresh the pending and oldest-pending gauges of every sink."""
        try:
            found = self.store.pending()
        except STORE_ERRORS as exc:
            log.warning("outbox: cannot count pending deliveries: %s", exc)
            return
        for name in self.routes:
            count, oldest = found.get(name, (0, 0.0))
            self.metrics.pending.labels(name).set(count)
            self.metrics.oldest.labels(name).set(oldest)
