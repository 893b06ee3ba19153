"""The real server: routes, scrape-triggered polls, single-flight, and the demo command."""

import sqlite3
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.catalog.builder import CatalogBuilder
from exporter.config import parse_config
from exporter.demo import DEMO_ZONE, build_demo, write_demo_catalog
from exporter.service.poller import CatalogPoller
from tests.promtext import samples, value
from tests.server import free_port, start, stop


def test_routes(served: tuple[str, Path]) -> None:
    """/healthz, /readyz and /metrics answer with the right types and content."""
    base, _ = served
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz").json()
    assert ready == {"ready": True, "role": "leader",
                     "catalogs": {"demo": {"up": True, "error": None}}}
    resp = httpx.get(f"{base}/metrics")
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(resp.text)
    assert value(found, "bacula_catalog_up", catalog="demo") == 1
    assert value(found, "bacula_exporter_build_info", version="0.1.0") == 1
    assert value(found, "bacula_exporter_leader") == 1  # alone, it always polls
    assert value(found, "bacula_exporter_state_database_up") is None  # it has none
    assert value(found, "bacula_job_running", catalog="demo", client="db01-fd",
                 job="Backup-db01-hourly", level="incremental") == 1
    assert value(found, "bacula_client_info", catalog="demo", client="laptop07-fd",
                 uname="9.6.7 (10Dec22) x86_64-pc-linux-gnu,debian") == 1
    laptop = [k for k in found if ("client", "laptop07-fd") in k[1]
              and k[0] == "bacula_job_last_success_timestamp_seconds"]
    assert laptop == []  # never succeeded: no success series, but the client is visible
    assert value(found, "bacula_restore_runs_total", catalog="demo", client="web02-fd",
                 status="ok") == 1
    plain = httpx.get(f"{base}/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert resp.headers["content-encoding"] == "gzip"  # httpx asks for gzip by default
    names = {k[0] for k in samples(plain.text)}
    assert names >= {k[0] for k in found if k[0].startswith("bacula_")}
    assert httpx.get(f"{base}/nope").status_code == 404


def test_scrape_polls_and_sees_new_jobs(served: tuple[str, Path]) -> None:
    """A job the Director writes after start shows on the next scrape, without restart."""
    base, db = served
    labels = {"catalog": "demo", "client": "web02-fd", "job": "Backup-web02", "level": "full"}
    before = value(samples(httpx.get(f"{base}/metrics").text), "bacula_job_runs_total", **labels)
    b = CatalogBuilder(build_demo().zone)
    b._ids["Job"] = 10_000  # well above the demo's JobIds
    b._clients = {"web02-fd": 2}
    b._pools = {"Full": 1}
    end = time.time()
    b.job("Backup-web02", "web02-fd", end - 100, end, bytes_=5, files=1)
    conn = sqlite3.connect(db)
    b.write(conn.cursor(), "sqlite")
    conn.commit()
    conn.close()
    found = samples(httpx.get(f"{base}/metrics").text)
    assert value(found, "bacula_job_runs_total", **labels) == (before or 0) + 1
    assert value(found, "bacula_job_last_success_timestamp_seconds", **labels) == int(end)


def test_concurrent_scrapes_share_one_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Single flight: callers that arrive while a poll runs wait for it instead of polling."""
    db = tmp_path / "bacula.db"
    write_demo_catalog(db)
    cfg = parse_config({"catalogs": [
        {"name": "d", "url": f"sqlite:///{db}", "timezone": DEMO_ZONE}]}).catalogs[0]
    poller = CatalogPoller(cfg)
    poller.maybe_poll(0, wait=10)
    real_read = poller._read

    def slow_read() -> Any:
        time.sleep(0.5)  # long enough for every thread to queue behind the first
        return real_read()

    monkeypatch.setattr(poller, "_read", slow_read)
    gate = threading.Barrier(8)

    def scrape() -> None:
        gate.wait()
        poller.maybe_poll(0, wait=10)

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert poller.polls["success"] == 2  # the first poll plus exactly one for all eight callers
    poller.close()


def test_demo_command(tmp_path: Path) -> None:
    """`bacula-exporter demo` (the README's first command) serves a realistic catalog."""
    port = free_port()
    proc = start(["demo", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "d.db")], port)
    try:
        found = samples(httpx.get(f"http://127.0.0.1:{port}/metrics").text, "bacula_")
    finally:
        stop(proc)
    names = {k[0] for k in found}
    wanted = (
        "bacula_job_last_success_timestamp_seconds", "bacula_job_last_copy_timestamp_seconds",
        "bacula_job_failures_total", "bacula_job_running", "bacula_restore_runs_total",
        "bacula_pool_volumes", "bacula_client_info", "bacula_catalog_info",
    )
    for name in wanted:
        assert name in names
    statuses = {dict(k[1]).get("status") for k in found if k[0] == "bacula_job_last_run_status"
                and found[k] == 1}
    assert {"ok", "error"} <= statuses  # one failure shows on purpose (tests/unit/test_demo.py)


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    """With tls configured the server speaks HTTPS only, with the certificate from the files."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
         "-out", str(cert)], check=True, capture_output=True, timeout=60,
    )
    db = tmp_path / "bacula.db"
    write_demo_catalog(db)
    port = free_port()
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        f'listen: "127.0.0.1:{port}"\ntls: {{cert_file: "{cert}", key_file: "{key}"}}\n'
        f"catalogs:\n  - {{name: demo, url: 'sqlite:///{db}', timezone: {DEMO_ZONE}}}\n"
    )
    trust = ssl.create_default_context(cafile=str(cert))
    proc = start(["--config", str(cfg)], port, scheme="https", verify=trust)
    try:
        resp = httpx.get(f"https://127.0.0.1:{port}/metrics", verify=trust)
        assert resp.status_code == 200 and "bacula_catalog_up" in resp.text
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        stop(proc)
