"""A Bacula lab for the Director's live view: a job that waits for media, one on a schedule.

Beside the lab's usual resources: a Storage `NoLabel` on a device with `Label Media = no`, a pool
`EmptyPool` with no volume and no Label Format (so `WaitMedia` waits for an appendable volume
until someone labels one), and `Sched`, scheduled for a slot a few minutes after set-up.
"""

import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.certs import Pair, authority, issue
from tests.e2e.bacula import SBIN, BaculaLab, Release, _terminate

# Ports apart from the scenario's labs: 9.6 and 15 side by side.
PORT_BASES = {"9.6": 19300, "15": 19320}


class DirectorLab(BaculaLab):
    """One Director + SD + FD with the waiting and scheduled jobs of the live-view tests."""

    def __init__(self, root: Path, release: Release, tz: str, slot_after: float) -> None:
        super().__init__("sqlite", root, tz=tz, port_base=PORT_BASES[release.name],
                         release=release)
        self.slot_after = slot_after  # at least this many seconds from set-up to the slot
        self.slot = 0.0  # Unix time of Sched's slot, set by setup()
        self.ca: Pair | None = None  # the CA of the Director's TLS certificate, set by setup()
        self.console_cert: Pair | None = None  # a client certificate from the same CA

    @property
    def console_password(self) -> str:
        """Return the Director's console password (the exporter reads it from a file)."""
        return self._secret["console"]

    def bconsole(self) -> str:
        """Return a program that runs this release's bconsole (a chroot wrapper for 15)."""
        if self.release.root is None:
            return str(SBIN / "bconsole")
        wrapper = self.root / "bconsole"
        seen = self.root / "console"  # bind-mounted: the chroot sees it at the same path
        seen.mkdir(mode=0o700, exist_ok=True)
        # The exporter calls `bconsole -n -c FILE` with FILE in its private folder, which the
        # chroot cannot see: a copy goes where it can.
        wrapper.write_text(
            '#!/bin/sh\nset -e\ncopy="' + str(seen) + '/$(basename "$3")"\n'
            'install -m 600 "$3" "$copy"\n'
            f'exec chroot {self.release.root} {SBIN / "bconsole"} "$1" "$2" "$copy"\n')
        wrapper.chmod(0o755)
        return str(wrapper)

    def _write_configs(self) -> None:
        """Add the live-view resources to the lab's Director and Storage daemon."""
        super()._write_configs()
        zone = ZoneInfo(self.tz)
        # Whole minutes: Bacula schedules by the minute, in the Director's zone.
        soon = datetime.now(zone) + timedelta(seconds=self.slot_after + 60)
        slot = soon.replace(second=0, microsecond=0)
        self.slot = slot.timestamp()
        nolabel = self.volumes / "nolabel"
        nolabel.mkdir()
        # The Client takes several jobs at once, so a second WaitMedia waits on its Job's limit
        # (`j`, max_jobs) rather than on the Client's default of one (`c`).
        director = self.etc / "bacula-dir.conf"
        text = director.read_text()
        assert text.count("  Name = good-fd\n") == 1 and text.count("  DirAddress = ") == 1
        text = text.replace(
            "  Name = good-fd\n", "  Name = good-fd\n  Maximum Concurrent Jobs = 10\n")
        # Certificate TLS offered to consoles, not required: the lab's own bconsole and the
        # exporter's plain polls still log in; a console that asks for TLS gets it.
        tls = self.root / "tls"
        self.ca = authority(tls, "lab-ca")
        server = issue(self.ca, tls, "127.0.0.1", server=True)
        self.console_cert = issue(self.ca, tls, "console")
        text = text.replace("  DirAddress = 127.0.0.1\n", f"""  DirAddress = 127.0.0.1
  TLS Enable = yes
  TLS Require = no
  TLS Verify Peer = no
  TLS Certificate = "{server.cert}"
  TLS Key = "{server.key}"
  TLS CA Certificate File = "{self.ca.cert}"
""")
        director.write_text(text)
        with director.open("a") as conf:
            conf.write(f"""
{self._storage("NoLabel", "NoLabelDev", "NoLabel")}
Pool {{
  Name = EmptyPool
  Pool Type = Backup
  Storage = NoLabel
}}
Job {{
  Name = WaitMedia
  JobDefs = Defaults
  Pool = EmptyPool
  Storage = NoLabel
  Maximum Concurrent Jobs = 1
}}
Schedule {{
  Name = SoonSched
  Run = Level=Full daily at {slot:%H:%M}
}}
Job {{
  Name = Sched
  JobDefs = Defaults
  Schedule = SoonSched
}}
""")
        with (self.etc / "bacula-sd.conf").open("a") as conf:
            conf.write(f"""
Device {{
  Name = NoLabelDev
  Media Type = NoLabel
  Archive Device = "{nolabel}"
  LabelMedia = no
  Random Access = yes
  AutomaticMount = yes
  RemovableMedia = no
  AlwaysOpen = no
  Maximum Concurrent Jobs = 5
}}
""")

    def stop_director(self) -> None:
        """Stop the Director alone (TERM, then KILL: one with a blocked job ignores TERM)."""
        proc = self._procs.pop("dir", None)
        if proc is not None:
            _terminate(proc, grace=3)

    def start_director(self) -> None:
        """Start the Director again with the same config and catalog."""
        out = (self.logs / "bacula-dir.out").open("ab")
        argv, env = self._command([str(SBIN / "bacula-dir"), "-f", "-c",
                                   str(self.etc / "bacula-dir.conf")])
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        out.close()
        self._procs["dir"] = proc
        self._await_port("dir", proc, self.ports.dir)
