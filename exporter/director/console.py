"""Run the Director's own console program, bconsole, with a private config and a hard timeout."""

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from exporter.director.config import DirectorConfig

# What bconsole prints when the login fails (the same on 9.6.7 and 15.0.3).
AUTH_FAILED = "Director authorization problem"
CONNECTED = "1000 OK:"  # the Director's greeting after a good login


class ConsoleError(Exception):
    """bconsole could not give an answer; the message names the cause and holds no secret."""


@dataclass(frozen=True)
class Answer:
    """What one bconsole run printed, decoded, and how long it took."""

    text: str
    seconds: float
    cpu_seconds: float  # the child's user + system time


def runtime_dir() -> Path:
    """Return a private folder for console configs: systemd's RuntimeDirectory, else a temp one."""
    base = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    path = Path(tempfile.mkdtemp(prefix="bacula-exporter-", dir=base or None))
    path.chmod(0o700)
    return path


def _quote(value: str) -> str:
    """Quote a value for bconsole.conf (the config model refuses what cannot be quoted)."""
    return f'"{value}"'


def console_conf(cfg: DirectorConfig) -> str:
    """Return the bconsole.conf text for one Director (it holds the password)."""
    password = _quote(cfg.password().get())
    tls = ""
    if cfg.tls is not None:
        tls = (f"\n  TLS Enable = yes\n  TLS Require = yes\n"
               f"  TLS CA Certificate File = {_quote(str(cfg.tls.ca_file))}")
        if cfg.tls.cert_file is not None and cfg.tls.key_file is not None:
            tls += (f"\n  TLS Certificate = {_quote(str(cfg.tls.cert_file))}"
                    f"\n  TLS Key = {_quote(str(cfg.tls.key_file))}")
    # bconsole wants a Password in its Director resource even when a named Console logs in.
    text = (f"Director {{\n  Name = {_quote(cfg.name)}\n  Address = {_quote(cfg.address)}\n"
            f"  DIRport = {cfg.port}\n  Password = {password}{'' if cfg.console_name else tls}"
            "\n}\n")
    if cfg.console_name:
        text += (f"Console {{\n  Name = {_quote(cfg.console_name)}\n  Password = {password}\n"
                 f"  Director = {_quote(cfg.name)}{tls}\n}}\n")
    return text


class Console:
    """One Director's bconsole: each run gets the commands on stdin and is killed at the timeout."""

    def __init__(self, cfg: DirectorConfig, folder: Path) -> None:
        self.cfg = cfg
        self.conf = folder / f"{cfg.name}.conf"
        self._lock = threading.Lock()

    def _write_conf(self) -> None:
        """Write the config afresh (a rotated password file is picked up), readable by us only."""
        text = console_conf(self.cfg)
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)

    def run(self, commands: list[str]) -> Answer:
        """Run bconsole with these commands; raise ConsoleError unless the Director answered."""
        with self._lock:
            try:
                self._write_conf()
            except (OSError, ValueError) as exc:
                raise ConsoleError(f"cannot write the console config: {exc}") from None
            script = "\n".join([*commands, "quit"]) + "\n"
            before = os.times()
            start = time.monotonic()
            try:
                # A session of its own, so the timeout kills bconsole and anything it started;
                # -n: no line editing (stdin is a pipe).
                proc = subprocess.Popen(
                    [self.cfg.bconsole, "-n", "-c", str(self.conf)], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                )
            except OSError as exc:
                raise ConsoleError(f"cannot run {self.cfg.bconsole}: {exc.strerror}") from None
            try:
                out, _ = proc.communicate(script.encode(), timeout=self.cfg.timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                raise ConsoleError(
                    f"no answer from {self.cfg.address}:{self.cfg.port} within "
                    f"{self.cfg.timeout:g} s (bconsole killed)") from None
            seconds = time.monotonic() - start
            after = os.times()
        # Decoded leniently: a Storage daemon's answer may hold stray non-UTF-8 bytes.
        text = out.decode("utf-8", "replace")
        cpu = (after.children_user - before.children_user
               + after.children_system - before.children_system)
        if AUTH_FAILED in text:
            raise ConsoleError(f"the Director at {self.cfg.address}:{self.cfg.port} refused the "
                               "login: check the console name and password (and TLS)")
        if CONNECTED not in text:
            reason = next((line.strip() for line in text.splitlines()
                           if "ERR=" in line or "Unable to connect" in line), "")
            raise ConsoleError(
                f"cannot reach the Director at {self.cfg.address}:{self.cfg.port}"
                + (f": {reason}" if reason else f" (bconsole exit {proc.returncode})"))
        return Answer(text, seconds, cpu)


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    """Kill bconsole's whole session and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
