"""The Director's live view: what Bacula is doing now, read through its own console."""
