"""A delivering process for the e-mail SIGKILL test: runs the outbox until nothing is pending.

    python -m tests.mta.deliver SINK_JSON OUTBOX_FILE

With KILL_AFTER_DELIVERIES=N in the environment the process SIGKILLs itself right after the
sink's N-th delivery returned (the MTA took the message), before the outbox could record it.
"""

import os
import signal
import sys
from pathlib import Path

from pydantic import TypeAdapter

from exporter.tickets.config import RetryConfig, SinkConfig
from exporter.tickets.events.models import Event
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.sinks.build import build_sink
from exporter.tickets.store import SqliteStore
from tests.drain import deliver_all

TIMEOUT = 300.0


def main(sink_json: str, outbox_file: str) -> int:
    """Deliver until the outbox is empty (0) or the time runs out (1)."""
    cfg = TypeAdapter(SinkConfig).validate_json(Path(sink_json).read_text())
    sink = build_sink(cfg)
    kill_after = int(os.environ.get("KILL_AFTER_DELIVERIES") or 0)
    if kill_after:
        deliver, done = sink.deliver, []

        def deliver_then_die(event: Event) -> None:
            deliver(event)
            done.append(event.id)
            if len(done) == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

        sink.deliver = deliver_then_die  # type: ignore[method-assign]
    retry = RetryConfig(initial=0.1, max=0.5, max_attempts=1000)
    outbox = Outbox(SqliteStore(Path(outbox_file)), [Route(sink, retry=retry)])
    return deliver_all(outbox, TIMEOUT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
