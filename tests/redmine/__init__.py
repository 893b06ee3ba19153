"""A real Redmine on loopback for the ticket tests, and sample events."""
