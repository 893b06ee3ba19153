"""Start and stop the real exporter process for tests."""

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.demo import DEMO_ZONE, write_demo_catalog

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    args: list[str], port: int, scheme: str = "http", verify: ssl.SSLContext | bool = True,
    auth: tuple[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the exporter and wait until /readyz answers 200 (with `verify`'s client cert)."""
    proc = subprocess.Popen([sys.executable, "-m", "exporter", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            url = f"{scheme}://127.0.0.1:{port}/readyz"
            if httpx.get(url, timeout=1, verify=verify, auth=auth).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    output = proc.stdout.read() if proc.stdout else b""
    raise AssertionError(f"exporter did not become ready: {output!r}")


def write_config(
    tmp_path: Path, db: Path, catalog: str = "demo", zone: str = DEMO_ZONE,
    poll: str = "1h", extra: str = "",
) -> tuple[Path, int]:
    """Write a config for one SQLite catalog on a free port; scrapes always poll first."""
    port = free_port()
    path = tmp_path / "config.yml"
    path.write_text(
        f'listen: "127.0.0.1:{port}"\npoll_interval: {poll}\nscrape_min_interval: 0s\n'
        f"catalogs:\n  - {{name: {catalog}, url: 'sqlite:///{db}', timezone: {zone}}}\n"
        + extra
    )
    return path, port


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop a process (this PID only): TERM, then KILL if it has not exited in time."""
    proc.terminate()  # a no-op when it has exited already
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_logged(config: Path, port: int, log: Any) -> subprocess.Popen[bytes]:
    """Start the exporter with its output in a log file; wait until /readyz answers 200."""
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(config)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None, "the exporter exited"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the exporter did not become ready")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The exporter over a demo catalog; polls only when scraped."""
    db = tmp_path / "bacula.db"
    write_demo_catalog(db)
    cfg, port = write_config(tmp_path, db)
    proc = start(["--config", str(cfg)], port)
    yield f"http://127.0.0.1:{port}", db
    stop(proc)


