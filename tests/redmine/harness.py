"""Debian's Redmine on 127.0.0.1 for the ticket tests: a fresh SQLite database, an API key.

One Redmine instance (`bacula-exporter-test`) is created once; every session gets its own
database through DATABASE_URL, so nothing of a previous run leaks in. The server is started and
stopped by PID; `stop()`/`start()` on the same port serve the fault tests.
"""

import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.server import free_port
from tests.server import stop as stop_process

ROOT = Path(__file__).resolve().parents[2]
REDMINE = Path("/usr/share/redmine")
INSTANCE = "bacula-exporter-test"
PROJECT = "backups"
START_TIMEOUT = 120.0
STEP_TIMEOUT = 300.0

SETUP_RUBY = """
Setting.rest_api_enabled = '1'
Setting.login_required = '1'
admin = User.find_by_login('admin')
admin.api_key
admin.api_token.update_column(:value, ENV.fetch('TEST_API_KEY'))
project = Project.find_by_identifier(ENV.fetch('TEST_PROJECT')) || Project.create!(
  name: 'Backups', identifier: ENV.fetch('TEST_PROJECT'), is_public: false,
  tracker_ids: Tracker.pluck(:id), enabled_module_names: ['issue_tracking'])
field = IssueCustomField.find_by_name('External id') || IssueCustomField.create!(
  name: 'External id', field_format: 'string', is_for_all: true, is_filter: true,
  searchable: true, tracker_ids: Tracker.pluck(:id))
puts "CUSTOM_FIELD=#{field.id}"
"""


class RedmineError(RuntimeError):
    """Redmine could not be installed, prepared or started."""


def installed() -> bool:
    """Tell whether Debian's Redmine is there."""
    return (REDMINE / "bin" / "redmine-instances").exists()


def install() -> None:
    """Install the packages through the project's script (needs root)."""
    result = subprocess.run([str(ROOT / "scripts" / "install-redmine")], capture_output=True,
                            text=True, timeout=900, check=False)
    if result.returncode != 0 or not installed():
        raise RedmineError(f"scripts/install-redmine failed: {result.stderr[-2000:]}")


class Redmine:
    """A Redmine server with its own database, on a loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = secrets.token_hex(20)
        self.custom_field = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "REDMINE_INSTANCE": INSTANCE, "RAILS_ENV": "production",
            "DATABASE_URL": f"sqlite3:{workdir / 'redmine.sqlite3'}",
            "SECRET_KEY_BASE": secrets.token_hex(32), "TEST_API_KEY": self.api_key,
            "TEST_PROJECT": PROJECT,
            "REDMINE_LANG": "en",
        }

    def _run(self, *args: str) -> str:
        """Run a Redmine command in its directory; raise with its output when it fails."""
        result = subprocess.run(list(args), cwd=REDMINE, env=self.env, capture_output=True,
                                text=True, timeout=STEP_TIMEOUT, check=False)
        if result.returncode != 0:
            raise RedmineError(f"{' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def prepare(self) -> None:
        """Create the instance (once), migrate a fresh database, enable REST, add the field."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._run(str(REDMINE / "bin" / "redmine-instances"), "create", INSTANCE)
        config = Path("/etc/redmine") / INSTANCE / "database.yml"
        if not config.exists():
            # Only a fallback: DATABASE_URL names each session's own file.
            config.write_text("production:\n  adapter: sqlite3\n  database: /dev/null\n")
        self._run("bundle", "exec", "rake", "db:migrate")
        self._run("bundle", "exec", "rake", "redmine:load_default_data")
        script = self.workdir / "setup.rb"
        script.write_text(SETUP_RUBY)
        out = self._run("bin/rails", "runner", str(script))
        field = [line for line in out.splitlines() if line.startswith("CUSTOM_FIELD=")]
        if not field:
            raise RedmineError(f"setup printed no custom field: {out[-500:]}")
        self.custom_field = int(field[0].split("=", 1)[1])

    def start(self) -> None:
        """Start the server and wait until the API answers with the key."""
        log = (self.workdir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            ["bin/rails", "server", "-b", "127.0.0.1", "-p", str(self.port), "-e", "production",
             "-P", str(self.workdir / "server.pid")],
            cwd=REDMINE, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedmineError(f"redmine exited: {self.log_tail()}")
            try:
                if self.get("/users/current.json").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RedmineError(f"redmine did not answer within {START_TIMEOUT}s: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the server by its PID: gracefully, then by force."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, timeout=20)

    def log_tail(self) -> str:
        """Return the end of the server log."""
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def get(self, path: str, **params: Any) -> httpx.Response:
        """GET from the REST API as admin."""
        return httpx.get(self.url + path, params=params, timeout=10,
                         headers={"X-Redmine-API-Key": self.api_key})

    def issues(self) -> list[dict[str, Any]]:
        """Return every issue of the project, open or closed, with custom fields."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.get("/issues.json", project_id=PROJECT, status_id="*", limit=100,
                            offset=len(out), sort="id").json()
            out += page["issues"]
            if len(out) >= page["total_count"] or not page["issues"]:
                return out

    def key_of(self, issue: dict[str, Any]) -> str:
        """Return the external id of an issue."""
        for field in issue.get("custom_fields", []):
            if field["id"] == self.custom_field:
                return str(field.get("value") or "")
        return ""

    def journals(self, issue_id: int) -> list[dict[str, Any]]:
        """Return the journal entries (notes, status changes) of an issue."""
        issue = self.get(f"/issues/{issue_id}.json", include="journals").json()["issue"]
        journals: list[dict[str, Any]] = issue.get("journals", [])
        return journals
