"""Load on the Alertmanager receiver: a sustained rate of notifications, with scrapes meanwhile.

Starts the real exporter (`python -m exporter --config`) on loopback over the demo catalog, with
the bridge configured (state_dir, bearer auth, a webhook sink pointing at a recording server in
this process), then sends POST /alertmanager open-loop at --rate requests per second for
--duration seconds (each a distinct notification, so each must be stored and delivered), while
--scrapers threads fetch /metrics every --scrape-every seconds. Reports sent / accepted /
failed, latency percentiles of both, and whether every accepted notification reached the
webhook. With --state-database (an empty PostgreSQL database) the outbox lives there instead,
and --replicas exporters share it, the notifications spread over them.

    .venv/bin/python -m bench.load_alertmanager [--rate 200] [--duration 60] [--json out.json]
        [--state-database postgresql://postgres@127.0.0.1:5432/bench_state --replicas 2]

Everything it starts stops by itself: the exporter is terminated and the temporary directory
removed at the end, also on errors or Ctrl-C.
"""

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from exporter.demo import DEMO_ZONE, write_demo_catalog

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"


class Webhook(ThreadingHTTPServer):
    """Counts the Idempotency-Keys the exporter delivers."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.keys: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.keys[self.headers.get("Idempotency-Key", "")] += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def exporter(tmp: Path, hook: str, state_database: str | None = None, name: str = "a"
             ) -> Iterator[str]:
    """Run one exporter with the bridge; yield its base URL."""
    db = tmp / "bacula.db"
    if not db.exists():
        write_demo_catalog(db)
    (tmp / "token").write_text(TOKEN + "\n")
    port = free_port()
    config = tmp / f"{name}.yml"
    store: dict[str, Any] = ({"state_database": {"url": state_database}} if state_database
                             else {"state_dir": str(tmp / "state")})
    config.write_text(json.dumps({
        "listen": f"127.0.0.1:{port}", "poll_interval": "30s", "scrape_min_interval": "5s",
        "log_level": "warning", **store,
        "catalogs": [{"name": "demo", "url": f"sqlite:///{db}", "timezone": DEMO_ZONE}],
        "sinks": [{"name": "hook", "type": "webhook", "url": hook, "events": ["alert"],
                   "retry": {"initial": "0.2s", "max": "2s"}}],
        "alertmanager": {"auth": {"type": "bearer", "token_file": str(tmp / "token")}},
    }))
    with (tmp / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(config)],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the exporter did not start; see {tmp / name}.log")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def notification(i: int, start: datetime) -> dict[str, Any]:
    """Return the i-th notification: its own startsAt, so each is a new event."""
    labels = {"alertname": "BenchAlert", "client": f"fd{i % 50}", "severity": "warning"}
    return {
        "version": "4", "groupKey": f'{{}}:{{client="fd{i % 50}"}}', "truncatedAlerts": 0,
        "status": "firing", "receiver": "bench",
        "groupLabels": {"alertname": "BenchAlert", "client": f"fd{i % 50}"},
        "commonLabels": labels, "commonAnnotations": {"summary": "load"},
        "externalURL": "http://alertmanager.invalid",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "load"},
                    "startsAt": (start + timedelta(milliseconds=i)).isoformat(),
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": ""}],
    }


def percentiles(values: list[float]) -> dict[str, float]:
    """Return p50, p90, p99 and max in milliseconds."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0)}


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request on a kept-alive connection; return the status and body."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return int(lines[0].split()[1]), await reader.readexactly(length)


async def send_all(bases: list[str], rate: float, duration: float, connections: int
                   ) -> dict[str, Any]:
    """Send open-loop: request i is due at i / rate whatever the earlier ones are doing.

    A lean HTTP/1.1 client on `connections` kept-alive sockets (httpx costs too much CPU to
    hold 200/s next to the server on a small machine). Latency counts from the due time, so
    time spent waiting for a free connection is not hidden (no coordinated omission).
    """
    total = int(rate * duration)
    start = datetime.now(UTC)
    latencies: list[float] = []
    service: list[float] = []
    codes: Counter[str] = Counter()
    stored: set[str] = set()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def worker(base: str) -> None:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (item := await queue.get()) is not None:
                i, due = item
                body = json.dumps(notification(i, start)).encode()
                request = (
                    f"POST /alertmanager HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                began = time.monotonic()
                try:
                    code, answer = await _exchange(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    codes[type(exc).__name__] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                    continue
                now = time.monotonic()
                latencies.append(now - due)
                service.append(now - began)
                codes[str(code)] += 1
                if code == 200:
                    data = json.loads(answer)
                    if data.get("status") == "stored":
                        stored.add(data["id"])
        finally:
            writer.close()

    workers = [asyncio.create_task(worker(bases[k % len(bases)])) for k in range(connections)]
    t0 = time.monotonic()
    for i in range(total):
        due = t0 + i / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        queue.put_nowait((i, due))
    sending = time.monotonic() - t0
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.monotonic() - t0
    return {"sent": total, "sending_s": round(sending, 2), "elapsed_s": round(elapsed, 2),
            "achieved_rate": round(total / elapsed, 1), "codes": dict(codes),
            "accepted": codes["200"], "failed": total - codes["200"], "stored_ids": stored,
            "latency_ms": percentiles(latencies), "service_time_ms": percentiles(service)}


def scrape_loop(base: str, every: float, stop: threading.Event, out: dict[str, Any]) -> None:
    """Fetch /metrics every `every` seconds (0: back to back) until stopped."""
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    with httpx.Client(base_url=base, timeout=30) as client:
        while not stop.wait(every):
            began = time.monotonic()
            try:
                code = str(client.get("/metrics").status_code)
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            if code == "200":
                latencies.append(time.monotonic() - began)
            else:
                failures[code] += 1
    out.setdefault("latencies", []).extend(latencies)
    out.setdefault("failures", Counter()).update(failures)


def main() -> None:
    """Run the load and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=32,
                        help="kept-alive connections the notifications are sent on")
    parser.add_argument("--scrapers", type=int, default=2, help="concurrent /metrics loops")
    parser.add_argument("--scrape-every", type=float, default=0.5,
                        help="seconds between the scrapes of one loop (0: back to back)")
    parser.add_argument("--drain", type=float, default=180.0,
                        help="seconds to wait for the webhook to receive everything")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--state-database", help="an empty PostgreSQL database for the outbox")
    parser.add_argument("--replicas", type=int, default=1,
                        help="exporters sharing --state-database")
    args = parser.parse_args()
    if args.replicas > 1 and not args.state_database:
        parser.error("--replicas above 1 needs --state-database")

    hook = Webhook()
    threading.Thread(target=hook.serve_forever, name="webhook", daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-am-") as tmp, ExitStack() as running:
            bases = [running.enter_context(exporter(Path(tmp), hook.url, args.state_database,
                                                    chr(ord("a") + k)))
                     for k in range(args.replicas)]
            stop = threading.Event()
            scraped: dict[str, Any] = {}
            scrapers = [threading.Thread(target=scrape_loop,
                                         args=(bases[k % len(bases)], args.scrape_every, stop,
                                               scraped),
                                         daemon=True) for k in range(args.scrapers)]
            for thread in scrapers:
                thread.start()
            try:
                sent = asyncio.run(send_all(bases, args.rate, args.duration,
                                                args.connections))
            finally:
                stop.set()
                for thread in scrapers:
                    thread.join(timeout=60)
            stored: set[str] = sent.pop("stored_ids")
            drained = time.monotonic()
            deadline = drained + args.drain
            while time.monotonic() < deadline:
                with hook.lock:
                    if stored <= set(hook.keys):
                        break
                time.sleep(0.2)
            with hook.lock:
                keys = Counter(hook.keys)
    finally:
        hook.shutdown()
    figures = {
        "store": "postgresql" if args.state_database else "sqlite", "replicas": args.replicas,
        **sent,
        "stored_new": len(stored),
        "delivered_to_webhook": len(stored & set(keys)),
        "lost": len(stored - set(keys)),
        "webhook_redeliveries": sum(keys.values()) - len(keys),
        "drain_s": round(time.monotonic() - drained, 2),
        "scrapes": len(scraped.get("latencies", [])),
        "scrape_failures": dict(scraped.get("failures", {})),
        "scrape_latency_ms": percentiles(scraped.get("latencies", [])),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if figures["failed"] or figures["lost"] or figures["scrape_failures"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
