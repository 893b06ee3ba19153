"""Prometheus exporter for Bacula and Bareos catalogs."""

__version__ = "0.1.0"
