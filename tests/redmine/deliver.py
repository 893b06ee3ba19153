"""A delivering process for the SIGKILL test: runs the outbox workers until nothing is pending.

    python -m tests.redmine.deliver SINK_JSON OUTBOX_FILE

With KILL_AFTER_CREATES=N in the environment the process SIGKILLs itself right after Redmine
accepted its N-th new issue, before the outbox could record the delivery: the worst moment.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

from exporter.tickets.config import RedmineSinkConfig, RetryConfig
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.sinks.redmine import redmine_sink
from exporter.tickets.sinks.tickets import Ticket
from exporter.tickets.store import SqliteStore

TIMEOUT = 300.0


def main(sink_json: str, outbox_file: str) -> int:
    """Deliver until the outbox is empty (0) or the time runs out (1)."""
    cfg = RedmineSinkConfig.model_validate(json.loads(Path(sink_json).read_text()))
    retry = RetryConfig(initial=0.1, max=0.5, max_attempts=1000)
    sink = redmine_sink(cfg)
    kill_after = int(os.environ.get("KILL_AFTER_CREATES", "0"))
    if kill_after:
        create, created = sink.backend.create, []

        def create_then_die(key: str, subject: str, description: str, severity: str
                            ) -> Ticket:
            ticket = create(key, subject, description, severity)
            created.append(ticket)
            if len(created) == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            return ticket

        sink.backend.create = create_then_die  # type: ignore[method-assign]
    outbox = Outbox(SqliteStore(Path(outbox_file)), [Route(sink, retry=retry)])
    outbox.start()
    print("started", flush=True)
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            if all(state != "pending" for state in outbox.store.states().values()):
                return 0
            time.sleep(0.05)
        return 1
    finally:
        outbox.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
