"""Which replica polls: the one holding a PostgreSQL advisory lock on the state database.

The lock is a session lock on a connection of its own, so it lasts exactly as long as that
connection: a replica that dies or loses the database loses the lock at once (TCP keepalives
bound how long a vanished host keeps it). Correctness never rests on there being one leader:
events are stored once by id and deliveries are claimed row by row, so two replicas polling
for a moment cost catalog load, never a duplicate ticket.
"""

import functools
import logging
from typing import Any

import psycopg
from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from exporter.core.db import StoreError, connect_state
from exporter.core.settings import StateDatabaseConfig

log = logging.getLogger(__name__)

LOCK_KEY = 0x62786C64  # one leader per state database (advisory locks are per database)


@functools.cache
def leader_gauge(registry: CollectorRegistry) -> Gauge:
    """Return bacula_exporter_leader on a registry (made once per registry)."""
    return Gauge("bacula_exporter_leader",
                 "1 when this replica polls the catalogs (always, without a state_database).",
                 registry=registry)


@functools.cache
def state_database_gauge(registry: CollectorRegistry) -> Gauge:
    """Return bacula_exporter_state_database_up on a registry (made once per registry)."""
    # Made by the first Leadership only: a lone exporter has no state database to report on,
    # and a 0 there would read as "unreachable".
    return Gauge("bacula_exporter_state_database_up",
                 "1 when the state database answered the last leadership check.",
                 registry=registry)


class Leadership:
    """Holds or tries to take the lock; check() says whether this replica should poll."""

    def __init__(self, cfg: StateDatabaseConfig, registry: CollectorRegistry = REGISTRY) -> None:
        self.cfg = cfg
        self.up_gauge = state_database_gauge(registry)
        self.holds = False
        self.reachable: bool | None = None  # None before the first check
        self._conn: psycopg.Connection[Any] | None = None

    def check(self) -> bool:
        """Keep or take the lock; True when this replica should poll the catalogs."""
        try:
            if self._conn is None or self._conn.broken or self._conn.closed:
                self.holds = False  # a new session holds no lock
                self._conn = connect_state(self.cfg, "leader", autocommit=True)
            if self.holds:
                self._conn.execute("SELECT 1")  # the lock lives as long as this session
            else:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
                self.holds = bool(row and row[0])
        except (psycopg.Error, StoreError) as exc:
            if self.reachable is not False:  # say it once per outage, not every second
                log.error("state database unreachable, polling without a leader: %s", exc)
            self.close()
            self.reachable = False
            self.up_gauge.set(0)
            # Nobody can tell who leads: poll rather than leave the monitoring blind. Events
            # cannot be stored meanwhile anyway, and are stored once by id when they can.
            return True
        self.reachable = True
        self.up_gauge.set(1)
        return self.holds

    def close(self) -> None:
        """Drop the connection, and with it the lock."""
        self.holds = False
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:  # already broken: closing is best effort
                log.debug("closing the leader connection failed", exc_info=True)
            self._conn = None
