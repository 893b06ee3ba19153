"""A recording webhook on loopback: what the exporter delivered, and how often."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Recording(ThreadingHTTPServer):
    """A webhook that records every POST: its Idempotency-Key and the job id in the body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.lock = threading.Lock()
        self.posts: list[tuple[str, str]] = []  # (Idempotency-Key, event id of the body)

    def serve(self) -> "Recording":
        """Serve in a background thread (stop with shutdown()); return self."""
        threading.Thread(target=self.serve_forever, name="webhook", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def keys(self) -> set[str]:
        with self.lock:
            return {key for key, _ in self.posts}


class RecordingHandler(BaseHTTPRequestHandler):
    server: Recording

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        with self.server.lock:
            self.server.posts.append((self.headers.get("Idempotency-Key", ""), body["id"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""
