"""The ticket bridge: the outbox and its sinks, built from the config's bridge keys."""

import functools
import logging
from dataclasses import dataclass, field
from functools import partial

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from exporter.tickets.config import AlertmanagerConfig, BridgeKeys
from exporter.tickets.outbox import Outbox, Route, outbox_metrics
from exporter.tickets.sinks.base import accepts
from exporter.tickets.sinks.build import build_sink
from exporter.tickets.store import PostgresStore, SqliteStore, Store

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite3"


@functools.cache
def requests_counter(registry: CollectorRegistry) -> Counter:
    """Return the receiver's counter of answers on a registry (made once per registry)."""
    return Counter("bacula_exporter_alertmanager_requests",
                   "Notifications received on /alertmanager by HTTP status code.", ["code"],
                   registry=registry)


@dataclass(frozen=True)
class Bridge:
    """The outbox with its sinks, and the receiver's settings: what the config asked for."""

    outbox: Outbox
    alertmanager: AlertmanagerConfig | None
    requests: Counter = field(default_factory=lambda: requests_counter(REGISTRY))


def build_bridge(config: BridgeKeys, registry: CollectorRegistry = REGISTRY) -> Bridge | None:
    """Build the bridge a configuration asks for; None when it configures no sinks."""
    if not (config.sinks or config.alertmanager):
        return None
    store: Store
    if config.state_database is not None:
        store = PostgresStore(config.state_database)
    elif config.state_dir is not None:
        store = SqliteStore(config.state_dir / OUTBOX_FILE)
    else:
        return None
    routes = [Route(build_sink(s), partial(accepts, s), s.retry) for s in config.sinks]
    outbox = Outbox(store, routes, outbox_metrics(registry))
    return Bridge(outbox, config.alertmanager, requests_counter(registry))
