"""The ticket bridge: the outbox and its sinks, built from the config's bridge keys."""

import logging
from dataclasses import dataclass
from functools import partial

from exporter.tickets.config import AlertmanagerConfig, BridgeKeys
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.sinks.base import accepts
from exporter.tickets.sinks.build import build_sink
from exporter.tickets.store import PostgresStore, SqliteStore, Store

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite3"


@dataclass(frozen=True)
class Bridge:
    """The outbox with its sinks, and the receiver's settings: what the config asked for."""

    outbox: Outbox
    alertmanager: AlertmanagerConfig | None


def build_bridge(config: BridgeKeys) -> Bridge | None:
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
    outbox = Outbox(store, routes)
    return Bridge(outbox, config.alertmanager)
