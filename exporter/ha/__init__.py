"""Replicas: which one polls the catalogs (a lock on the shared state database)."""
