"""Debian's exim4 on 127.0.0.1 for the e-mail tests: STARTTLS and TLS ports, a Maildir per user.

Each test gets its own exim daemon with its own configuration, spool and Maildir folder (under a
folder the exim user may enter), started with `-bdf` and stopped by PID. Mail to MAILBOXES at
`tickets.test` lands in `<folder>/Maildir/<local part>/new`. AUTH PLAIN (user `bacula`, the
password given) is offered only after TLS.
"""

import contextlib
import email
import email.policy
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from tests.certs import Pair
from tests.server import free_port
from tests.server import stop as stop_process

EXIM = "/usr/sbin/exim4"
DOMAIN = "tickets.test"
MAILBOXES = ("rt", "copy", "other")  # the local parts that have a Maildir
USER = "Debian-exim"
START_TIMEOUT = 30.0

CONFIG = """
primary_hostname = mta.test
domainlist local_domains = {domain}
exim_user = {user}
exim_group = {user}
spool_directory = {folder}/spool
log_file_path = {folder}/log/%slog
pid_file_path = {folder}/exim.pid
daemon_smtp_ports = {port} : {tls_port}
local_interfaces = <; 127.0.0.1.{port} ; 127.0.0.1.{tls_port}
tls_on_connect_ports = {tls_port}
tls_advertise_hosts = *
tls_certificate = {cert}
tls_privatekey = {key}
host_lookup =
keep_environment =
rfc1413_hosts =
acl_smtp_rcpt = check_rcpt

begin acl
check_rcpt:
  accept domains = +local_domains
  deny message = relay not permitted

begin routers
maildir:
  driver = accept
  domains = +local_domains
  local_parts = {mailboxes}
  transport = maildir_delivery

begin transports
maildir_delivery:
  driver = appendfile
  directory = {folder}/Maildir/$local_part_data
  maildir_format
  create_directory
  user = {user}
  group = {user}
  delivery_date_add
  envelope_to_add
  return_path_add

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_condition = ${if and {{eq{$auth2}{bacula}}{eq{$auth3}{{password}}}}}
  server_advertise_condition = ${if def:tls_in_cipher}
  server_set_id = $auth2
"""


class MtaError(RuntimeError):
    """exim could not be started."""


def installed() -> bool:
    """Tell whether Debian's exim4 daemon is there."""
    return Path(EXIM).exists()


class Exim:
    """An exim daemon on two loopback ports (plain/STARTTLS and TLS on connect)."""

    def __init__(self, server: Pair, password: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bx-mta-"))
        self.folder.chmod(0o755)  # the exim user must enter it
        self.port, self.tls_port = free_port(), free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None
        user = pwd.getpwnam(USER)
        for sub in ("spool", "log", "Maildir", "tls"):
            (self.folder / sub).mkdir()
            os.chown(self.folder / sub, user.pw_uid, user.pw_gid)
        cert, key = self.folder / "tls" / "server.crt", self.folder / "tls" / "server.key"
        shutil.copy(server.cert, cert)
        shutil.copy(server.key, key)
        for path in (cert, key):
            os.chown(path, user.pw_uid, user.pw_gid)
            path.chmod(0o600)
        self.config = self.folder / "exim.conf"
        text = CONFIG
        # Plain replacement: exim's own syntax is full of braces.
        for name, value in {"domain": DOMAIN, "user": USER, "folder": self.folder,
                            "port": self.port, "tls_port": self.tls_port, "cert": cert,
                            "key": key, "password": password,
                            "mailboxes": " : ".join(MAILBOXES)}.items():
            text = text.replace(f"{{{name}}}", str(value))
        self.config.write_text(text)

    def start(self) -> None:
        """Start the daemon in the foreground of its process and wait for its ports."""
        self.proc = subprocess.Popen([EXIM, "-C", str(self.config), "-bdf"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # a bad configuration: exim says why
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise MtaError(f"exim exited: {err[-2000:]} {self.log_tail()}")
            # exim writes its PID file once it listens; probing the ports instead would leave
            # children that log the aborted sessions later.
            if (self.folder / "exim.pid").exists():
                return
            time.sleep(0.1)
        self.stop()
        raise MtaError(f"exim did not listen within {START_TIMEOUT}s: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the daemon by its PID, then what it forked (its own process group)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        stop_process(proc, timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started: nothing else

    def cleanup(self) -> None:
        """Stop and remove the folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def queued(self) -> int:
        """Return how many messages wait in exim's queue."""
        out = subprocess.run([EXIM, "-C", str(self.config), "-bpc"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        return int(out.strip() or 0)

    def log_tail(self) -> str:
        """Return the end of exim's main and panic logs."""
        logs = [self.folder / "log" / name for name in ("mainlog", "paniclog", "rejectlog")]
        return " | ".join(p.read_text(errors="replace")[-1500:] for p in logs if p.exists())

    def mailbox(self, local_part: str) -> list[EmailMessage]:
        """Return the messages delivered to a local part, oldest first."""
        folder = self.folder / "Maildir" / local_part / "new"
        if not folder.exists():
            return []
        files = sorted(folder.iterdir(), key=lambda p: (p.stat().st_mtime, p.name))
        out = []
        for path in files:
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            out.append(message)
        return out
