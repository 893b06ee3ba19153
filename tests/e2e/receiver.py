"""A ticket system stand-in for the end-to-end tests: a webhook receiver on 127.0.0.1.

It records every POST (path, `Idempotency-Key`, JSON body) and answers 200, except that it can
refuse the first POST on some paths with 503, so the exporter's retry is exercised for real.
The server thread is stopped by `close()` (the session fixture calls it in a finalizer).
"""

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Post:
    """One POST the receiver accepted or refused."""

    path: str
    key: str  # the Idempotency-Key header
    body: dict[str, Any]
    accepted: bool


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsable": raw.decode("utf-8", "replace")}
        self.send_response(self.server.record(self.path, self.headers.get("Idempotency-Key", ""),
                                              body))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, refuse_first: set[str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.posts: list[Post] = []
        self.refuse_first = set(refuse_first)

    def record(self, path: str, key: str, body: dict[str, Any]) -> int:
        with self.lock:
            accepted = path not in self.refuse_first
            self.refuse_first.discard(path)
            self.posts.append(Post(path, key, body, accepted))
        return 200 if accepted else 503


class Receiver:
    """The recording webhook endpoint of one lab."""

    def __init__(self, refuse_first: set[str] | None = None) -> None:
        self._server = _Server(refuse_first or set())
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="webhook-receiver")
        self._thread.start()

    def url(self, path: str) -> str:
        """Return the URL of one path (one path per exporter, to tell them apart)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/{path}"

    def posts(self, path: str) -> list[Post]:
        """Return the POSTs on a path, in arrival order."""
        with self._server.lock:
            return [p for p in self._server.posts if p.path == f"/{path}"]

    def accepted(self, path: str) -> list[Post]:
        """Return the POSTs on a path that were answered 200."""
        return [p for p in self.posts(path) if p.accepted]

    def keys(self, path: str) -> Counter[str]:
        """Return how often each Idempotency-Key was accepted on a path."""
        return Counter(p.key for p in self.accepted(path))

    def wait_for(self, path: str, keys: set[str], timeout: float) -> bool:
        """Wait until every key was accepted on a path; False when the time ran out."""
        deadline = time.monotonic() + timeout
        while not keys <= set(self.keys(path)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        """Stop the server thread and close its socket (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
