"""The running service: one poller per catalog, their loops, the overview of all of them."""
