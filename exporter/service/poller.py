"""One poller per catalog: connects, reads, backs off on failure; single-flight polls."""

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext

import psycopg
import pymysql

from exporter.catalog.config import CatalogConfig
from exporter.catalog.engines import CatalogError, CatalogReplacedError, Session, connect
from exporter.catalog.model import CatalogModel, FinishedJob
from exporter.catalog.reader import SETTLE, Reader
from exporter.catalog.rows import CatalogInfo, detect
from exporter.core.db import scrub
from exporter.exposition.block import Compressed
from exporter.exposition.incremental import compress
from exporter.exposition.metrics import Health, Quiet, render_sla, state_rendering
from exporter.exposition.sla import SlaConfig, restore_window

log = logging.getLogger(__name__)

BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
SCRAPE_LOCK_WAIT = 5.0  # longest a Director poll waits for a catalog poll under way
# Cold starts at once, across catalogs: they are CPU-bound under one GIL, so more at once only add
# their peak memory together (100 catalogs at once: 1 GB) and make every catalog wait longest.
COLD_STARTS = threading.BoundedSemaphore(2)
DB_ERRORS = (psycopg.Error, pymysql.Error, sqlite3.Error, OSError, CatalogError)

# (catalog, jobs that reached a final status, checkpoint, history): every job with JobId <=
# checkpoint that will ever finish has been handed over. History: at the first start, the JobIds
# above the checkpoint that had finished before it; they are not news, but a catch-up from the
# checkpoint would find them, so the listener remembers them as seen. Called on the poll thread;
# it must store all this durably before it returns, or raise (then it comes again next poll).
Listener = Callable[[str, list[FinishedJob], int, list[int]], None]
# The checkpoint the listener stored for a catalog, or None when it has none (first start).
Resume = Callable[[str], int | None]


class CatalogPoller:
    """Keeps one catalog's model current; failures become metrics and backoff, never crashes."""

    def __init__(
        self, cfg: CatalogConfig, listener: Listener | None = None,
        resume: Resume | None = None, backfill: float = 0.0, sla: SlaConfig | None = None,
        settle: float = SETTLE,
    ) -> None:
        self.cfg = cfg
        self.settle = settle  # how long a copy or Virtual Full row may still be rewritten
        self.sla = sla
        self.resume = resume
        self.backfill = backfill
        self.listener = listener
        self.last_duration = 0.0
        self.polls: Counter[str] = Counter()
        self.attempted = threading.Event()  # set after the first poll, good or bad
        self._session: Session | None = None
        self._lock = threading.Lock()
        self._completed = 0  # polls finished, so waiters can tell one ran while they waited
        self._identity: tuple[int, int] | None = None  # of the SQLite file last read
        self._forget()

    def _forget(self) -> None:
        """Start from nothing: the next poll is a cold start, as after the process started."""
        self._undelivered: list[FinishedJob] = []
        self._history: list[int] = []
        self._catch_up_to: int | None = None  # a catch-up is owed up to this JobId
        self.model = CatalogModel(warning_is_success=self.cfg.warning_is_success)
        self.reader = Reader(self.cfg.zone, settle=self.settle)
        self.up = False
        self.error = ""
        self.last_success: float | None = None  # Unix time of the last good poll
        self.rendered: Compressed = {}  # replaced, never changed: the exposition compares it
        self.quiet: Quiet = []
        self._rendering = state_rendering(self.cfg.name)
        self._state: Compressed = {}
        self._limits: Compressed = {}
        self._limits_of: tuple[object, ...] = (None,)  # model, keys: what the limits cover
        self._rendered_generation = -1
        self._last_attempt = float("-inf")
        self._backoff = 0.0
        self.attempted.clear()

    def reset(self) -> None:
        """Drop the connection and everything read (this replica stopped leading)."""
        with self._lock:
            self._close_session()
            self._forget()

    @property
    def info(self) -> CatalogInfo | None:
        """Return what version detection found, once it ran."""
        return self.reader.info

    def maybe_poll(self, min_age: float, wait: float) -> None:
        """Poll unless one ran less than min_age ago; a concurrent caller waits for that one."""
        if not self._due(min_age):
            return
        seen = self._completed
        if not self._lock.acquire(timeout=wait):
            return  # a slow poll is under way: serve what we have rather than hang the scrape
        try:
            # A poll that ran while we waited for the lock serves this caller too.
            if self._completed == seen and self._due(min_age):
                self._poll()
        finally:
            self._lock.release()

    def _due(self, min_age: float) -> bool:
        """Tell whether a poll may run now (respecting the backoff after failures)."""
        return time.monotonic() - self._last_attempt >= max(min_age, self._backoff)

    def _poll(self) -> None:
        """Run one poll: connect if needed, cold start or incremental read, record the outcome."""
        started = time.monotonic()
        self._last_attempt = started
        try:
            # Taken before the transaction begins, so a waiting catalog holds no snapshot.
            with COLD_STARTS if self.reader.info is None else nullcontext():
                started = time.monotonic()  # waiting for a turn is not the poll's duration
                self._read()
        except DB_ERRORS as exc:
            message = str(exc) if isinstance(exc, CatalogError) else scrub(exc, self.cfg)
            self._fail(message)
        except Exception as exc:
            # A bug or a row shape we did not foresee: keep serving, say so, retry later.
            log.exception("catalog %s: poll failed unexpectedly", self.cfg.name)
            self._fail(f"internal error: {type(exc).__name__}")
        else:
            self.up, self.error = True, ""
            self.last_success = time.time()
            self._backoff = 0.0
            self.polls["success"] += 1
            self._hand_over()
        finally:
            self.last_duration = time.monotonic() - started
            if self.model.generation != self._rendered_generation:
                # Render here, under the poll lock, so a scrape never sees a half-updated model.
                self._render()
            self._completed += 1
            self.attempted.set()

    def _render(self) -> None:
        """Render what changed since the last render: changed keys; SLA limits when keys came."""
        state, limits = self._rendering.update(self.model), self._limits
        if self.sla is not None:
            # The limits depend only on which keys exist (and series keys are never dropped).
            running = frozenset(k for k in self.model.running() if k not in self.model.series)
            # Checks too: verify and consolidate jobs have limits of their own.
            of = (self.model, len(self.model.series), len(self.model.checks), running)
            if of[0] is not self._limits_of[0] or of[1:] != self._limits_of[1:]:
                lines, self.quiet = render_sla(self.cfg.name, self.model, self.sla)
                limits, self._limits_of = compress(lines), of
        if state is not self._state or limits is not self._limits:
            self.rendered = {**state, **limits}
            self._state, self._limits = state, limits
        self._rendered_generation = self.model.generation

    def _hand_over(self) -> None:
        """Give finished jobs and the checkpoint to the listener; keep them if it fails."""
        if self.listener is None or self._catch_up_to is not None:
            return  # a checkpoint stored before the catch-up would skip the jobs it owes
        try:
            self.listener(self.cfg.name, self._undelivered, self.reader.checkpoint(self.model),
                          self._history)
        except Exception:
            log.exception("catalog %s: %d job results wait for the listener", self.cfg.name,
                          len(self._undelivered))
        else:
            self._undelivered, self._history = [], []

    def _read(self) -> None:
        """Read inside one read-only transaction; the first read after connecting is a check."""
        fresh = self._session is None
        if self._session is None:
            self._session = connect(self.cfg)
        session = self._session
        try:
            session.begin()
        except CatalogReplacedError as exc:
            log.warning("catalog %s: %s", self.cfg.name, exc)
            self._close_session()
            self._session = session = connect(self.cfg)
            fresh = True
            session.begin()
        cold = False
        try:
            if fresh:
                info = detect(session)
                other_file = session.identity != self._identity
                self._identity = session.identity
                if self.reader.info and (
                    other_file or info != self.reader.info
                    or self.reader.catalog_replaced(session)
                ):
                    log.warning("catalog %s changed under us; reading it anew", self.cfg.name)
                    self.reader.info = None
                if self.reader.info is None:
                    # Built aside and swapped in whole: a cold start that fails half-way must
                    # leave no half-read state behind for the next poll to build on.
                    model = CatalogModel(warning_is_success=self.cfg.warning_is_success)
                    reader = Reader(self.cfg.zone, info=info, restore_window=self._window(),
                                    settle=self.settle, expose_volumes=self.cfg.expose_volumes)
                    reader.cold_start(session, model)
                    self.model, self.reader = model, reader
                    if self.listener is not None:
                        self._catch_up_to = reader.watermark
                    self._rendered_generation = -1
                    cold = True
                    log.info(
                        "catalog %s: %s %s schema %d, %d jobs tracked", self.cfg.name,
                        info.product, info.engine, info.version, len(self.model.series),
                    )
            if not cold:
                self.reader.poll(session, self.model, self.cfg.refresh_interval)
            if self._catch_up_to is not None:
                self._catch_up(session, self._catch_up_to)
            finished = self.reader.describe(
                session, self.model, self.cfg.name, self.reader.unreported)
            failed = [f for f in finished if f.log]
            # Only the series of these jobs are searched: a poll costs O(new rows).
            self.model.set_reasons({f.record.job_id: list(f.log) for f in failed},
                                   {(f.client, f.record.name, f.level) for f in failed})
            # Kept before the transaction ends: these jobs are in the model and behind the
            # watermark now, so a failure from here on (even the ROLLBACK) must not lose them.
            self.reader.unreported = []
            if self.listener is not None:
                self._undelivered += finished
        finally:
            session.end()

    def _window(self) -> float:
        """Return the restore window: the catalog's own, else long enough for the SLA's promises."""
        if self.cfg.restore_window > 0 or self.sla is None:
            return self.cfg.restore_window
        return restore_window(self.sla) or 0.0

    def _catch_up(self, session: Session, upto: int) -> None:
        """Owed since a cold start: jobs that finished since the stored checkpoint (or backfill)."""
        # Apart from the cold start, so a state store that is down delays the catch-up (and the
        # hand-over) but never the metrics.
        try:
            after = self.resume(self.cfg.name) if self.resume else None
        except Exception as exc:
            log.warning("catalog %s: cannot read the stored checkpoint yet: %s", self.cfg.name,
                        exc)
            return
        since = time.time() - self.backfill if after is None and self.backfill > 0 else None
        owed = self.reader.finished_since(session, self.model, after, since, upto)
        if after is None:
            # First start: what finished above the checkpoint is history, unless reported.
            news = {r.job_id for r in [*owed, *self.reader.unreported]}
            news.update(f.record.job_id for f in self._undelivered)
            above = self.reader.finished_since(
                session, self.model, self.reader.checkpoint(self.model), None, upto)
            self._history = [r.job_id for r in above if r.job_id not in news]
        self.reader.unreported += owed
        self._catch_up_to = None

    def _fail(self, message: str) -> None:
        """Mark the catalog down, drop the connection and back off exponentially."""
        if self.up or self.polls["failure"] == 0:
            log.error("catalog %s is unreachable: %s", self.cfg.name, message)
        self.up, self.error = False, message
        self.polls["failure"] += 1
        self._backoff = min(BACKOFF_MAX, max(BACKOFF_MIN, self._backoff * 2))
        self._close_session()

    def _close_session(self) -> None:
        """Close the catalog connection, if any (best effort: it may be broken already)."""
        if self._session is not None:
            try:
                self._session.close()
            except Exception:
                log.debug("closing a catalog session failed", exc_info=True)
            self._session = None

    def health(self) -> Health:
        """Return the figures of the health metrics."""
        info = self.reader.info
        return Health(
            catalog=self.cfg.name, up=self.up, engine=info.engine if info else "",
            schema_version=info.version if info else 0, product=info.product if info else "",
            poll_duration=self.last_duration, last_success=self.last_success,
            polls=dict(self.polls),
        )

    def jobs_seen(self) -> tuple[dict[str, str], dict[str, float]]:
        """Return job -> client and job -> latest start or end the catalog holds (for Directors)."""
        clients: dict[str, str] = {}
        seen: dict[str, float] = {}
        if not self._lock.acquire(timeout=SCRAPE_LOCK_WAIT):
            return clients, seen  # a slow poll: the Director's own answers must do this time
        try:
            latest: dict[str, int] = {}
            for (client, job, _), series in self.model.series.items():
                run = series.last_run
                if run is not None:
                    seen[job] = max(seen.get(job, 0.0), run.time)
                    if run.job_id >= latest.get(job, -1):  # the client of its newest run
                        latest[job], clients[job] = run.job_id, client
                else:
                    clients.setdefault(job, client)
            for (client, job, _), start in self.model.running().items():
                seen[job] = max(seen.get(job, 0.0), start)
                clients.setdefault(job, client)
        finally:
            self._lock.release()
        return clients, seen

    def close(self) -> None:
        """Close the connection (at shutdown)."""
        with self._lock:
            self._close_session()
