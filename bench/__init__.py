"""Benchmark of the exporter against large generated catalogs (not run by CI)."""
