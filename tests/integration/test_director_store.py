"""The Director's scheduled slots in the shared PostgreSQL state database."""

from concurrent.futures import ThreadPoolExecutor

from exporter.core.settings import StateDatabaseConfig
from exporter.director.parse import Scheduled
from exporter.director.schedule import Slot, Slots
from exporter.director.store import PostgresSlotStore, ReadOnlySlotStore


def test_slots_survive_a_failover_through_the_state_database(state_database: str) -> None:
    """What the old leader kept, the new one reads: pending and missed, per Director."""
    cfg = StateDatabaseConfig(url=state_database)
    # Two replicas use the table for the first time at once: one creates it, none fails.
    stores = [PostgresSlotStore(cfg), PostgresSlotStore(cfg)]
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda s: s.load("dc1"), stores)) == [[], []]
    leader = Slots(grace=60)
    leader.update([Scheduled("Nightly", "full", 1000), Scheduled("Weekly", "full", 500)],
                  {}, now=570)
    assert leader.missed == {("Weekly", "full"): 500}
    stores[0].save("dc1", leader.saved())
    stores[0].save("dc2", [(Slot("Other", "incremental", 42.5), False)])
    follower = Slots(grace=60)
    follower.load(stores[1].load("dc1"))
    assert follower.saved() == leader.saved()
    assert stores[1].load("dc2") == [(Slot("Other", "incremental", 42.5), False)]
    # A one-shot `status` reads the slots but never rewrites them.
    ReadOnlySlotStore(stores[1]).save("dc1", [])
    assert stores[0].load("dc1") == leader.saved()
