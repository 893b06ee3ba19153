"""End-to-end tests against a real Bacula Director, Storage daemon and File daemon."""
