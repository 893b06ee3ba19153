"""Debian's Prometheus and Alertmanager on loopback, and a receiver for Alertmanager's webhooks.

Each daemon runs from a throw-away directory (config, storage, log) on free loopback ports, with
intervals of a second so that a chain test takes seconds, and is stopped by its own PID.
"""

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.server import stop as stop_process

ROOT = Path(__file__).resolve().parent.parent.parent
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def require_binaries() -> None:
    """Skip when Prometheus or Alertmanager is missing locally; fail in CI, where they must be."""
    missing = [b for b in (PROMETHEUS, ALERTMANAGER) if not os.access(b, os.X_OK)]
    if not missing:
        return
    message = f"{', '.join(missing)} missing: run scripts/install-prometheus"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.2)


def shorten_for(rule_files: Sequence[Path], out_dir: Path, duration: str = "0s") -> list[Path]:
    """Copy rule files with every `for:` set to `duration`: the chain tests wiring, not timing.

    promtool's unit tests prove the real `for:` durations; a chain test cannot wait hours.
    """
    out: list[Path] = []
    for path in rule_files:
        data = yaml.safe_load(path.read_text())
        for group in data["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rule["for"] = duration
        target = out_dir / path.name
        target.write_text(yaml.safe_dump(data, sort_keys=False))
        out.append(target)
    return out


class Daemon:
    """A child process with its own directory and log, stopped by its PID."""

    def __init__(self, name: str, argv: list[str], workdir: Path, port: int) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until /-/ready answers 200, or fail with the log's tail."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(ready, timeout, f"{self.name} to become ready")
        except AssertionError:
            self.stop()
            raise AssertionError(f"{self.name} not ready:\n{self.tail()}") from None

    def tail(self, lines: int = 30) -> str:
        """Return the end of the daemon's log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate this process (only this PID), then kill it if it does not exit."""
        stop_process(self.proc)


class Alertmanager(Daemon):
    """Alertmanager routing everything to one webhook, with second-long group timers."""

    def __init__(self, workdir: Path, webhook_url: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "route": {
                "receiver": "webhook",
                "group_by": ["alertname", "catalog", "client", "job", "level"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{
                "name": "webhook",
                "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
            }],
        }
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        super().__init__("alertmanager", [
            ALERTMANAGER,
            "--config.file=alertmanager.yml",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip port: a single instance
            "--log.level=info",
        ], workdir, port)


class Prometheus(Daemon):
    """Prometheus scraping `targets` as job "bacula" every second and evaluating `rule_files`."""

    def __init__(self, workdir: Path, targets: Sequence[str], rule_files: Sequence[Path],
                 alertmanager: str | None = None, metrics_path: str = "/metrics",
                 scrape_configs: Sequence[dict[str, Any]] = ()) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": [str(p) for p in rule_files],
            # Given scrape configs (auth, TLS) replace the plain "bacula" job.
            "scrape_configs": list(scrape_configs) or [{
                "job_name": "bacula",
                # The exporter's `job` label is Bacula's job name; without this Prometheus
                # renames it to `exported_job` and every rule's join on `job` finds nothing.
                "honor_labels": True,
                "metrics_path": metrics_path,
                "static_configs": [{"targets": list(targets)}],
            }],
        }
        if alertmanager is not None:
            target = alertmanager.removeprefix("http://")
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        super().__init__("prometheus", [
            PROMETHEUS,
            "--config.file=prometheus.yml",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # Re-send firing alerts every second (default 1m) so Alertmanager hears them at once.
            "--rules.alert.resend-delay=1s",
            "--log.level=info",
        ], workdir, port)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Return the result vector of an instant query."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def targets(self) -> list[dict[str, Any]]:
        """Return the active scrape targets with their health and last error."""
        response = httpx.get(f"{self.url}/api/v1/targets", timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["activeTargets"])

    def alerts(self) -> list[dict[str, Any]]:
        """Return Prometheus' active (pending and firing) alerts."""
        response = httpx.get(f"{self.url}/api/v1/alerts", timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["alerts"])


@contextmanager
def running(*daemons: Daemon) -> Iterator[None]:
    """Wait for every daemon to be ready; stop them all afterwards, whatever happens."""
    try:
        for daemon in daemons:
            daemon.wait_ready()
        yield
    finally:
        for daemon in reversed(daemons):
            daemon.stop()


class Receiver:
    """An HTTP server on loopback recording every Alertmanager webhook post (payload v4)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.posts.append(payload)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alertmanager"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def targets(self) -> list[dict[str, Any]]:
        """Return the active scrape targets with their health and last error."""
        response = httpx.get(f"{self.url}/api/v1/targets", timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["activeTargets"])

    def alerts(self) -> list[dict[str, Any]]:
        """Return every alert of every post so far, in arrival order."""
        with self._lock:
            return [alert for post in self.posts for alert in post["alerts"]]

    def latest(self) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
        """Return the newest notification per alert (keyed by its sorted labels)."""
        newest: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for alert in self.alerts():
            newest[tuple(sorted(alert["labels"].items()))] = alert
        return newest

    def wait_for(self, check: Callable[["Receiver"], Any], timeout: float, what: str) -> Any:
        """Wait until `check(self)` is truthy."""
        return wait_until(lambda: check(self), timeout, what)


def firing(receiver: Receiver) -> dict[str, dict[str, Any]]:
    """Return the newest notification per client, for alerts whose newest state is firing."""
    return {
        str(a["labels"].get("client")): a
        for a in receiver.latest().values() if a["status"] == "firing"
    }


class Exposition:
    """A stand-in scrape target serving text from a callable, for tests without the exporter."""

    def __init__(self, render: Callable[[], str]) -> None:
        self.render = render
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = target.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Exposition":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def rule_files() -> list[Path]:
    """Return the project's rule files."""
    return sorted((ROOT / "alerts").glob("*.yml"))

