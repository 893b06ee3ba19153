"""The Director's live view as logic: parsing both releases' answers, slots, rendering."""

import os
from collections import Counter
from pathlib import Path

import pytest

from exporter.director.config import DirectorConfig
from exporter.director.console import Console, ConsoleError
from exporter.director.parse import (
    Device,
    LiveJob,
    Parsed,
    Scheduled,
    blocked_devices,
    read_devices,
    read_director,
    records,
    shown_client,
    split,
)
from exporter.director.render import FAMILIES, View, render
from exporter.director.schedule import Slot, Slots
from exporter.director.store import MemorySlotStore, SqliteSlotStore
from exporter.exposition.metrics import assemble
from tests.promtext import samples, value

GOLDEN = Path(__file__).parent / "golden" / "director.prom"
COMMANDS = [".api 2", ".status dir header", ".status dir running", ".status dir scheduled",
            ".status dir terminated", ".storage", "quit"]

RUNNING_WAIT = """jobid=2
level=F
type=B
status=m
status_desc=is waiting for an appendable Volume
jobbytes=0
job=WaitMedia.2026-11-30_12.43.57_05
name=WaitMedia
clientname=scen-fd
schedtime_epoch=1796042637
starttime_epoch=1796042639
errors=0"""
RUNNING_QUEUED = """jobid=3
level=I
type=B
status=j
jobbytes=0
job=WaitMedia.2026-11-30_12.43.58_06
name=WaitMedia
clientname=scen-fd
schedtime_epoch=1796042638
starttime_epoch=1796042638
errors=0"""
SCHEDULED = """name=Sched
level=F
type=B
priority=10
schedtime_epoch=1796042760
volume=File-0001"""
TERMINATED = """jobid=1
level=F
type=B
status=T
job=BackupOK.2026-11-30_12.40.00_01
starttime_epoch=1796042400
endtime_epoch=1796042410"""

# Bacula 15.0.3's framing: titles after a blank line, `]` glued to the last record, a trailer.
TRANSCRIPT_15 = f"""Connecting to Director 127.0.0.1:39141
1000 OK: 10002 scen-dir Version: 15.0.3 (25 March 2025)
Enter a period to cancel a command.
.api 2
.status dir header

header:

name=scen-dir
version=15.0.3 (25 March 2025)
started_epoch=1796042634
jobs_running=2
]

error=0
errmsg=

.status dir running

running:

{RUNNING_WAIT}


{RUNNING_QUEUED}
]

error=0
errmsg=

.status dir scheduled

scheduled:

{SCHEDULED}
]

error=0
errmsg=

.status dir terminated

terminated:

{TERMINATED}
]

error=0
errmsg=

.storage
File1
NoLabel
quit
"""

# Bacula 9.6.7's: titles right after the command, no `scheduled:` title, no `]`, no trailer.
TRANSCRIPT_96 = f"""Connecting to Director 127.0.0.1:19301
1000 OK: 103 scen-dir Version: 9.6.7 (10 December 2020)
Enter a period to cancel a command.
.api 2
.status dir header
header:
name=scen-dir
version=9.6.7 (10 December 2020)
started_epoch=1796042634

.status dir running
running:

{RUNNING_WAIT}


{RUNNING_QUEUED}


.status dir scheduled

{SCHEDULED}


.status dir terminated
terminated:

{TERMINATED}


.storage
File1
NoLabel
quit
"""


@pytest.mark.parametrize("text", [TRANSCRIPT_15, TRANSCRIPT_96], ids=["15.0.3", "9.6.7"])
def test_both_releases_read_alike(text: str) -> None:
    """Header, running, scheduled, terminated and storages come out the same from either."""
    parsed = Parsed()
    read_director(split(text, COMMANDS), parsed)
    assert parsed.unparsed == []
    assert parsed.started == 1796042634.0
    assert parsed.version in ("15.0.3", "9.6.7")
    assert parsed.jobs == [
        LiveJob(2, "WaitMedia", "scen-fd", "full", "m", "media", 0, 1796042639.0),
        LiveJob(3, "WaitMedia", "scen-fd", "incremental", "j", "max_jobs", 0, 1796042638.0),
    ]
    assert parsed.scheduled == [Scheduled("Sched", "full", 1796042760)]
    # The terminated job's name comes from its unique Job name.
    assert parsed.started_jobs == {"WaitMedia": 1796042639.0, "BackupOK": 1796042400.0}
    assert parsed.storages == ["File1", "NoLabel"]


def test_lines_nobody_understands_are_returned_not_raised() -> None:
    """A bad command's answer, a stray line and a non-zero error are kept as unparsed."""
    unparsed: list[str] = []
    found = records(["1900 Bad .status command, wrong argument.", "jobid=4", "status=R",
                     "garbage line", "error=1", "errmsg=boom"], "jobid", unparsed)
    assert found == [{"jobid": "4", "status": "R"}]
    assert unparsed == ["1900 Bad .status command, wrong argument.", "garbage line", "error=1"]
    assert records(["orphan=1"], "jobid", unparsed) == []
    assert unparsed[-1] == "orphan=1"


def test_unknown_status_letters_are_other_and_finished_jobs_are_left_out() -> None:
    """A letter we do not know waits as `other`; a job listed as terminated is not running."""
    parsed = Parsed()
    running = ["jobid=5", "status=Z", "name=Odd", "level=F", "",
               "jobid=6", "status=T", "name=Done", "level=F"]
    read_director({".status dir running": running}, parsed)
    assert [(j.name, j.state) for j in parsed.jobs] == [("Odd", "other")]


SD_TEXT = """scen-sd Version: 15.0.3 (25 March 2025) x86_64-pc-linux-gnu debian trixie/sid
Device status:

Device File: "NoLabelDev" (/x/volumes/nolabel) is not open.
   Device is BLOCKED waiting to create a volume for:
       Pool:        EmptyPool
   Available Space=77.42 GB
Device File: "Dev1" (/x/volumes) is not open.
   Device is being initialized.
==""".splitlines()
SD_DEVICES = """name=NoLabelDev
type=File
media_type=NoLabel
free_space=77427814400
total_space=270553174016
mounted=0
volume=
blocked=0


name=Tape0
type=Tape
media_type=LTO8
total_space=0
mounted=1
volume=A00001L8
blocked=0
]""".splitlines()


def test_a_device_is_blocked_by_its_text_not_its_api_record() -> None:
    """The API record says blocked=0 while the text says BLOCKED: the text wins."""
    assert blocked_devices(SD_TEXT) == {"NoLabelDev"}
    unparsed: list[str] = []
    devices = read_devices("NoLabel", SD_DEVICES, SD_TEXT, unparsed)
    assert devices == [
        Device("NoLabel", "NoLabelDev", "File", "NoLabel", False, "", True, 77427814400,
               270553174016),
        Device("NoLabel", "Tape0", "Tape", "LTO8", True, "A00001L8", False, None, None),
    ]
    assert unparsed == []


def test_the_client_of_a_job_comes_from_show_job() -> None:
    """`show job=X` names the Client on its `--> Client:` line."""
    lines = ["Job: name=Sched JobType=66 level=Full Priority=10 Enabled=1",
             "  --> Client: Name=good-fd Enabled=1 Address=127.0.0.1 FDport=19302"]
    assert shown_client(lines) == "good-fd"
    assert shown_client(["Job: name=Sched"]) is None


def test_a_slot_that_started_is_settled_and_one_that_did_not_is_missed() -> None:
    """Started at or after its time: fine; grace passed with no start: missed until a run."""
    slots = Slots(grace=300)
    sched = [Scheduled("Nightly", "full", 1000), Scheduled("Other", "incremental", 1000)]
    assert slots.update(sched, {}, now=900)
    assert slots.update([], {"Nightly": 1000}, now=1100)  # Nightly ran at its slot
    assert slots.pending == {Slot("Other", "incremental", 1000)}
    assert not slots.update([], {}, now=1299)  # within the grace: still awaited
    assert slots.update([], {}, now=1300)
    assert slots.missed == {("Other", "incremental"): 1000} and not slots.pending
    assert not slots.update([], {"Other": 800}, now=1400)  # an older run does not clear it
    assert slots.update([], {"Other": 2000}, now=2001)  # the job ran again
    assert slots.missed == {}


def test_slots_survive_a_restart_through_the_store(tmp_path: Path) -> None:
    """What one process saw scheduled, the next one reports missed."""
    store = SqliteSlotStore(tmp_path / "director.db")
    first = Slots(grace=60)
    first.update([Scheduled("Nightly", "full", 1000)], {}, now=500)
    first.missed[("Weekly", "full")] = 400.0
    store.save("dir", first.saved())
    store.save("other-dir", [])
    second = Slots(grace=60)
    second.load(store.load("dir"))
    assert second.saved() == first.saved()
    assert second.update([], {}, now=1060)
    assert second.missed == {("Nightly", "full"): 1000, ("Weekly", "full"): 400.0}
    memory = MemorySlotStore()
    memory.save("dir", second.saved())
    assert memory.load("dir") == second.saved()


def hand_view() -> View:
    """A Director with every kind of series: jobs waiting, runs scheduled and missed, devices."""
    view = View("dc1-dir", "main", up=True, version="15.0.3", started=1790000000.0,
                poll_duration=0.21, last_success=1790003000.0,
                polls=Counter({"success": 9, "failure": 1}), parse_errors=2)
    view.jobs = [
        LiveJob(11, "Backup-web01", "web01-fd", "full", "m", "media", 0, 1790002000.0),
        LiveJob(12, "Backup-web01", "web01-fd", "full", "j", "max_jobs", 0, 1790002100.0),
        LiveJob(13, "Backup-db01", "db01-fd", "incremental", "R", "running", 5000, 1790002500.0),
    ]
    view.since = {(11, "media"): 1790002000.0, (13, "running"): 1790002500.0}
    view.scheduled = [Scheduled("Backup-web01", "incremental", 1790010000),
                      Scheduled("Backup-web01", "incremental", 1790090000),
                      Scheduled("Backup-new", "full", 1790020000)]
    view.missed = {("Backup-db01", "full"): 1789990000.0}
    view.clients = {"Backup-web01": "web01-fd", "Backup-db01": "db01-fd"}
    view.storage_up = {"File1": True, "LTO": False}
    view.devices = [
        Device("File1", "FileDev", "File", "File", True, "Vol-0001", False, 7000, 10000),
        Device("File1", "NoLabelDev", "File", "NoLabel", False, "", True, 7000, 10000),
    ]
    return view


def test_golden_director_exposition() -> None:
    """Exact bytes for the hand view, so any change of names or labels is a visible diff."""
    text = assemble(FAMILIES, [render(hand_view())])
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
        pytest.fail(f"{GOLDEN} rewritten; review `git diff` and run without UPDATE_GOLDEN")
    assert text == GOLDEN.read_text()
    found = {name for name, _ in samples(text)}
    for family in FAMILIES:
        assert {family, f"{family}_total"} & found, f"{family} has no sample"


def test_a_director_that_is_down_shows_only_its_health() -> None:
    """Down: up 0 and the poll figures; no job, schedule or device series from before."""
    view = hand_view()
    view.up = False
    found = samples(assemble(FAMILIES, [render(view)]))
    assert value(found, "bacula_director_up", director="dc1-dir", catalog="main") == 0
    assert {name for name, _ in found} == {
        "bacula_director_up", "bacula_director_info", "bacula_director_start_timestamp_seconds",
        "bacula_director_poll_duration_seconds",
        "bacula_director_last_poll_success_timestamp_seconds", "bacula_director_polls_total",
        "bacula_director_parse_errors_total"}


def test_the_longest_wait_and_the_nearest_run_are_shown() -> None:
    """Two runs of a job in one state: the earlier since; two slots of a level: the nearest."""
    view = hand_view()
    view.jobs.append(LiveJob(14, "Backup-web01", "web01-fd", "full", "m", "media", 0, 1.0))
    view.since[(14, "media")] = 1789000000.0
    found = samples(assemble(FAMILIES, [render(view)]))
    key = {"director": "dc1-dir", "catalog": "main", "client": "web01-fd",
           "job": "Backup-web01", "level": "full", "state": "media"}
    assert value(found, "bacula_director_job_state", **key) == 2
    assert value(found, "bacula_director_job_state_since_timestamp_seconds", **key) == 1789000000
    assert value(found, "bacula_director_next_run_timestamp_seconds", director="dc1-dir",
                 catalog="main", client="web01-fd", job="Backup-web01",
                 level="incremental") == 1790010000


def _console(tmp_path: Path, script: str, timeout: float = 5.0) -> Console:
    """A Console whose `bconsole` is a stand-in script (the real one is in tests/e2e)."""
    program = tmp_path / "bconsole"
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)
    secret = tmp_path / "pw"
    secret.write_text("s3cret-value\n")
    cfg = DirectorConfig(name="d", catalog="c", address="127.0.0.1", password_file=secret,
                         console_name="monitor", timeout=timeout, bconsole=str(program))
    folder = tmp_path / "run"
    folder.mkdir()
    return Console(cfg, folder)


def test_the_password_goes_in_a_private_file_never_on_the_command_line(tmp_path: Path) -> None:
    """argv holds only the config's path; the file is 0600; a named Console has its block."""
    console = _console(tmp_path, f'echo "$@" > {tmp_path}/argv\necho "1000 OK: 103 d"\ncat\n')
    answer = console.run([".api 2"])
    assert ".api 2" in answer.text and "quit" in answer.text
    assert "s3cret" not in (tmp_path / "argv").read_text()
    assert (console.conf.stat().st_mode & 0o777) == 0o600
    conf = console.conf.read_text()
    assert 'Console {\n  Name = "monitor"\n  Password = "s3cret-value"' in conf


def test_a_hung_bconsole_is_killed_at_the_timeout(tmp_path: Path) -> None:
    """A console that never answers ends in a ConsoleError that names the timeout."""
    console = _console(tmp_path, "sleep 600\n", timeout=0.5)
    with pytest.raises(ConsoleError, match=r"within 0\.5 s"):
        console.run([".api 2"])


def test_a_refused_login_and_an_unreachable_director_are_told_apart(tmp_path: Path) -> None:
    """Both exit 1 in bconsole; the text tells which, and no secret is in the message."""
    refused = _console(tmp_path, 'echo "Director authorization problem."\nexit 1\n')
    with pytest.raises(ConsoleError, match="refused the login") as caught:
        refused.run([".api 2"])
    assert "s3cret" not in str(caught.value)


def test_an_unreachable_director_says_why(tmp_path: Path) -> None:
    """No greeting: the reason bconsole printed (15.0.3) is in the message."""
    down = _console(tmp_path, 'echo "[CE0019] Unable to connect to Director daemon on '
                    '127.0.0.1:9101. ERR=Connection refused"\nexit 1\n')
    with pytest.raises(ConsoleError, match="ERR=Connection refused"):
        down.run([".api 2"])


def test_every_kind_of_scheduled_job_is_kept() -> None:
    """A scheduled copy or admin job can be missed too; an admin job has no level."""
    parsed = Parsed()
    scheduled = ["name=CatalogBackup", "level= ", "type=D", "schedtime_epoch=100", "",
                 "name=Offsite", "level=F", "type=c", "schedtime_epoch=200"]
    read_director({".status dir scheduled": scheduled}, parsed)
    assert parsed.scheduled == [Scheduled("CatalogBackup", "", 100),
                                Scheduled("Offsite", "full", 200)]
