"""The ticket path: events, the durable outbox and its stores, sinks, the Alertmanager receiver."""
