"""Run an outbox in a child process until nothing is pending (the SIGKILL tests' delivery loop)."""

import time

from exporter.tickets.outbox import Outbox


def deliver_all(outbox: Outbox, timeout: float, announce: bool = False) -> int:
    """Deliver until no row is pending: exit code 0, or 1 when `timeout` ran out first."""
    outbox.start()
    if announce:
        print("started", flush=True)  # the parent may now count on deliveries under way
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if all(state != "pending" for state in outbox.store.states().values()):
                return 0
            time.sleep(0.05)
        return 1
    finally:
        outbox.stop()
