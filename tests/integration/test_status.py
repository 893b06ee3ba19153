"""The status overview: its verdicts, the page (also in real headless Chromium) and the check."""

import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from exporter.catalog.builder import CatalogBuilder
from exporter.service.overview import (
    CatalogHealth,
    Standing,
    StatusRow,
    human_age,
    level_of_trouble,
)
from exporter.web.page import render_page
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
NOW = 1_800_000_000.0


def row(client: str, state: Standing, **kw: object) -> StatusRow:
    """A row with defaults."""
    base: dict[str, object] = dict(
        catalog="main", client=client, job="Backup", level="full", standing=state,
        last_success=NOW - 3600, max_age=7 * 86400.0, last_status="ok", last_failure=None,
        reason="", running_since=None, bytes=1,
    )
    base.update(kw)
    return StatusRow(**base)  # type: ignore[arg-type]


def test_human_age() -> None:
    """Ages read like an admin would say them."""
    assert [human_age(x) for x in (None, 5, 300, 3600, 5400, 86400 * 3 + 7200)] == [
        "never", "5s", "5m", "1h", "1h 30m", "3d 2h"]


def test_check_levels_follow_the_plugin_conventions() -> None:
    """0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one line with perfdata."""
    up = [CatalogHealth("main", True, "", "bacula", 16)]
    code, line = level_of_trouble([row("a", Standing.OK)], up)
    assert code == 0 and line.startswith("BACULA OK") and "| ok=1 failing=0" in line
    code, line = level_of_trouble([row("a", Standing.OK), row("b", Standing.FAILING,
                                                          last_status="error")], up)
    assert code == 1 and "b/Backup/full last run error" in line
    code, line = level_of_trouble([row("c", Standing.LATE), row("d", Standing.NEVER)], up)
    assert code == 2 and "2 out of SLA" in line and "late=1 never=1" in line
    down = [CatalogHealth("main", False, "cannot connect: refused", "", 0)]
    code, line = level_of_trouble([row("a", Standing.OK)], down)
    assert code == 3 and "cannot connect: refused" in line


def test_page_escapes_catalog_text() -> None:
    """A hostile client name or log line is shown as text, never run."""
    rows = [row("<script>alert(1)</script>", Standing.FAILING, reason='"><img src=x onerror=y>')]
    page = render_page(rows, [CatalogHealth("main", True, "", "bacula", 16)], nonce="n0nce",
                       now=NOW)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "<img src=x" not in page
    assert page.count('nonce="n0nce"') == 2  # the one style and the one script


def test_page_route_and_headers(served: tuple[str, Path]) -> None:
    """GET / serves the overview with a strict content security policy."""
    base, _ = served
    resp = httpx.get(f"{base}/")
    assert resp.status_code == 200
    nonce = re.search(r"script-src 'nonce-([^']+)'", resp.headers["content-security-policy"])
    assert nonce and f'<script nonce="{nonce[1]}">' in resp.text
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert 'data-state="late"' in resp.text and "mail01-fd" in resp.text
    assert 'data-state="never"' in resp.text and "laptop07-fd" in resp.text


def chromium() -> str:
    """Return the Chromium binary, installing it with the project's script if needed."""
    found = shutil.which("chromium")
    if not found:
        subprocess.run([str(ROOT / "scripts" / "install-browser")], check=False, timeout=600)
        found = shutil.which("chromium")
    if not found:
        if IN_CI:
            raise AssertionError("chromium is missing in CI")
        pytest.skip("chromium not installed")
    return found


def browse(url: str, *extra: str) -> str:
    """Load a page in real headless Chromium (JavaScript on) and return what it printed."""
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--virtual-time-budget=3000",
            f"--user-data-dir={OUTPUT / 'chromium-profile'}", *extra, url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.integration
def test_page_in_real_chromium(served: tuple[str, Path]) -> None:
    """The page renders, its filter hides the other rows, and screenshots are saved."""
    base, _ = served
    OUTPUT.mkdir(exist_ok=True)
    dom = browse(f"{base}/?q=mail01", "--dump-dom")
    rows = re.findall(r'<tr data-state="\w+"( hidden="")?>(.*?)</tr>', dom, re.S)
    visible = [body for hidden, body in rows if not hidden]
    assert len(rows) > 5
    assert len(visible) == 2 and all("mail01-fd" in body for body in visible)
    assert re.search(r'<span id="shown">2</span>', dom)  # mail01's full and incremental
    for name, size in (("desktop", "1280,900"), ("phone", "412,915")):
        path = OUTPUT / f"status-page-{name}.png"
        path.unlink(missing_ok=True)
        browse(f"{base}/", f"--screenshot={path}", f"--window-size={size}", "--hide-scrollbars")
        assert path.stat().st_size > 10_000


def write_catalog(path: Path, jobs: list[tuple[str, float, str]]) -> Path:
    """A SQLite catalog with one full backup per (client, end time, status)."""
    b = CatalogBuilder(ZoneInfo("UTC"))
    for client, end, status in jobs:
        b.job(f"Backup-{client}", client, end - 60, end, status=status)
    conn = sqlite3.connect(path)
    b.write(conn.cursor(), "sqlite", version=16)
    conn.commit()
    conn.close()
    config = path.with_suffix(".yml")
    config.write_text(f"catalogs:\n  - {{name: c, url: 'sqlite:///{path}', timezone: UTC}}\n"
                      "sla:\n  defaults:\n    max_age: {full: 7d, incremental: 26h}\n")
    return config


def check(config: Path) -> tuple[int, str]:
    """Run `bacula-exporter status --check` and return its exit code and output."""
    done = subprocess.run([sys.executable, "-m", "exporter", "status", "--config", str(config),
                           "--check"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    return done.returncode, done.stdout.strip()


def test_status_check_command(tmp_path: Path) -> None:
    """The check exits 0, 1, 2 or 3 as Icinga expects, with one line of output."""
    now = time.time()
    assert check(write_catalog(tmp_path / "ok.db", [("a", now - 3600, "T")]))[0] == 0
    code, out = check(write_catalog(tmp_path / "warn.db",
                                    [("a", now - 7200, "T"), ("a", now - 3600, "f")]))
    assert code == 1 and out.startswith("BACULA WARNING") and "\n" not in out
    code, out = check(write_catalog(tmp_path / "crit.db", [("a", now - 9 * 86400, "T")]))
    assert code == 2 and "a/Backup-a/full late" in out
    missing = tmp_path / "missing.yml"
    missing.write_text(f"catalogs:\n  - {{name: c, url: 'sqlite:///{tmp_path}/nope.db', "
                       "timezone: UTC}\n")
    code, out = check(missing)
    assert code == 3 and out.startswith("BACULA UNKNOWN - catalog unreachable")
    table = subprocess.run([sys.executable, "-m", "exporter", "status", "--config",
                            str(tmp_path / "crit.yml")], capture_output=True, text=True,
                           timeout=120, cwd=ROOT)
    assert table.returncode == 2
    assert table.stdout.splitlines()[0].split()[:3] == ["STATE", "CATALOG", "CLIENT"]
    assert "late" in table.stdout and "9d" in table.stdout
