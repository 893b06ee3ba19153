"""A delivering process for the SIGKILL test: runs the outbox workers until nothing is pending.

    python -m tests.redmine.deliver SINK_JSON OUTBOX_FILE

With KILL_AFTER_CREATES=N in the environment the process SIGKILLs itself right after Redmine
accepted its N-th new issue, before the outbox could record the delivery: the worst moment.
KILL_AFTER_UPDATES=N does the same after the N-th change of an existing issue (a note, a close).
"""

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporter.tickets.config import RedmineSinkConfig, RetryConfig
from exporter.tickets.outbox import Outbox, Route
from exporter.tickets.sinks.redmine import redmine_sink
from exporter.tickets.store import SqliteStore
from tests.drain import deliver_all

TIMEOUT = 300.0


def die_after(backend: object, method: str, count: int) -> None:
    """Make the backend's method SIGKILL the process once its count-th call has returned."""
    original: Callable[..., Any] = getattr(backend, method)
    calls: list[None] = []

    def call_then_die(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        calls.append(None)
        if len(calls) == count:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(backend, method, call_then_die)


def main(sink_json: str, outbox_file: str) -> int:
    """Deliver until the outbox is empty (0) or the time runs out (1)."""
    cfg = RedmineSinkConfig.model_validate(json.loads(Path(sink_json).read_text()))
    retry = RetryConfig(initial=0.1, max=0.5, max_attempts=1000)
    sink = redmine_sink(cfg)
    for method in ("create", "update"):
        kill_after = int(os.environ.get(f"KILL_AFTER_{method.upper()}S", "0"))
        if kill_after:
            die_after(sink.backend, method, kill_after)
    outbox = Outbox(SqliteStore(Path(outbox_file)), [Route(sink, retry=retry)])
    return deliver_all(outbox, TIMEOUT, announce=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
