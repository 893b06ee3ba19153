"""Shared plumbing below every room: config primitives, durations, database connections."""
