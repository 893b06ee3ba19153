"""Rendering: the model and the SLA policies into the Prometheus exposition."""
