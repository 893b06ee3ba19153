"""The web face: the FastAPI app, its routes and the status page."""
